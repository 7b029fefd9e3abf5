/**
 * An alternative correct design (must grade excellent): the body is V8's own structured
 * serialization (node:v8 serialize/deserialize), which already keeps Date, Map, Set, BigInt,
 * typed arrays, undefined, NaN, -0 and holes. What it does not do is left to two walks:
 * before serializing, a walk refuses what must not be stored (functions, symbols, cycles,
 * unregistered classes, subclasses of built-ins) and replaces each registered instance by a
 * marker [Boolean object, name, data] (no accepted input can hold a Boolean object, so the
 * marker cannot be forged by data); after deserializing, a walk accepts only the kinds this
 * format writes and rebuilds the markers from the allow-list. Version-1 bodies (tagged JSON)
 * are read by a separate, validating decoder. Written for calibration, from the contract.
 */
import { deserialize, serialize } from "node:v8";
import { crc32, gunzipSync, gzipSync } from "node:zlib";

export const CURRENT_VERSION = 2;

export class SerdeError extends Error {
  override name = "SerdeError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Registered {
  name: string;
  class: abstract new (...args: never[]) => unknown;
  encode(value: never): unknown;
  decode(data: unknown): unknown;
}

const MAX_DEPTH = 1000;
const fail = (code: string, message: string) => new SerdeError(code, message);
const malformed = (message: string) => fail("MALFORMED", `Malformed checkpoint: ${message}.`);

function put(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function checksum(bytes: Uint8Array): number {
  return crc32(bytes.subarray(8), crc32(bytes.subarray(0, 4)));
}

export function createSerde(options: { types?: Registered[]; compressAbove?: number; maxDecodedBytes?: number } = {}) {
  const byName = new Map<string, Registered>();
  const byProto = new Map<object, Registered>();
  for (const type of options.types ?? []) {
    if (typeof type?.name !== "string" || typeof type.class !== "function" || byName.has(type.name)) throw fail("BAD_OPTIONS", "each custom type needs a unique name and a class");
    byName.set(type.name, type);
    byProto.set(type.class.prototype as object, type);
  }
  const compressAbove = options.compressAbove ?? 16 * 1024;
  const maxDecodedBytes = options.maxDecodedBytes ?? 16 * 1024 * 1024;

  /** The value as V8 should see it: refused where it must not be stored, registered instances as markers. */
  function prepare(value: unknown, path: object[]): unknown {
    if (path.length > MAX_DEPTH) throw fail("TOO_DEEP", `value nested more than ${MAX_DEPTH} levels`);
    if (typeof value === "function" || typeof value === "symbol") throw fail("UNSUPPORTED_VALUE", `a ${typeof value} is behaviour, not data`);
    if (value === null || typeof value !== "object") return value;
    if (path.includes(value)) throw fail("CYCLE", "the value refers to itself");
    path.push(value);
    try {
      const proto = Object.getPrototypeOf(value) as object | null;
      const type = proto && byProto.get(proto);
      if (type) return [new Boolean(true), type.name, prepare(type.encode(value as never), path)];
      if (proto === Array.prototype) {
        const items = value as unknown[];
        const out = new Array(items.length);
        for (const key of Object.keys(items)) out[Number(key)] = prepare(items[Number(key)], path);
        return out;
      }
      if (proto === Date.prototype || proto === Uint8Array.prototype) return value;
      if (proto === Map.prototype) return new Map(Array.from(value as Map<unknown, unknown>, ([k, v]) => [prepare(k, path), prepare(v, path)]));
      if (proto === Set.prototype) return new Set(Array.from(value as Set<unknown>, (v) => prepare(v, path)));
      if (proto !== Object.prototype && proto !== null) throw fail("UNSUPPORTED_VALUE", `${(proto as { constructor?: { name?: string } }).constructor?.name ?? "this class"} is not a registered type`);
      const out = {};
      for (const key of Object.keys(value)) put(out, key, prepare((value as Record<string, unknown>)[key], path));
      return out;
    } finally {
      path.pop();
    }
  }

  /** Accepts only what `prepare` can produce, and rebuilds registered instances. */
  function restore(value: unknown, depth: number): unknown {
    if (depth > MAX_DEPTH + 8) throw fail("TOO_DEEP", "body nested too deep");
    if (value === null || typeof value !== "object") {
      if (typeof value === "function" || typeof value === "symbol") throw malformed("unexpected value kind");
      return value;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto === Array.prototype) {
      const items = value as unknown[];
      if (items.length > 0 && items[0] instanceof Boolean) {
        const [, name, data] = items;
        if (items.length !== 3 || typeof name !== "string") throw malformed("a custom value marker of the wrong shape");
        const type = byName.get(name);
        if (!type) throw fail("UNKNOWN_TYPE", `type "${name}" is not registered; refusing to build it`);
        const decoded = restore(data, depth + 1);
        try {
          return type.decode(decoded);
        } catch (error) {
          throw malformed(`data the registered type "${name}" cannot decode (${(error as Error).message})`);
        }
      }
      const out = new Array(items.length);
      for (const key of Object.keys(items)) out[Number(key)] = restore(items[Number(key)], depth + 1);
      return out;
    }
    if (proto === Date.prototype) return value;
    if (proto === Uint8Array.prototype) return new Uint8Array(value as Uint8Array);
    if (proto === Map.prototype) return new Map(Array.from(value as Map<unknown, unknown>, ([k, v]) => [restore(k, depth + 1), restore(v, depth + 1)]));
    if (proto === Set.prototype) return new Set(Array.from(value as Set<unknown>, (v) => restore(v, depth + 1)));
    if (proto !== Object.prototype) throw malformed("a kind of object this format never writes");
    const out = {};
    for (const key of Object.keys(value)) put(out, key, restore((value as Record<string, unknown>)[key], depth + 1));
    return out;
  }

  /** Version 1: tagged JSON, dates as epoch milliseconds; every tag's shape checked. */
  function fromV1(node: unknown, depth: number): unknown {
    if (depth > MAX_DEPTH) throw fail("TOO_DEEP", "body nested too deep");
    if (node === null || typeof node !== "object") return node;
    const sub = (n: unknown) => fromV1(n, depth + 1);
    const isHole = (n: unknown) => n !== null && typeof n === "object" && !Array.isArray(n) && (n as { $t?: unknown }).$t === "hole";
    if (Array.isArray(node)) {
      const out = new Array(node.length);
      for (let i = 0; i < node.length; i++) if (!isHole(node[i])) out[i] = fromV1(node[i], depth + 1);
      return out;
    }
    const record = node as Record<string, unknown>;
    if (!Object.hasOwn(record, "$t")) {
      const out = {};
      for (const key of Object.keys(record)) put(out, key, sub(record[key]));
      return out;
    }
    const v = record.v;
    const pairList = Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2);
    switch (record.$t) {
      case "undef":
        return undefined;
      case "num": {
        const special: Record<string, number> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 };
        if (typeof v === "string" && Object.hasOwn(special, v)) return special[v];
        throw malformed("a special number that is not NaN, Infinity, -Infinity or -0");
      }
      case "bigint":
        if (typeof v === "string" && /^-?\d+$/.test(v)) return BigInt(v);
        throw malformed("a bigint that is not a decimal integer string");
      case "date":
        if (v === null) return new Date(Number.NaN);
        if (typeof v === "number" && !Number.isNaN(new Date(v).getTime())) return new Date(v);
        throw malformed("a version-1 date that is not epoch milliseconds");
      case "u8":
        if (typeof v === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(v) && v.length % 4 === 0) return new Uint8Array(Buffer.from(v, "base64"));
        throw malformed("bytes that are not base64");
      case "map":
        if (!pairList) throw malformed("a map that is not a list of pairs");
        return new Map((v as unknown[][]).map(([k, x]) => [sub(k), sub(x)]));
      case "set":
        if (!Array.isArray(v)) throw malformed("a set that is not a list");
        return new Set(v.map(sub));
      case "obj": {
        if (!pairList || !(v as unknown[][]).every(([k]) => typeof k === "string")) throw malformed("an escaped object that is not a list of [string, value]");
        const out = {};
        for (const [k, x] of v as unknown[][]) put(out, k as string, sub(x));
        return out;
      }
      case "custom": {
        const type = typeof record.name === "string" ? byName.get(record.name) : undefined;
        if (!type) throw fail("UNKNOWN_TYPE", `type ${JSON.stringify(record.name)} is not registered; refusing to build it`);
        const data = sub(v);
        try {
          return type.decode(data);
        } catch (error) {
          throw malformed(`data the registered type "${type.name}" cannot decode (${(error as Error).message})`);
        }
      }
      default:
        throw malformed(`an unknown tagged kind ${JSON.stringify(record.$t)}`);
    }
  }

  function dumpsTyped(value: unknown): [string, Uint8Array] {
    let body: Uint8Array;
    const prepared = prepare(value, []);
    try {
      body = serialize(prepared);
    } catch (error) {
      throw fail("UNSUPPORTED_VALUE", `cannot serialize: ${(error as Error).message}`);
    }
    const gzip = body.length > compressAbove;
    if (gzip) body = gzipSync(body);
    const bytes = new Uint8Array(8 + body.length);
    bytes.set([0x63, 0x6b, CURRENT_VERSION, gzip ? 1 : 0]);
    bytes.set(body, 8);
    new DataView(bytes.buffer).setUint32(4, checksum(bytes));
    return [gzip ? "ck+gzip" : "ck", bytes];
  }

  function loadsTyped(typed: readonly [string, Uint8Array]): unknown {
    if (!Array.isArray(typed)) throw malformed("expected [typeTag, bytes]");
    const [tag, bytes] = typed;
    if (tag !== "ck" && tag !== "ck+gzip") throw fail("UNKNOWN_TAG", `unknown type tag ${JSON.stringify(tag)}`);
    if (!(bytes instanceof Uint8Array) || bytes.length < 8 || bytes[0] !== 0x63 || bytes[1] !== 0x6b) throw malformed("no ck header");
    if (checksum(bytes) !== new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(4)) throw fail("CHECKSUM", "the bytes do not match their CRC-32");
    const version = bytes[2]!;
    if (version < 1 || version > CURRENT_VERSION) throw fail("UNSUPPORTED_VERSION", `format version ${version} is unknown to this reader (it reads 1 to ${CURRENT_VERSION})`);
    if (bytes[3] !== (tag === "ck+gzip" ? 1 : 0)) throw malformed("the flags do not match the tag");
    let body = bytes.subarray(8);
    if (tag === "ck+gzip") {
      try {
        body = gunzipSync(body, { maxOutputLength: maxDecodedBytes });
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw fail("TOO_LARGE", `the body inflates past ${maxDecodedBytes} bytes`);
        throw malformed("the gzip stream is broken");
      }
    } else if (body.length > maxDecodedBytes) throw fail("TOO_LARGE", `the body is over ${maxDecodedBytes} bytes`);
    if (version === 1) {
      let tree: unknown;
      try {
        tree = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch {
        throw malformed("a version-1 body that is not UTF-8 JSON");
      }
      return fromV1(tree, 0);
    }
    let raw: unknown;
    try {
      raw = deserialize(body);
    } catch (error) {
      throw malformed(`the body does not deserialize (${(error as Error).message})`);
    }
    return restore(raw, 0);
  }

  return { dumpsTyped, loadsTyped };
}

const standard = createSerde();
export const dumpsTyped = (value: unknown) => standard.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]) => standard.loadsTyped(typed);

function assertJson(value: unknown, at: string): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number" && Number.isFinite(value)) return;
  if (Array.isArray(value)) return value.forEach((v, i) => assertJson(v, `${at}[${i}]`));
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) return Object.entries(value).forEach(([k, v]) => assertJson(v, `${at}.${k}`));
  throw fail("UNSUPPORTED_VALUE", `metadata at ${at} is not a JSON value`);
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) throw fail("UNSUPPORTED_VALUE", "metadata must be an object");
  assertJson(metadata, "metadata");
  return JSON.stringify(metadata);
}

export function loadsMetadata(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw malformed("metadata that is not JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw malformed("metadata that is not a JSON object");
  return parsed as Record<string, unknown>;
}
