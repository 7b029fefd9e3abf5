/**
 * Migration 1 -> 2: a version-1 body (legacy-v1.ts: UTF-8 JSON of a tagged tree) is rewritten
 * as version-2 bytecode, then read by the one version-2 reader. Like the writer, the walk uses
 * an explicit work stack, so a deep version-1 body costs memory, not call stack. Every tagged
 * kind's shape is checked here; custom names are carried over and resolved by the reader,
 * against the registered types only.
 */
import { SerdeError } from "./index.ts";
import { decodeUtf8, errorText } from "./envelope.ts";
import { OP, Sink } from "./bytecode.ts";

const KINDS = new Set(["undef", "num", "bigint", "date", "map", "set", "u8", "hole", "obj", "custom"]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BIGINT = /^-?(?:0|[1-9][0-9]*)$/;
const MAX_DATE_MS = 8.64e15;

function malformed(msg: string): never {
  throw new SerdeError("MALFORMED", `version-1 body: ${msg}`);
}

const isPair = (x: unknown): x is [unknown, unknown] => Array.isArray(x) && x.length === 2;
const isHole = (x: unknown): boolean =>
  x !== null && typeof x === "object" && !Array.isArray(x) && (x as Record<string, unknown>).$t === "hole" && Object.keys(x).length === 1;

type Work = { k: 0; node: unknown } | { k: 1; op: number; n?: number } | { k: 2; s: string } | { k: 3 };

export function migrateV1(body: Uint8Array): Uint8Array {
  const text = decodeUtf8(body, "version-1 body");
  let tree: unknown;
  try {
    tree = JSON.parse(text);
  } catch (err) {
    throw new SerdeError("MALFORMED", `version-1 body is not JSON: ${errorText(err)}`);
  }
  const out = new Sink();
  const work: Work[] = [{ k: 0, node: tree }];
  while (work.length > 0) {
    const w = work.pop()!;
    if (w.k === 1) { out.op(w.op, w.n); continue; }
    if (w.k === 2) { out.str(w.s); continue; }
    if (w.k === 3) { out.op(OP.HOLE); continue; }
    const n = w.node;
    if (n === null) { out.op(OP.NULL); continue; }
    if (typeof n === "boolean") { out.op(n ? OP.TRUE : OP.FALSE); continue; }
    if (typeof n === "number") { out.num(n); continue; }
    if (typeof n === "string") { out.str(n); continue; }
    if (Array.isArray(n)) {
      work.push({ k: 1, op: OP.ARRAY, n: n.length });
      for (let i = n.length - 1; i >= 0; i--) work.push(isHole(n[i]) ? { k: 3 } : { k: 0, node: n[i] });
      continue;
    }
    const obj = n as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (!Object.hasOwn(obj, "$t")) {
      work.push({ k: 1, op: OP.OBJECT, n: keys.length });
      for (let i = keys.length - 1; i >= 0; i--) work.push({ k: 0, node: obj[keys[i]!] }, { k: 2, s: keys[i]! });
      continue;
    }
    const kind = obj.$t;
    if (typeof kind !== "string" || !KINDS.has(kind)) malformed(`unknown kind ${JSON.stringify(kind)}`);
    const want = kind === "undef" || kind === "hole" ? "$t" : kind === "custom" ? "$t,name,v" : "$t,v";
    if ([...keys].sort().join(",") !== want) malformed(`a "${kind}" value must have exactly the keys ${want}`);
    const v = obj.v;
    switch (kind) {
      case "undef": out.op(OP.UNDEF); break;
      case "hole":
        throw new SerdeError("MALFORMED", "version-1 body: a hole outside an array");
      case "num":
        if (v === "NaN") out.num(NaN);
        else if (v === "Infinity") out.num(Infinity);
        else if (v === "-Infinity") out.num(-Infinity);
        else if (v === "-0") out.num(-0);
        else malformed(`"num" must be NaN, Infinity, -Infinity or -0, found ${JSON.stringify(v)}`);
        break;
      case "bigint":
        if (typeof v !== "string" || !BIGINT.test(v)) malformed(`"bigint" must be a decimal integer string, found ${JSON.stringify(v)}`);
        out.bigint(BigInt(v as string));
        break;
      case "date":
        if (v === null) out.date(new Date(NaN));
        else if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > MAX_DATE_MS) {
          malformed(`"date" must be integer epoch milliseconds or null, found ${JSON.stringify(v)}`);
        } else out.date(new Date(v));
        break;
      case "map":
        if (!Array.isArray(v) || !v.every(isPair)) malformed(`"map" must hold a list of [key, value] pairs`);
        work.push({ k: 1, op: OP.MAP, n: (v as unknown[]).length });
        for (let i = (v as unknown[]).length - 1; i >= 0; i--) {
          const [key, x] = (v as Array<[unknown, unknown]>)[i]!;
          work.push({ k: 0, node: x }, { k: 0, node: key });
        }
        break;
      case "set":
        if (!Array.isArray(v)) malformed(`"set" must hold a list`);
        work.push({ k: 1, op: OP.SET, n: (v as unknown[]).length });
        for (let i = (v as unknown[]).length - 1; i >= 0; i--) work.push({ k: 0, node: (v as unknown[])[i] });
        break;
      case "u8": {
        if (typeof v !== "string" || !BASE64.test(v)) malformed(`"u8" must be a base64 string`);
        const b = Buffer.from(v as string, "base64");
        out.op(OP.BYTES, b.length);
        out.bytes(b);
        break;
      }
      case "obj":
        if (!Array.isArray(v) || !v.every((e) => isPair(e) && typeof e[0] === "string")) {
          malformed(`"obj" must hold a list of [string key, value] pairs`);
        }
        work.push({ k: 1, op: OP.OBJECT, n: (v as unknown[]).length });
        for (let i = (v as unknown[]).length - 1; i >= 0; i--) {
          const [key, x] = (v as Array<[string, unknown]>)[i]!;
          work.push({ k: 0, node: x }, { k: 2, s: key });
        }
        break;
      case "custom":
        if (typeof obj.name !== "string") malformed(`"custom" needs a string name`);
        work.push({ k: 1, op: OP.CUSTOM }, { k: 0, node: v }, { k: 2, s: obj.name as string });
        break;
    }
  }
  return out.done();
}
