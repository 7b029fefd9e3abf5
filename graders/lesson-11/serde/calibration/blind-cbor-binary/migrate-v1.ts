/**
 * Migration 1 -> 2: a version-1 body (legacy-v1.ts: UTF-8 JSON of a tagged tree) is rewritten
 * into a version-2 (CBOR) body, which the one version-2 decoder then reads. The migration
 * checks every tagged kind's shape as it goes; custom names are carried over as text and
 * resolved by the decoder against the registered types only.
 */
import { SerdeError } from "./index.ts";
import { decodeUtf8, errorText, MAX_DEPTH } from "./envelope.ts";
import { HOLE, TAG_CUSTOM, TAG_DATE, TAG_MAP, TAG_SET, Writer, writeBigInt, writeNumber } from "./cbor.ts";

const KINDS = new Set(["undef", "num", "bigint", "date", "map", "set", "u8", "hole", "obj", "custom"]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BIGINT = /^-?(?:0|[1-9][0-9]*)$/;
const MAX_DATE_MS = 8.64e15;

function malformed(msg: string): never {
  throw new SerdeError("MALFORMED", `version-1 body: ${msg}`);
}

function checkDepth(tree: unknown): void {
  const stack: Array<[unknown, number]> = [[tree, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    if (depth > MAX_DEPTH * 3) throw new SerdeError("TOO_DEEP", `version-1 body nests deeper than ${MAX_DEPTH * 3} levels`);
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
}

const isHole = (x: unknown): boolean =>
  x !== null && typeof x === "object" && !Array.isArray(x) && (x as Record<string, unknown>).$t === "hole" && Object.keys(x).length === 1;

const isPair = (x: unknown): x is [unknown, unknown] => Array.isArray(x) && x.length === 2;

export function migrateV1(body: Uint8Array): Uint8Array {
  const text = decodeUtf8(body, "version-1 body");
  let tree: unknown;
  try {
    tree = JSON.parse(text);
  } catch (err) {
    throw new SerdeError("MALFORMED", `version-1 body is not JSON: ${errorText(err)}`);
  }
  checkDepth(tree);
  const w = new Writer();
  const node = (n: unknown): void => {
    if (n === null) return w.byte(0xf6);
    if (typeof n === "boolean") return w.byte(n ? 0xf5 : 0xf4);
    if (typeof n === "number") return writeNumber(w, n);
    if (typeof n === "string") return w.text(n);
    if (Array.isArray(n)) {
      w.head(4, n.length);
      for (const x of n) {
        if (isHole(x)) w.byte(HOLE);
        else node(x);
      }
      return;
    }
    const obj = n as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (!Object.hasOwn(obj, "$t")) {
      w.head(5, keys.length);
      for (const k of keys) { w.text(k); node(obj[k]); }
      return;
    }
    const kind = obj.$t;
    if (typeof kind !== "string" || !KINDS.has(kind)) malformed(`unknown kind ${JSON.stringify(kind)}`);
    const want = kind === "undef" || kind === "hole" ? "$t" : kind === "custom" ? "$t,name,v" : "$t,v";
    if ([...keys].sort().join(",") !== want) malformed(`a "${kind}" value must have exactly the keys ${want}`);
    const v = obj.v;
    switch (kind) {
      case "undef": return w.byte(0xf7);
      case "hole": return malformed("a hole outside an array");
      case "num":
        if (v === "NaN") return w.float64(NaN);
        if (v === "Infinity") return w.float64(Infinity);
        if (v === "-Infinity") return w.float64(-Infinity);
        if (v === "-0") return w.float64(-0);
        return malformed(`"num" must be NaN, Infinity, -Infinity or -0, found ${JSON.stringify(v)}`);
      case "bigint":
        if (typeof v !== "string" || !BIGINT.test(v)) malformed(`"bigint" must be a decimal integer string, found ${JSON.stringify(v)}`);
        return writeBigInt(w, BigInt(v));
      case "date":
        w.head(6, TAG_DATE);
        if (v === null) return w.byte(0xf6);
        if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > MAX_DATE_MS) {
          malformed(`"date" must be integer epoch milliseconds or null, found ${JSON.stringify(v)}`);
        }
        return writeNumber(w, v);
      case "map":
        if (!Array.isArray(v) || !v.every(isPair)) malformed(`"map" must hold a list of [key, value] pairs`);
        w.head(6, TAG_MAP);
        w.head(5, v.length);
        for (const [k, x] of v as Array<[unknown, unknown]>) { node(k); node(x); }
        return;
      case "set":
        if (!Array.isArray(v)) malformed(`"set" must hold a list`);
        w.head(6, TAG_SET);
        w.head(4, v.length);
        for (const x of v) node(x);
        return;
      case "u8": {
        if (typeof v !== "string" || !BASE64.test(v)) malformed(`"u8" must be a base64 string`);
        const b = Buffer.from(v, "base64");
        w.head(2, b.length);
        return w.bytes(b);
      }
      case "obj": {
        if (!Array.isArray(v) || !v.every((e) => isPair(e) && typeof e[0] === "string")) {
          malformed(`"obj" must hold a list of [string key, value] pairs`);
        }
        w.head(5, v.length);
        for (const [k, x] of v as Array<[string, unknown]>) { w.text(k); node(x); }
        return;
      }
      case "custom":
        if (typeof obj.name !== "string") malformed(`"custom" needs a string name`);
        w.head(6, TAG_CUSTOM);
        w.head(4, 2);
        w.text(obj.name);
        return node(v);
    }
  };
  node(tree);
  return w.done();
}
