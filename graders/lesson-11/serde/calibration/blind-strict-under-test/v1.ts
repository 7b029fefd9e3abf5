/**
 * Reading format version 1 (last year's tagged JSON tree, see legacy-v1.ts). Nothing here
 * writes version 1. Every tagged kind's shape is checked; anything else is MALFORMED.
 */
import { SerdeError } from "./index.ts";
import { decodeUtf8, errorText, MAX_DEPTH, type Settings } from "./envelope.ts";

const KINDS = new Set(["undef", "num", "bigint", "date", "map", "set", "u8", "hole", "obj", "custom"]);
const MAX_DATE_MS = 8.64e15;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BIGINT = /^-?(?:0|[1-9][0-9]*)$/;

export function parseV1Tree(body: Uint8Array): unknown {
  const text = decodeUtf8(body, "version-1 body");
  let tree: unknown;
  try {
    tree = JSON.parse(text);
  } catch (err) {
    throw new SerdeError("MALFORMED", `version-1 body is not JSON: ${errorText(err)}`);
  }
  checkDepth(tree);
  return tree;
}

/** Depth of the parsed tree, without recursion, so a hostile body cannot blow the stack. */
function checkDepth(tree: unknown): void {
  const stack: Array<[unknown, number]> = [[tree, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    if (depth > MAX_DEPTH * 3) throw new SerdeError("TOO_DEEP", `version-1 body nests deeper than ${MAX_DEPTH * 3} levels`);
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
}

function malformed(msg: string): never {
  throw new SerdeError("MALFORMED", `version-1 body: ${msg}`);
}

function isPair(x: unknown): x is [unknown, unknown] {
  return Array.isArray(x) && x.length === 2;
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function decodeV1(tree: unknown, settings: Settings): unknown {
  const walk = (node: unknown, inArray: boolean): unknown => {
    if (node === null || typeof node === "string" || typeof node === "boolean") return node;
    if (typeof node === "number") return node;
    if (Array.isArray(node)) {
      const out = new Array<unknown>(node.length);
      for (let i = 0; i < node.length; i++) {
        const item = node[i];
        if (isHole(item)) continue;
        out[i] = walk(item, true);
      }
      return out;
    }
    if (typeof node !== "object") malformed(`unexpected ${typeof node}`);
    const obj = node as Record<string, unknown>;
    if (!Object.hasOwn(obj, "$t")) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(obj)) define(out, key, walk(obj[key], false));
      return out;
    }
    const kind = obj.$t;
    if (typeof kind !== "string" || !KINDS.has(kind)) malformed(`unknown kind ${JSON.stringify(kind)}`);
    const keys = Object.keys(obj).sort().join(",");
    const want = kind === "undef" || kind === "hole" ? "$t" : kind === "custom" ? "$t,name,v" : "$t,v";
    if (keys !== want) malformed(`a "${kind}" value must have exactly the keys ${want}, found ${keys}`);
    const v = obj.v;
    switch (kind) {
      case "undef":
        return undefined;
      case "hole":
        // only meaningful as an array element, handled above
        return malformed(inArray ? "hole" : "a hole outside an array");
      case "num":
        if (v === "NaN") return NaN;
        if (v === "Infinity") return Infinity;
        if (v === "-Infinity") return -Infinity;
        if (v === "-0") return -0;
        return malformed(`"num" must be NaN, Infinity, -Infinity or -0, found ${JSON.stringify(v)}`);
      case "bigint":
        if (typeof v !== "string" || !BIGINT.test(v)) malformed(`"bigint" must be a decimal integer string, found ${JSON.stringify(v)}`);
        return BigInt(v);
      case "date":
        if (v === null) return new Date(NaN);
        if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > MAX_DATE_MS) {
          malformed(`"date" must be integer epoch milliseconds or null, found ${JSON.stringify(v)}`);
        }
        return new Date(v);
      case "map": {
        if (!Array.isArray(v)) malformed(`"map" must hold a list of pairs`);
        const out = new Map<unknown, unknown>();
        for (const entry of v) {
          if (!isPair(entry)) malformed(`"map" entry is not a [key, value] pair`);
          out.set(walk(entry[0], false), walk(entry[1], false));
        }
        if (out.size !== v.length) malformed(`"map" has duplicate keys`);
        return out;
      }
      case "set": {
        if (!Array.isArray(v)) malformed(`"set" must hold a list`);
        const out = new Set<unknown>();
        for (const item of v) out.add(walk(item, false));
        if (out.size !== v.length) malformed(`"set" has duplicate items`);
        return out;
      }
      case "u8": {
        if (typeof v !== "string" || !BASE64.test(v)) malformed(`"u8" must be a base64 string`);
        return new Uint8Array(Buffer.from(v, "base64"));
      }
      case "obj": {
        if (!Array.isArray(v)) malformed(`"obj" must hold a list of [key, value] pairs`);
        const out: Record<string, unknown> = {};
        for (const entry of v) {
          if (!isPair(entry) || typeof entry[0] !== "string") malformed(`"obj" entry is not a [string key, value] pair`);
          if (Object.hasOwn(out, entry[0])) malformed(`"obj" repeats the key ${JSON.stringify(entry[0])}`);
          define(out, entry[0], walk(entry[1], false));
        }
        return out;
      }
      case "custom": {
        const name = obj.name;
        if (typeof name !== "string") malformed(`"custom" needs a string name`);
        const type = settings.byName.get(name);
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `version-1 body names custom type ${JSON.stringify(name)}, which is not registered`);
        const data = walk(v, false);
        try {
          return type.decode(data);
        } catch (err) {
          throw new SerdeError("MALFORMED", `custom type "${name}" refused its data: ${errorText(err)}`);
        }
      }
    }
    return malformed(`unknown kind ${kind}`);
  };
  const isHole = (x: unknown): boolean =>
    x !== null && typeof x === "object" && !Array.isArray(x) && (x as Record<string, unknown>).$t === "hole" && Object.keys(x).length === 1;
  return walk(tree, false);
}
