/**
 * lesson-11 / serde: typed serialization of checkpoints.
 *
 * Design: the format-2 body is UTF-8 JSON in which EVERY value is a tagged array, so no user
 * data can ever be mistaken for a tag (no "$t" escape needed):
 *
 *   ["z"] null   ["b", bool]   ["n", finite number]   ["f", "NaN" | "Infinity" | "-Infinity" | "-0"]
 *   ["s", string]   ["u"] undefined   ["i", "123"] bigint   ["d", ISO string | null] Date
 *   ["a", [item | ["h"] hole, ...]]   ["o", [[key, item], ...]]   ["O", ...] null-prototype object
 *   ["m", [[key, value], ...]] Map    ["e", [item, ...]] Set   ["x", base64] Uint8Array
 *   ["c", registered name, item] custom type
 *
 * Version-1 bodies (the "$t" tree of legacy-v1.ts) are validated and migrated 1 -> 2 into this
 * form, then decoded by the one format-2 decoder.
 */
import { crc32, gunzipSync, gzipSync } from "node:zlib";

export const CURRENT_VERSION = 2;
const OLDEST_VERSION = 1;
const MAGIC_0 = 0x63; // "c"
const MAGIC_1 = 0x6b; // "k"
const FLAG_GZIP = 0x01;
const HEADER_BYTES = 8;
const TAG_PLAIN = "ck";
const TAG_GZIP = "ck+gzip";
/** Deepest value dumpsTyped accepts (containers nested in containers). */
const MAX_VALUE_DEPTH = 512;
/** Deepest parsed tree accepted on load: every value level costs at most a few tree levels (map -> v -> entry). */
const MAX_TREE_DEPTH = MAX_VALUE_DEPTH * 4 + 16;
const DEFAULT_COMPRESS_ABOVE = 64 * 1024;
const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

export type SerdeErrorCode =
  | "BAD_OPTIONS"
  | "UNKNOWN_TAG"
  | "MALFORMED"
  | "CHECKSUM"
  | "UNSUPPORTED_VERSION"
  | "TOO_LARGE"
  | "UNSUPPORTED_VALUE"
  | "UNKNOWN_TYPE"
  | "CYCLE"
  | "TOO_DEEP";

export class SerdeError extends Error {
  override name = "SerdeError";
  constructor(
    readonly code: SerdeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A class the serializer may rebuild: one entry of the allow-list. */
export interface CustomType<T = unknown> {
  /** Stable name written into the payload. */
  name: string;
  class: abstract new (...args: never[]) => T;
  encode(value: T): unknown;
  decode(data: unknown): T;
}

export interface SerdeOptions {
  types?: CustomType<any>[];
  /** Body size in bytes above which the body is gzipped (default: 64 KiB). */
  compressAbove?: number;
  /** Largest body accepted on decode, after decompression (default: 64 MiB). */
  maxDecodedBytes?: number;
}

export interface Serde {
  dumpsTyped(value: unknown): [typeTag: string, bytes: Uint8Array];
  loadsTyped(typed: readonly [typeTag: string, bytes: Uint8Array]): unknown;
}

type Tree = null | boolean | number | string | Tree[] | { [key: string]: Tree };

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------- small helpers

/** Own, enumerable, writable data property: never a prototype assignment, even for "__proto__". */
function own(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}


function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object" && typeof value !== "function") return typeof value;
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  return typeof name === "string" && name !== "" ? `an instance of ${name}` : "an object of unknown class";
}

function malformed(version: number, what: string): SerdeError {
  return new SerdeError("MALFORMED", `Malformed format-${version} body: ${what}.`);
}

/** Depth of a parsed JSON tree, without recursion (a hostile body may be nested arbitrarily deep). */
function treeDepth(root: Tree, limit: number): number {
  let deepest = 0;
  const stack: Array<[Tree, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return deepest;
}

function hasOnlyKeys(node: { [key: string]: Tree }, keys: string[]): boolean {
  const actual = Object.keys(node);
  return actual.length === keys.length && keys.every((k) => Object.hasOwn(node, k));
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BIGINT = /^(?:0|-?[1-9][0-9]*)$/;
const SPECIAL_NUMBERS: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, "-Infinity": Number.NEGATIVE_INFINITY, "-0": -0 };

function decodeBase64(v: Tree, version: number): Uint8Array {
  if (typeof v !== "string" || !BASE64.test(v)) throw malformed(version, `"u8" needs a canonical base64 string, got ${JSON.stringify(v)}`);
  const buf = Buffer.from(v, "base64");
  if (buf.toString("base64") !== v) throw malformed(version, `"u8" base64 is not canonical`);
  const out = new Uint8Array(buf.length);
  out.set(buf);
  return out;
}

// ---------------------------------------------------------------- options

interface Resolved {
  byName: Map<string, CustomType<any>>;
  byProto: Map<object, CustomType<any>>;
  compressAbove: number;
  maxDecodedBytes: number;
}

function resolveOptions(options: SerdeOptions): Resolved {
  if (typeof options !== "object" || options === null) throw new SerdeError("BAD_OPTIONS", "createSerde(options) needs an object, e.g. { types: [], compressAbove: 65536 }.");
  const { types = [], compressAbove = DEFAULT_COMPRESS_ABOVE, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES } = options;
  if (!Number.isSafeInteger(compressAbove) || compressAbove < 0) {
    throw new SerdeError("BAD_OPTIONS", `compressAbove must be a non-negative integer number of bytes, got ${String(compressAbove)}.`);
  }
  if (!Number.isSafeInteger(maxDecodedBytes) || maxDecodedBytes < 1) {
    throw new SerdeError("BAD_OPTIONS", `maxDecodedBytes must be a positive integer number of bytes, got ${String(maxDecodedBytes)}.`);
  }
  if (!Array.isArray(types)) throw new SerdeError("BAD_OPTIONS", "types must be an array of { name, class, encode, decode }.");
  const byName = new Map<string, CustomType<any>>();
  const byProto = new Map<object, CustomType<any>>();
  for (const type of types) {
    if (typeof type !== "object" || type === null) throw new SerdeError("BAD_OPTIONS", "each entry of types must be { name, class, encode, decode }.");
    if (typeof type.name !== "string" || type.name.length === 0) throw new SerdeError("BAD_OPTIONS", "a custom type needs a non-empty string name.");
    if (typeof type.class !== "function" || typeof type.class.prototype !== "object" || type.class.prototype === null) {
      throw new SerdeError("BAD_OPTIONS", `custom type "${type.name}" needs a class (a constructor with a prototype).`);
    }
    if (typeof type.encode !== "function" || typeof type.decode !== "function") {
      throw new SerdeError("BAD_OPTIONS", `custom type "${type.name}" needs encode(value) and decode(data) functions.`);
    }
    if (byName.has(type.name)) throw new SerdeError("BAD_OPTIONS", `custom type name "${type.name}" is registered twice; names must be unique.`);
    if (byProto.has(type.class.prototype as object)) throw new SerdeError("BAD_OPTIONS", `class ${type.class.name} is registered twice (as "${byProto.get(type.class.prototype as object)!.name}" and "${type.name}").`);
    byName.set(type.name, type);
    byProto.set(type.class.prototype as object, type);
  }
  return { byName, byProto, compressAbove, maxDecodedBytes };
}

// ---------------------------------------------------------------- value -> tree (format 2)

function toTree(value: unknown, opts: Resolved): Tree {
  const onPath = new Set<object>();
  const walk = (v: unknown, depth: number): Tree => {
    switch (typeof v) {
      case "undefined":
        return ["u"];
      case "boolean":
        return ["b", v];
      case "string":
        return ["s", v];
      case "number":
        if (Number.isNaN(v)) return ["f", "NaN"];
        if (v === Number.POSITIVE_INFINITY) return ["f", "Infinity"];
        if (v === Number.NEGATIVE_INFINITY) return ["f", "-Infinity"];
        return Object.is(v, -0) ? ["f", "-0"] : ["n", v];
      case "bigint":
        return ["i", v.toString()];
      case "symbol":
      case "function":
        throw new SerdeError("UNSUPPORTED_VALUE", `A ${typeof v} cannot be stored in a checkpoint; keep state to data.`);
    }
    if (v === null) return ["z"];
    const obj = v as object;
    if (depth > MAX_VALUE_DEPTH) throw new SerdeError("TOO_DEEP", `Value is nested deeper than ${MAX_VALUE_DEPTH} levels.`);
    if (onPath.has(obj)) throw new SerdeError("CYCLE", "Value contains a cycle (an object that contains itself).");
    onPath.add(obj);
    try {
      return walkObject(obj, depth);
    } finally {
      onPath.delete(obj);
    }
  };
  const entries = (obj: object, depth: number): Tree => Object.keys(obj).map((k): Tree => [k, walk((obj as Record<string, unknown>)[k], depth + 1)]);
  const walkObject = (obj: object, depth: number): Tree => {
    const proto = Object.getPrototypeOf(obj) as object | null;
    const custom = proto === null ? undefined : opts.byProto.get(proto);
    if (custom) {
      let data: unknown;
      try {
        data = custom.encode(obj);
      } catch (error) {
        throw new SerdeError("UNSUPPORTED_VALUE", `encode() of custom type "${custom.name}" threw: ${(error as Error)?.message ?? String(error)}.`);
      }
      return ["c", custom.name, walk(data, depth + 1)];
    }
    if (proto === Array.prototype) {
      const arr = obj as unknown[];
      const items: Tree[] = new Array<Tree>(arr.length);
      for (let i = 0; i < arr.length; i++) items[i] = Object.hasOwn(arr, i) ? walk(arr[i], depth + 1) : ["h"];
      return ["a", items];
    }
    if (proto === Date.prototype) {
      const date = obj as Date;
      return ["d", Number.isNaN(date.getTime()) ? null : date.toISOString()];
    }
    if (proto === Map.prototype) return ["m", [...(obj as Map<unknown, unknown>)].map(([k, x]): Tree => [walk(k, depth + 1), walk(x, depth + 1)])];
    if (proto === Set.prototype) return ["e", [...(obj as Set<unknown>)].map((x) => walk(x, depth + 1))];
    if (proto === Uint8Array.prototype) {
      const u8 = obj as Uint8Array;
      return ["x", Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString("base64")];
    }
    if (proto === Object.prototype) return ["o", entries(obj, depth)];
    if (proto === null) return ["O", entries(obj, depth)];
    throw new SerdeError(
      "UNSUPPORTED_VALUE",
      `Cannot store ${describe(obj)}: only plain data, Date, Map, Set, Uint8Array and registered custom types round-trip. Register it in createSerde({ types }).`,
    );
  };
  return walk(value, 1);
}

// ---------------------------------------------------------------- migrations

/** 1 -> 2: a version-1 "$t" tree, validated kind by kind, rewritten into the all-tagged form. */
function migrate1to2(root: Tree): Tree {
  const bad = (what: string) => malformed(1, what);
  const pairs = (v: Tree | undefined, kind: string): Array<[Tree, Tree]> => {
    if (!Array.isArray(v)) throw bad(`"${kind}" needs v: [[key, value], ...]`);
    return v.map((e) => {
      if (!Array.isArray(e) || e.length !== 2) throw bad(`an entry of "${kind}" must be a [key, value] pair`);
      return [e[0]!, e[1]!];
    });
  };
  const walk = (node: Tree, inArray: boolean): Tree => {
    if (node === null) return ["z"];
    if (typeof node === "boolean") return ["b", node];
    if (typeof node === "number") return ["n", node];
    if (typeof node === "string") return ["s", node];
    if (Array.isArray(node)) return ["a", node.map((x) => walk(x, true))];
    if (!Object.hasOwn(node, "$t")) return ["o", Object.keys(node).map((k): Tree => [k, walk(node[k]!, false)])];
    const v = node.v;
    const exactly = (...keys: string[]) => {
      if (!hasOnlyKeys(node, keys)) throw bad(`"${String(node.$t)}" needs exactly { ${keys.join(", ")} }`);
    };
    switch (node.$t) {
      case "undef":
        exactly("$t");
        return ["u"];
      case "hole":
        exactly("$t");
        if (!inArray) throw bad(`"hole" outside an array`);
        return ["h"];
      case "num":
        exactly("$t", "v");
        if (typeof v !== "string" || !Object.hasOwn(SPECIAL_NUMBERS, v)) throw bad(`"num" needs "NaN", "Infinity", "-Infinity" or "-0", got ${JSON.stringify(v)}`);
        return ["f", v];
      case "bigint":
        exactly("$t", "v");
        if (typeof v !== "string" || !BIGINT.test(v)) throw bad(`"bigint" needs a decimal integer string, got ${JSON.stringify(v)}`);
        return ["i", v];
      case "date":
        exactly("$t", "v");
        if (v === null) return ["d", null];
        if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > 8.64e15) throw bad(`"date" needs epoch milliseconds or null, got ${JSON.stringify(v)}`);
        return ["d", new Date(v).toISOString()];
      case "map":
        exactly("$t", "v");
        return ["m", pairs(v, "map").map(([k, x]): Tree => [walk(k, false), walk(x, false)])];
      case "set":
        exactly("$t", "v");
        if (!Array.isArray(v)) throw bad(`"set" needs v: [item, ...]`);
        return ["e", v.map((x) => walk(x, false))];
      case "u8":
        exactly("$t", "v");
        decodeBase64(v!, 1); // validates
        return ["x", v!];
      case "obj":
        exactly("$t", "v");
        return ["o", pairs(v, "obj").map(([k, x]): Tree => {
          if (typeof k !== "string") throw bad(`an "obj" key must be a string`);
          return [k, walk(x, false)];
        })];
      case "custom":
        exactly("$t", "name", "v");
        if (typeof node.name !== "string") throw bad(`"custom" needs a string name`);
        return ["c", node.name, walk(v!, false)];
      default:
        throw bad(`unknown kind ${JSON.stringify(node.$t)}`);
    }
  };
  return walk(root, false);
}

/** MIGRATIONS[n] turns a version-n tree into a version-(n+1) tree. */
const MIGRATIONS: Record<number, (tree: Tree) => Tree> = { 1: migrate1to2 };

// ---------------------------------------------------------------- tree (format 2) -> value

function fromTree(root: Tree, opts: Resolved): unknown {
  const bad = (what: string) => malformed(2, what);
  const list = (v: Tree | undefined, kind: string): Tree[] => {
    if (!Array.isArray(v)) throw bad(`"${kind}" needs a list`);
    return v;
  };
  const pairs = (v: Tree | undefined, kind: string): Array<[Tree, Tree]> =>
    list(v, kind).map((e) => {
      if (!Array.isArray(e) || e.length !== 2) throw bad(`an entry of "${kind}" must be a [key, value] pair`);
      return [e[0]!, e[1]!];
    });
  const fill = (target: object, v: Tree | undefined, kind: string): object => {
    const seen = new Set<string>();
    for (const [k, x] of pairs(v, kind)) {
      if (typeof k !== "string") throw bad(`a key of "${kind}" must be a string`);
      if (seen.has(k)) throw bad(`key ${JSON.stringify(k)} appears twice`);
      seen.add(k);
      own(target, k, walk(x));
    }
    return target;
  };
  const walk = (node: Tree): unknown => {
    if (!Array.isArray(node) || node.length === 0 || typeof node[0] !== "string") throw bad(`every value must be a tagged array, got ${JSON.stringify(node)?.slice(0, 40)}`);
    const [kind, a, b] = node;
    const arity = (n: number) => {
      if (node.length !== n) throw bad(`"${kind}" takes ${n - 1} field(s), got ${node.length - 1}`);
    };
    switch (kind) {
      case "z":
        arity(1);
        return null;
      case "u":
        arity(1);
        return undefined;
      case "b":
        arity(2);
        if (typeof a !== "boolean") throw bad(`"b" needs a boolean`);
        return a;
      case "s":
        arity(2);
        if (typeof a !== "string") throw bad(`"s" needs a string`);
        return a;
      case "n":
        arity(2);
        if (typeof a !== "number" || Object.is(a, -0)) throw bad(`"n" needs a finite number`);
        return a;
      case "f":
        arity(2);
        if (typeof a !== "string" || !Object.hasOwn(SPECIAL_NUMBERS, a)) throw bad(`"f" needs "NaN", "Infinity", "-Infinity" or "-0"`);
        return SPECIAL_NUMBERS[a];
      case "i":
        arity(2);
        if (typeof a !== "string" || !BIGINT.test(a)) throw bad(`"i" needs a decimal integer string`);
        return BigInt(a);
      case "d": {
        arity(2);
        if (a === null) return new Date(Number.NaN);
        if (typeof a !== "string") throw bad(`"d" needs an ISO string or null`);
        const date = new Date(a);
        if (Number.isNaN(date.getTime()) || date.toISOString() !== a) throw bad(`"d" ${JSON.stringify(a)} is not a canonical ISO-8601 timestamp`);
        return date;
      }
      case "x":
        arity(2);
        return decodeBase64(a!, 2);
      case "a": {
        arity(2);
        const items = list(a, "a");
        const out: unknown[] = new Array(items.length);
        items.forEach((item, i) => {
          if (Array.isArray(item) && item.length === 1 && item[0] === "h") return; // hole: leave the slot missing
          out[i] = walk(item);
        });
        return out;
      }
      case "h":
        throw bad(`"h" (a hole) outside an array`);
      case "o":
        arity(2);
        return fill({}, a, "o");
      case "O":
        arity(2);
        return fill(Object.create(null) as object, a, "O");
      case "m": {
        arity(2);
        const entries = pairs(a, "m");
        const map = new Map<unknown, unknown>();
        for (const [k, x] of entries) map.set(walk(k), walk(x));
        if (map.size !== entries.length) throw bad(`"m" has duplicate keys`);
        return map;
      }
      case "e": {
        arity(2);
        const items = list(a, "e");
        const set = new Set(items.map(walk));
        if (set.size !== items.length) throw bad(`"e" has duplicate items`);
        return set;
      }
      case "c": {
        arity(3);
        if (typeof a !== "string") throw bad(`"c" needs a string name`);
        const type = opts.byName.get(a); // the registered list only
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `Payload names custom type ${JSON.stringify(a)}, which is not registered (registered: ${[...opts.byName.keys()].join(", ") || "none"}).`);
        const data = walk(b!);
        let out: unknown;
        try {
          out = type.decode(data);
        } catch (error) {
          throw new SerdeError("MALFORMED", `decode() of custom type "${a}" refused its data: ${(error as Error)?.message ?? String(error)}.`);
        }
        if (!(out instanceof (type.class as unknown as abstract new () => unknown))) throw new SerdeError("MALFORMED", `decode() of "${a}" did not return an instance of ${type.class.name}.`);
        return out;
      }
      default:
        throw bad(`unknown kind ${JSON.stringify(kind)}`);
    }
  };
  return walk(root);
}

// ---------------------------------------------------------------- envelope

function seal(version: number, flags: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  bytes[0] = MAGIC_0;
  bytes[1] = MAGIC_1;
  bytes[2] = version;
  bytes[3] = flags;
  bytes.set(body, HEADER_BYTES);
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return bytes;
}

function inflate(stored: Uint8Array, limit: number): Uint8Array {
  try {
    // maxOutputLength stops inflating as soon as the output would pass the limit: a bomb never expands in full.
    return gunzipSync(stored, { maxOutputLength: limit });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) {
      throw new SerdeError("TOO_LARGE", `Compressed body inflates past maxDecodedBytes (${limit} bytes); refused before inflating it all.`);
    }
    throw new SerdeError("MALFORMED", `Compressed body is not valid gzip: ${(error as Error).message}.`);
  }
}

export function createSerde(options: SerdeOptions = {}): Serde {
  const opts = resolveOptions(options);
  return {
    dumpsTyped(value) {
      const tree = toTree(value, opts);
      const json = utf8.encode(JSON.stringify(tree));
      if (json.length > opts.maxDecodedBytes) {
        throw new SerdeError("TOO_LARGE", `Body is ${json.length} bytes, above maxDecodedBytes (${opts.maxDecodedBytes}): it could not be read back. Store large artefacts behind a pointer.`);
      }
      if (json.length > opts.compressAbove) return [TAG_GZIP, seal(CURRENT_VERSION, FLAG_GZIP, gzipSync(json))];
      return [TAG_PLAIN, seal(CURRENT_VERSION, 0, json)];
    },

    loadsTyped(typed) {
      if (!Array.isArray(typed) || typed.length !== 2) throw new SerdeError("MALFORMED", "loadsTyped() needs a [typeTag, bytes] pair, as dumpsTyped() returned it.");
      const [tag, bytes] = typed;
      if (tag !== TAG_PLAIN && tag !== TAG_GZIP) {
        throw new SerdeError("UNKNOWN_TAG", `Unknown type tag ${JSON.stringify(tag)}: this serializer reads "${TAG_PLAIN}" and "${TAG_GZIP}".`);
      }
      if (!(bytes instanceof Uint8Array)) throw new SerdeError("MALFORMED", `Checkpoint bytes must be a Uint8Array, got ${describe(bytes)}.`);
      if (bytes.length < HEADER_BYTES) throw new SerdeError("MALFORMED", `Checkpoint bytes are truncated: ${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header.`);
      if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) throw new SerdeError("MALFORMED", `Bytes do not start with the "ck" magic: not a checkpoint written by this serializer.`);
      const stored = bytes.subarray(HEADER_BYTES);
      const version = bytes[2]!;
      if (version < OLDEST_VERSION || version > CURRENT_VERSION) {
        throw new SerdeError("UNSUPPORTED_VERSION", `Body has format version ${version}; this code reads ${OLDEST_VERSION} to ${CURRENT_VERSION}. Deploy a reader that knows version ${version}.`);
      }
      const flags = bytes[3]!;
      if ((flags & ~FLAG_GZIP) !== 0) throw new SerdeError("MALFORMED", `Unknown header flags 0x${flags.toString(16)}: only bit 0 (gzip) is defined.`);
      const gzipped = (flags & FLAG_GZIP) !== 0;
      if (gzipped !== (tag === TAG_GZIP)) {
        throw new SerdeError("MALFORMED", `Type tag "${tag}" disagrees with the header's gzip flag (${gzipped ? "set" : "clear"}).`);
      }
      if (!gzipped && stored.length > opts.maxDecodedBytes) {
        throw new SerdeError("TOO_LARGE", `Body is ${stored.length} bytes, above maxDecodedBytes (${opts.maxDecodedBytes}).`);
      }
      const body = gzipped ? inflate(stored, opts.maxDecodedBytes) : stored;
      let text: string;
      try {
        text = strictUtf8.decode(body);
      } catch {
        throw new SerdeError("MALFORMED", "Body is not valid UTF-8.");
      }
      let tree: Tree;
      try {
        tree = JSON.parse(text) as Tree;
      } catch (error) {
        throw new SerdeError("MALFORMED", `Body is not valid JSON: ${(error as Error).message}.`);
      }
      if (treeDepth(tree, MAX_TREE_DEPTH) > MAX_TREE_DEPTH) throw new SerdeError("TOO_DEEP", `Body is nested deeper than ${MAX_TREE_DEPTH} levels; refused before decoding.`);
      for (let v = version; v < CURRENT_VERSION; v++) tree = MIGRATIONS[v]!(tree);
      return fromTree(tree, opts);
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

// ---------------------------------------------------------------- metadata: plain JSON, its own path

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  const proto = typeof metadata === "object" && metadata !== null ? Object.getPrototypeOf(metadata) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new SerdeError("UNSUPPORTED_VALUE", `Metadata must be a plain object of JSON values, got ${describe(metadata)}.`);
  }
  const onPath = new Set<object>();
  const check = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new SerdeError("UNSUPPORTED_VALUE", `Metadata ${path} is ${String(v)}, which JSON cannot hold; store a finite number or a string.`);
      return;
    }
    if (typeof v !== "object") {
      throw new SerdeError("UNSUPPORTED_VALUE", `Metadata ${path} is a ${typeof v}, which is not plain JSON${typeof v === "bigint" ? " (store it as a decimal string)" : ""}.`);
    }
    const p = Object.getPrototypeOf(v) as object | null;
    if (p !== Object.prototype && p !== null && p !== Array.prototype) {
      throw new SerdeError(
        "UNSUPPORTED_VALUE",
        `Metadata ${path} is ${describe(v)}, which is not plain JSON${v instanceof Date ? " (store an ISO string or epoch milliseconds, on purpose)" : ""}.`,
      );
    }
    if (depth > MAX_VALUE_DEPTH) throw new SerdeError("TOO_DEEP", `Metadata is nested deeper than ${MAX_VALUE_DEPTH} levels.`);
    if (onPath.has(v)) throw new SerdeError("CYCLE", `Metadata ${path} contains a cycle.`);
    onPath.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (!Object.hasOwn(v, i)) throw new SerdeError("UNSUPPORTED_VALUE", `Metadata ${path}[${i}] is a hole, which JSON would turn into null.`);
        check(v[i], `${path}[${i}]`, depth + 1);
      }
    } else {
      for (const k of Object.keys(v)) check((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
    }
    onPath.delete(v);
  };
  for (const k of Object.keys(metadata)) check(metadata[k], k, 1);
  return JSON.stringify(metadata);
}

export function loadsMetadata(json: string): Record<string, unknown> {
  if (typeof json !== "string") throw new SerdeError("MALFORMED", `Metadata must be a JSON string, got ${describe(json)}.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json); // JSON.parse defines own properties: a "__proto__" key stays data
  } catch (error) {
    throw new SerdeError("MALFORMED", `Metadata is not valid JSON: ${(error as Error).message}.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SerdeError("MALFORMED", `Metadata must be a JSON object, got ${Array.isArray(parsed) ? "an array" : JSON.stringify(parsed)}.`);
  }
  return parsed as Record<string, unknown>;
}
