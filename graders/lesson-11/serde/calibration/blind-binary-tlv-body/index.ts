/**
 * lesson-11 / serde: typed serialization of checkpoints.
 *
 * Design: the format-2 body is a compact binary type-length-value encoding (MessagePack-like,
 * hand-written so every byte read is bounds-checked). One type byte per value:
 *
 *   0x00 null   0x01 false   0x02 true   0x03 undefined   0x04 float64 (IEEE-754 BE: NaN, ±Inf, -0 as is)
 *   0x05 string (varint byte length, UTF-8)              0x06 bigint (string of its decimal digits)
 *   0x07 Date (float64 epoch ms; NaN = invalid Date)     0x08 array (varint length, elements; 0x09 = hole)
 *   0x0a object (varint count, [key string, value]...)   0x0b null-prototype object (same layout)
 *   0x0c Map (varint count, [key, value]...)             0x0d Set (varint count, items)
 *   0x0e Uint8Array (varint length, raw bytes)           0x0f custom (name string in UTF-8, encoded value)
 *
 * Object keys are data, never tags, so a plain object with a "$t" key needs no escape. Version-1
 * bodies (tagged JSON) are migrated 1 -> 2 by transcoding the validated JSON tree into this
 * binary form, then decoded by the one format-2 decoder.
 */
import { crc32, gunzipSync, gzipSync } from "node:zlib";

export const CURRENT_VERSION = 2;
const OLDEST_VERSION = 1;
const FLAG_GZIP = 0x01;
const HEADER_BYTES = 8;
const TAG_PLAIN = "ck";
const TAG_GZIP = "ck+gzip";
const MAX_DEPTH = 512;
const DEFAULT_COMPRESS_ABOVE = 64 * 1024;
const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

const T = {
  NULL: 0x00,
  FALSE: 0x01,
  TRUE: 0x02,
  UNDEF: 0x03,
  F64: 0x04,
  STR: 0x05,
  BIGINT: 0x06,
  DATE: 0x07,
  ARRAY: 0x08,
  HOLE: 0x09,
  OBJECT: 0x0a,
  NULL_OBJECT: 0x0b,
  MAP: 0x0c,
  SET: 0x0d,
  BYTES: 0x0e,
  CUSTOM: 0x0f,
} as const;

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

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function own(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object" && typeof value !== "function") return typeof value;
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === "string" && name !== "" ? `an instance of ${name}` : "an object of unknown class";
}

const malformed = (what: string) => new SerdeError("MALFORMED", `Malformed checkpoint body: ${what}.`);

// ---------------------------------------------------------------- options

interface Resolved {
  byName: Map<string, CustomType<any>>;
  byProto: Map<object, CustomType<any>>;
  compressAbove: number;
  maxDecodedBytes: number;
}

function resolveOptions(options: SerdeOptions): Resolved {
  if (typeof options !== "object" || options === null) throw new SerdeError("BAD_OPTIONS", "createSerde(options) needs an object.");
  const { types = [], compressAbove = DEFAULT_COMPRESS_ABOVE, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES } = options;
  if (!Number.isSafeInteger(compressAbove) || compressAbove < 0) throw new SerdeError("BAD_OPTIONS", `compressAbove must be a non-negative integer (bytes), got ${String(compressAbove)}.`);
  if (!Number.isSafeInteger(maxDecodedBytes) || maxDecodedBytes < 1) throw new SerdeError("BAD_OPTIONS", `maxDecodedBytes must be a positive integer (bytes), got ${String(maxDecodedBytes)}.`);
  if (!Array.isArray(types)) throw new SerdeError("BAD_OPTIONS", "types must be an array of { name, class, encode, decode }.");
  const byName = new Map<string, CustomType<any>>();
  const byProto = new Map<object, CustomType<any>>();
  for (const type of types) {
    if (typeof type?.name !== "string" || type.name === "") throw new SerdeError("BAD_OPTIONS", "every custom type needs a non-empty string name.");
    if (typeof type.class !== "function" || typeof type.class.prototype !== "object" || type.class.prototype === null) throw new SerdeError("BAD_OPTIONS", `custom type "${type.name}" needs a class.`);
    if (typeof type.encode !== "function" || typeof type.decode !== "function") throw new SerdeError("BAD_OPTIONS", `custom type "${type.name}" needs encode and decode functions.`);
    if (byName.has(type.name)) throw new SerdeError("BAD_OPTIONS", `custom type name "${type.name}" is registered twice.`);
    if (byProto.has(type.class.prototype as object)) throw new SerdeError("BAD_OPTIONS", `class ${type.class.name} is registered twice.`);
    byName.set(type.name, type);
    byProto.set(type.class.prototype as object, type);
  }
  return { byName, byProto, compressAbove, maxDecodedBytes };
}

// ---------------------------------------------------------------- writer

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }
  varint(n: number): void {
    // LEB128 up to 2^53
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) b |= 0x80;
      this.byte(b);
    } while (n > 0);
  }
  f64(x: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, x);
    this.length += 8;
  }
  raw(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  str(s: string): void {
    this.raw(utf8.encode(s));
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

// ---------------------------------------------------------------- value -> format-2 bytes

function encodeValue(value: unknown, opts: Resolved): Uint8Array {
  const w = new Writer();
  const onPath = new Set<object>();
  const walk = (v: unknown, depth: number): void => {
    switch (typeof v) {
      case "undefined":
        return w.byte(T.UNDEF);
      case "boolean":
        return w.byte(v ? T.TRUE : T.FALSE);
      case "number":
        w.byte(T.F64);
        return w.f64(v);
      case "string":
        w.byte(T.STR);
        return w.str(v);
      case "bigint":
        w.byte(T.BIGINT);
        return w.str(v.toString());
      case "symbol":
      case "function":
        throw new SerdeError("UNSUPPORTED_VALUE", `A ${typeof v} cannot be stored in a checkpoint.`);
    }
    if (v === null) return w.byte(T.NULL);
    const obj = v as object;
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `Value is nested deeper than ${MAX_DEPTH} levels.`);
    if (onPath.has(obj)) throw new SerdeError("CYCLE", "Value contains a cycle (an object that contains itself).");
    onPath.add(obj);
    try {
      walkObject(obj, depth);
    } finally {
      onPath.delete(obj);
    }
  };
  const walkObject = (obj: object, depth: number): void => {
    const proto = Object.getPrototypeOf(obj) as object | null;
    const custom = proto === null ? undefined : opts.byProto.get(proto);
    if (custom) {
      let data: unknown;
      try {
        data = custom.encode(obj);
      } catch (error) {
        throw new SerdeError("UNSUPPORTED_VALUE", `encode() of custom type "${custom.name}" threw: ${(error as Error)?.message ?? String(error)}.`);
      }
      w.byte(T.CUSTOM);
      w.str(custom.name); // the registered name, as UTF-8 text
      return walk(data, depth + 1);
    }
    if (proto === Array.prototype) {
      const arr = obj as unknown[];
      w.byte(T.ARRAY);
      w.varint(arr.length);
      for (let i = 0; i < arr.length; i++) {
        if (Object.hasOwn(arr, i)) walk(arr[i], depth + 1);
        else w.byte(T.HOLE);
      }
      return;
    }
    if (proto === Date.prototype) {
      w.byte(T.DATE);
      return w.f64((obj as Date).getTime());
    }
    if (proto === Map.prototype) {
      const map = obj as Map<unknown, unknown>;
      w.byte(T.MAP);
      w.varint(map.size);
      for (const [k, x] of map) {
        walk(k, depth + 1);
        walk(x, depth + 1);
      }
      return;
    }
    if (proto === Set.prototype) {
      const set = obj as Set<unknown>;
      w.byte(T.SET);
      w.varint(set.size);
      for (const x of set) walk(x, depth + 1);
      return;
    }
    if (proto === Uint8Array.prototype) {
      w.byte(T.BYTES);
      return w.raw(obj as Uint8Array);
    }
    if (proto === Object.prototype || proto === null) {
      const keys = Object.keys(obj);
      w.byte(proto === null ? T.NULL_OBJECT : T.OBJECT);
      w.varint(keys.length);
      for (const k of keys) {
        w.str(k);
        walk((obj as Record<string, unknown>)[k], depth + 1);
      }
      return;
    }
    throw new SerdeError(
      "UNSUPPORTED_VALUE",
      `Cannot store ${describe(obj)}: only plain data, Date, Map, Set, Uint8Array and registered custom types round-trip (subclasses of built-ins would load as their base class).`,
    );
  };
  walk(value, 1);
  return w.result();
}

// ---------------------------------------------------------------- format-2 bytes -> value

function decodeValue(body: Uint8Array, opts: Resolved): unknown {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let pos = 0;
  const need = (n: number, what: string) => {
    if (n > body.length - pos) throw malformed(`${what} runs past the end of the body (at byte ${pos})`);
  };
  const byte = (): number => {
    need(1, "a type byte");
    return body[pos++]!;
  };
  const varint = (what: string): number => {
    let n = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw malformed(`${what}: length field too long`);
      const b = byte();
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw malformed(`${what}: non-canonical length`);
        break;
      }
      scale *= 128;
    }
    if (!Number.isSafeInteger(n)) throw malformed(`${what}: length out of range`);
    return n;
  };
  /** A count of items that each take at least one byte cannot exceed the bytes left. */
  const count = (what: string, bytesPerItem: number): number => {
    const n = varint(what);
    if (n * bytesPerItem > body.length - pos) throw malformed(`${what} claims ${n} items, more than the body holds`);
    return n;
  };
  const f64 = (): number => {
    need(8, "a float64");
    const x = view.getFloat64(pos);
    pos += 8;
    return x;
  };
  const rawBytes = (what: string): Uint8Array => {
    const n = varint(what);
    need(n, what);
    const out = body.slice(pos, pos + n);
    pos += n;
    return out;
  };
  const str = (what: string): string => {
    try {
      return strictUtf8.decode(rawBytes(what));
    } catch (error) {
      if (error instanceof SerdeError) throw error;
      throw malformed(`${what} is not valid UTF-8`);
    }
  };
  const fillObject = (target: object, depth: number): object => {
    const n = count("object", 2);
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const k = str("an object key");
      if (seen.has(k)) throw malformed(`key ${JSON.stringify(k)} appears twice in one object`);
      seen.add(k);
      own(target, k, read(depth + 1, false));
    }
    return target;
  };
  const read = (depth: number, inArray: boolean): unknown => {
    if (depth > MAX_DEPTH + 1) throw new SerdeError("TOO_DEEP", `Body is nested deeper than ${MAX_DEPTH} levels; refused.`);
    const type = byte();
    switch (type) {
      case T.NULL:
        return null;
      case T.FALSE:
        return false;
      case T.TRUE:
        return true;
      case T.UNDEF:
        return undefined;
      case T.F64:
        return f64();
      case T.STR:
        return str("a string");
      case T.BIGINT: {
        const digits = str("a bigint");
        if (!/^(?:0|-?[1-9][0-9]*)$/.test(digits)) throw malformed(`bigint ${JSON.stringify(digits)} is not a decimal integer`);
        return BigInt(digits);
      }
      case T.DATE: {
        const ms = f64();
        if (!Number.isNaN(ms) && !(Number.isInteger(ms) && Math.abs(ms) <= 8.64e15)) throw malformed(`date ${ms} is not a valid time value`);
        return new Date(ms);
      }
      case T.ARRAY: {
        const n = count("array", 1);
        const out: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) {
          if (body[pos] === T.HOLE) {
            pos++;
            continue;
          }
          out[i] = read(depth + 1, true);
        }
        return out;
      }
      case T.HOLE:
        throw malformed(inArray ? "a hole where a value was expected" : "a hole outside an array");
      case T.OBJECT:
        return fillObject({}, depth);
      case T.NULL_OBJECT:
        return fillObject(Object.create(null) as object, depth);
      case T.MAP: {
        const n = count("map", 2);
        const map = new Map<unknown, unknown>();
        for (let i = 0; i < n; i++) {
          const k = read(depth + 1, false);
          map.set(k, read(depth + 1, false));
        }
        if (map.size !== n) throw malformed("map has duplicate keys");
        return map;
      }
      case T.SET: {
        const n = count("set", 1);
        const set = new Set<unknown>();
        for (let i = 0; i < n; i++) set.add(read(depth + 1, false));
        if (set.size !== n) throw malformed("set has duplicate items");
        return set;
      }
      case T.BYTES:
        return rawBytes("a Uint8Array");
      case T.CUSTOM: {
        const name = str("a custom type name");
        const custom = opts.byName.get(name); // the allow-list and nothing else
        if (!custom) {
          throw new SerdeError("UNKNOWN_TYPE", `Payload names custom type ${JSON.stringify(name)}, which is not registered (registered: ${[...opts.byName.keys()].join(", ") || "none"}).`);
        }
        const data = read(depth + 1, false);
        let out: unknown;
        try {
          out = custom.decode(data);
        } catch (error) {
          throw new SerdeError("MALFORMED", `decode() of custom type "${name}" refused its data: ${(error as Error)?.message ?? String(error)}.`);
        }
        if (!(out instanceof (custom.class as unknown as abstract new () => unknown))) throw new SerdeError("MALFORMED", `decode() of "${name}" did not return an instance of ${custom.class.name}.`);
        return out;
      }
      default:
        throw malformed(`unknown type byte 0x${type.toString(16)} at byte ${pos - 1}`);
    }
  };
  const value = read(1, false);
  if (pos !== body.length) throw malformed(`${body.length - pos} trailing bytes after the value`);
  return value;
}

// ---------------------------------------------------------------- migration 1 -> 2

type Tree = null | boolean | number | string | Tree[] | { [key: string]: Tree };

function treeDepth(root: Tree): number {
  let deepest = 0;
  const stack: Array<[Tree, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    deepest = Math.max(deepest, depth);
    for (const child of Array.isArray(node) ? node : Object.values(node)) if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Transcodes a version-1 body (tagged JSON tree, legacy-v1.ts) into a format-2 body, validating every kind. */
function migrate1to2(body: Uint8Array): Uint8Array {
  const bad = (what: string) => new SerdeError("MALFORMED", `Malformed format-1 body: ${what}.`);
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    throw bad("not valid UTF-8");
  }
  let tree: Tree;
  try {
    tree = JSON.parse(text) as Tree;
  } catch (error) {
    throw bad(`not valid JSON (${(error as Error).message})`);
  }
  if (treeDepth(tree) > MAX_DEPTH * 4 + 16) throw new SerdeError("TOO_DEEP", "Format-1 body is nested too deeply; refused.");
  const w = new Writer();
  const exactly = (node: { [key: string]: Tree }, keys: string[]) => {
    const actual = Object.keys(node);
    if (actual.length !== keys.length || !keys.every((k) => Object.hasOwn(node, k))) throw bad(`"${String(node.$t)}" needs exactly { ${keys.join(", ")} }`);
  };
  const pairs = (v: Tree | undefined, kind: string): Array<[Tree, Tree]> => {
    if (!Array.isArray(v)) throw bad(`"${kind}" needs v: [[key, value], ...]`);
    return v.map((e) => {
      if (!Array.isArray(e) || e.length !== 2) throw bad(`an entry of "${kind}" must be a [key, value] pair`);
      return [e[0]!, e[1]!];
    });
  };
  const walk = (node: Tree, inArray: boolean): void => {
    if (node === null) return w.byte(T.NULL);
    if (typeof node === "boolean") return w.byte(node ? T.TRUE : T.FALSE);
    if (typeof node === "number") {
      w.byte(T.F64);
      return w.f64(node);
    }
    if (typeof node === "string") {
      w.byte(T.STR);
      return w.str(node);
    }
    if (Array.isArray(node)) {
      w.byte(T.ARRAY);
      w.varint(node.length);
      for (const x of node) walk(x, true);
      return;
    }
    if (!Object.hasOwn(node, "$t")) {
      const keys = Object.keys(node);
      w.byte(T.OBJECT);
      w.varint(keys.length);
      for (const k of keys) {
        w.str(k);
        walk(node[k]!, false);
      }
      return;
    }
    const v = node.v;
    switch (node.$t) {
      case "undef":
        exactly(node, ["$t"]);
        return w.byte(T.UNDEF);
      case "hole":
        exactly(node, ["$t"]);
        if (!inArray) throw bad(`"hole" outside an array`);
        return w.byte(T.HOLE);
      case "num": {
        exactly(node, ["$t", "v"]);
        const table: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, "-Infinity": Number.NEGATIVE_INFINITY, "-0": -0 };
        if (typeof v !== "string" || !Object.hasOwn(table, v)) throw bad(`"num" needs "NaN", "Infinity", "-Infinity" or "-0", got ${JSON.stringify(v)}`);
        w.byte(T.F64);
        return w.f64(table[v]!);
      }
      case "bigint":
        exactly(node, ["$t", "v"]);
        if (typeof v !== "string" || !/^(?:0|-?[1-9][0-9]*)$/.test(v)) throw bad(`"bigint" needs a decimal integer string, got ${JSON.stringify(v)}`);
        w.byte(T.BIGINT);
        return w.str(v);
      case "date":
        exactly(node, ["$t", "v"]);
        if (v !== null && (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > 8.64e15)) throw bad(`"date" needs epoch milliseconds or null, got ${JSON.stringify(v)}`);
        w.byte(T.DATE);
        return w.f64(v === null ? Number.NaN : v);
      case "map": {
        exactly(node, ["$t", "v"]);
        const entries = pairs(v, "map");
        w.byte(T.MAP);
        w.varint(entries.length);
        for (const [k, x] of entries) {
          walk(k, false);
          walk(x, false);
        }
        return;
      }
      case "set":
        exactly(node, ["$t", "v"]);
        if (!Array.isArray(v)) throw bad(`"set" needs v: [item, ...]`);
        w.byte(T.SET);
        w.varint(v.length);
        for (const x of v) walk(x, false);
        return;
      case "u8": {
        exactly(node, ["$t", "v"]);
        if (typeof v !== "string" || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)) throw bad(`"u8" needs a base64 string`);
        const bytes = Buffer.from(v, "base64");
        if (bytes.toString("base64") !== v) throw bad(`"u8" base64 is not canonical`);
        w.byte(T.BYTES);
        return w.raw(bytes);
      }
      case "obj": {
        exactly(node, ["$t", "v"]);
        const entries = pairs(v, "obj");
        w.byte(T.OBJECT);
        w.varint(entries.length);
        for (const [k, x] of entries) {
          if (typeof k !== "string") throw bad(`an "obj" key must be a string`);
          w.str(k);
          walk(x, false);
        }
        return;
      }
      case "custom":
        exactly(node, ["$t", "name", "v"]);
        if (typeof node.name !== "string") throw bad(`"custom" needs a string name`);
        w.byte(T.CUSTOM);
        w.str(node.name);
        return walk(v!, false);
      default:
        throw bad(`unknown kind ${JSON.stringify(node.$t)}`);
    }
  };
  walk(tree, false);
  return w.result();
}

/** MIGRATIONS[n]: a version-n body to a version-(n+1) body. */
const MIGRATIONS: Record<number, (body: Uint8Array) => Uint8Array> = { 1: migrate1to2 };

// ---------------------------------------------------------------- envelope

function seal(version: number, flags: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  bytes.set([0x63, 0x6b, version, flags]);
  bytes.set(body, HEADER_BYTES);
  new DataView(bytes.buffer).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return bytes;
}

export function createSerde(options: SerdeOptions = {}): Serde {
  const opts = resolveOptions(options);
  return {
    dumpsTyped(value) {
      const body = encodeValue(value, opts);
      if (body.length > opts.maxDecodedBytes) throw new SerdeError("TOO_LARGE", `Body is ${body.length} bytes, above maxDecodedBytes (${opts.maxDecodedBytes}); it could not be read back.`);
      return body.length > opts.compressAbove ? [TAG_GZIP, seal(CURRENT_VERSION, FLAG_GZIP, gzipSync(body))] : [TAG_PLAIN, seal(CURRENT_VERSION, 0, body)];
    },

    loadsTyped(typed) {
      if (!Array.isArray(typed) || typed.length !== 2) throw new SerdeError("MALFORMED", "loadsTyped() needs the [typeTag, bytes] pair dumpsTyped() returned.");
      const [tag, bytes] = typed;
      if (tag !== TAG_PLAIN && tag !== TAG_GZIP) throw new SerdeError("UNKNOWN_TAG", `Unknown type tag ${JSON.stringify(tag)}; this serializer reads "ck" and "ck+gzip".`);
      if (!(bytes instanceof Uint8Array)) throw new SerdeError("MALFORMED", `Checkpoint bytes must be a Uint8Array, got ${describe(bytes)}.`);
      if (bytes.length < HEADER_BYTES) throw new SerdeError("MALFORMED", `Truncated checkpoint: ${bytes.length} bytes, less than the 8-byte header.`);
      if (bytes[0] !== 0x63 || bytes[1] !== 0x6b) throw new SerdeError("MALFORMED", `Missing "ck" magic: these bytes are not a checkpoint.`);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const stored = bytes.subarray(HEADER_BYTES);
      const want = view.getUint32(4);
      const got = crc32(stored, crc32(bytes.subarray(0, 4)));
      if (want !== got) throw new SerdeError("CHECKSUM", `CRC-32 mismatch (header says ${want.toString(16)}, bytes give ${got.toString(16)}): the checkpoint was truncated or altered.`);
      const version = bytes[2]!;
      if (version < OLDEST_VERSION || version > CURRENT_VERSION) {
        throw new SerdeError("UNSUPPORTED_VERSION", `Checkpoint has format version ${version}; this code reads ${OLDEST_VERSION} to ${CURRENT_VERSION}.`);
      }
      const flags = bytes[3]!;
      if ((flags & ~FLAG_GZIP) !== 0) throw new SerdeError("MALFORMED", `Unknown flag bits 0x${(flags & ~FLAG_GZIP).toString(16)} in the header.`);
      const gzipped = (flags & FLAG_GZIP) === FLAG_GZIP;
      if (gzipped !== (tag === TAG_GZIP)) throw new SerdeError("MALFORMED", `Tag "${tag}" and the header's gzip flag disagree.`);
      let body: Uint8Array = stored;
      if (gzipped) {
        try {
          body = gunzipSync(stored, { maxOutputLength: opts.maxDecodedBytes });
        } catch (error) {
          if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) {
            throw new SerdeError("TOO_LARGE", `Body inflates past maxDecodedBytes (${opts.maxDecodedBytes}); refused while inflating.`);
          }
          throw new SerdeError("MALFORMED", `Body is not valid gzip: ${(error as Error).message}.`);
        }
      } else if (stored.length > opts.maxDecodedBytes) {
        throw new SerdeError("TOO_LARGE", `Body is ${stored.length} bytes, above maxDecodedBytes (${opts.maxDecodedBytes}).`);
      }
      for (let v = version; v < CURRENT_VERSION; v++) body = MIGRATIONS[v]!(body);
      return decodeValue(body, opts);
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

// ---------------------------------------------------------------- metadata

/**
 * Plain JSON through JSON.stringify with a replacer that looks at the raw value (`this[key]`,
 * before toJSON), so a Date is refused instead of silently becoming a string.
 */
export function dumpsMetadata(metadata: Record<string, unknown>): string {
  const rootProto = typeof metadata === "object" && metadata !== null ? Object.getPrototypeOf(metadata) : undefined;
  if ((rootProto !== Object.prototype && rootProto !== null) || Array.isArray(metadata)) {
    throw new SerdeError("UNSUPPORTED_VALUE", `Metadata must be a plain object of JSON values, got ${describe(metadata)}.`);
  }
  const refuse = (key: string, what: string, hint = "") => new SerdeError("UNSUPPORTED_VALUE", `Metadata field "${key}" is ${what}, which is not plain JSON${hint}.`);
  try {
    return JSON.stringify(metadata, function (this: Record<string, unknown>, key: string) {
      const raw = this[key];
      if (raw === null || typeof raw === "string" || typeof raw === "boolean") return raw;
      if (typeof raw === "number") {
        if (!Number.isFinite(raw)) throw refuse(key, String(raw));
        return raw;
      }
      if (typeof raw !== "object") throw refuse(key, raw === undefined ? "undefined (or an array hole)" : `a ${typeof raw}`, typeof raw === "bigint" ? "; store a decimal string" : "");
      const proto = Object.getPrototypeOf(raw) as object | null;
      if (proto !== Object.prototype && proto !== null && proto !== Array.prototype) {
        throw refuse(key, describe(raw), raw instanceof Date ? "; store an ISO string or epoch milliseconds" : "");
      }
      return raw;
    });
  } catch (error) {
    if (error instanceof SerdeError) throw error;
    if (error instanceof RangeError) throw new SerdeError("TOO_DEEP", "Metadata is nested too deeply.");
    throw new SerdeError("CYCLE", `Metadata cannot be written as JSON: ${(error as Error).message}.`);
  }
}

export function loadsMetadata(json: string): Record<string, unknown> {
  if (typeof json !== "string") throw new SerdeError("MALFORMED", "Metadata must be a JSON string.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new SerdeError("MALFORMED", `Metadata is not valid JSON: ${(error as Error).message}.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new SerdeError("MALFORMED", "Metadata must be a JSON object.");
  return parsed as Record<string, unknown>;
}
