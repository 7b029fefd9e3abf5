/**
 * lesson-11 / serde: typed serialization of checkpoints.
 *
 * Format version 2 body: v8.serialize (the structured-clone wire format Node ships), which
 * already keeps Date, Map, Set, BigInt, Uint8Array, undefined, holes, NaN, ±Infinity and -0.
 * What it does not do is the allow-list: it would write any class instance as a plain object
 * and read back whatever object kinds the payload holds. So both directions go through a pass:
 *
 *   dump:  value --prepare--> clone-safe tree --v8.serialize--> body
 *   load:  body --v8.deserialize--> tree --revive--> value
 *
 * prepare refuses everything that is not a built-in we round-trip or a registered class, and
 * writes a registered instance as { $t: "custom", name: <UTF-8 bytes>, v: encoded }; a plain
 * object that has a "$t" key of its own is escaped as { $t: "obj", v: [[key, value], ...] }.
 * revive accepts only the kinds prepare can write, so a crafted body cannot smuggle in a
 * RegExp, an Error or a name outside options.types.
 *
 * Version-1 bodies (legacy-v1.ts) are read by v1.ts; the header, checksum and inflation are
 * in envelope.ts.
 */
import { deserialize, serialize } from "node:v8";
import { decodeUtf8, errorText, MAX_DEPTH, open, seal, settingsFrom, type Settings } from "./envelope.ts";
import { decodeV1, parseV1Tree } from "./v1.ts";

export const CURRENT_VERSION = 2;

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
  /** Body size in bytes above which the body is gzipped (default: your choice, e.g. 64 KiB). */
  compressAbove?: number;
  /** Largest body accepted on decode, after decompression. */
  maxDecodedBytes?: number;
}

export interface Serde {
  dumpsTyped(value: unknown): [typeTag: string, bytes: Uint8Array];
  loadsTyped(typed: readonly [typeTag: string, bytes: Uint8Array]): unknown;
}

const utf8 = new TextEncoder();

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function describe(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  return typeof name === "string" && name ? `an instance of ${name}` : "an object with a foreign prototype";
}

/** value -> a tree v8 can clone and revive can check. */
function prepare(root: unknown, settings: Settings): unknown {
  const onPath = new Set<object>();
  const walk = (v: unknown, depth: number): unknown => {
    switch (typeof v) {
      case "undefined":
      case "boolean":
      case "number":
      case "string":
      case "bigint":
        return v;
      case "symbol":
        throw new SerdeError("UNSUPPORTED_VALUE", "a symbol cannot be stored in a checkpoint");
      case "function":
        throw new SerdeError("UNSUPPORTED_VALUE", `a function (${(v as { name?: string }).name || "anonymous"}) cannot be stored in a checkpoint`);
    }
    if (v === null) return null;
    const obj = v as object;
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `value nests deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(obj)) throw new SerdeError("CYCLE", "value contains itself (a cycle); checkpoints hold trees");
    onPath.add(obj);
    try {
      return container(obj, depth);
    } finally {
      onPath.delete(obj);
    }
  };

  const container = (obj: object, depth: number): unknown => {
    const proto = Object.getPrototypeOf(obj);
    const type = settings.byProto.get(proto);
    if (type) {
      let data: unknown;
      try {
        data = type.encode(obj);
      } catch (err) {
        throw new SerdeError("UNSUPPORTED_VALUE", `custom type "${type.name}" could not encode its value: ${errorText(err)}`);
      }
      return { $t: "custom", name: utf8.encode(type.name), v: walk(data, depth + 1) };
    }
    if (proto === Array.prototype && Array.isArray(obj)) {
      const src = obj as unknown[];
      const out = new Array<unknown>(src.length);
      for (const key of Object.keys(src)) {
        const i = Number(key);
        if (Number.isInteger(i) && i >= 0 && String(i) === key) out[i] = walk(src[i], depth + 1);
      }
      return out;
    }
    if (proto === Date.prototype) return new Date((obj as Date).getTime());
    if (proto === Map.prototype) {
      const out = new Map<unknown, unknown>();
      for (const [k, x] of obj as Map<unknown, unknown>) out.set(walk(k, depth + 1), walk(x, depth + 1));
      return out;
    }
    if (proto === Set.prototype) {
      const out = new Set<unknown>();
      for (const x of obj as Set<unknown>) out.add(walk(x, depth + 1));
      return out;
    }
    if (proto === Uint8Array.prototype) return new Uint8Array(obj as Uint8Array);
    if (proto === Object.prototype || proto === null) {
      const src = obj as Record<string, unknown>;
      const keys = Object.keys(src);
      if (keys.includes("$t")) return { $t: "obj", v: keys.map((k) => [k, walk(src[k], depth + 1)]) };
      const out: Record<string, unknown> = {};
      for (const k of keys) define(out, k, walk(src[k], depth + 1));
      return out;
    }
    throw new SerdeError(
      "UNSUPPORTED_VALUE",
      `${describe(obj)} is not a registered custom type; register it in options.types (it would load back without its prototype)`,
    );
  };
  return walk(root, 0);
}

function bad(msg: string): never {
  throw new SerdeError("MALFORMED", msg);
}

/** The deserialized tree -> value. Accepts only what prepare writes. */
function revive(root: unknown, settings: Settings): unknown {
  const onPath = new Set<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== "object") {
      if (typeof v === "function" || typeof v === "symbol") bad(`unexpected ${typeof v} in body`);
      return v;
    }
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `body nests deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(v)) bad("body contains a reference cycle, which this writer never produces");
    onPath.add(v);
    try {
      return node(v, depth);
    } finally {
      onPath.delete(v);
    }
  };
  const node = (obj: object, depth: number): unknown => {
    const proto = Object.getPrototypeOf(obj);
    if (proto === Array.prototype) {
      const src = obj as unknown[];
      const out = new Array<unknown>(src.length);
      for (const key of Object.keys(src)) {
        const i = Number(key);
        if (!(Number.isInteger(i) && i >= 0 && String(i) === key)) bad(`array carries a non-index property ${JSON.stringify(key)}`);
        out[i] = walk(src[i], depth + 1);
      }
      return out;
    }
    if (proto === Date.prototype) return obj;
    if (proto === Map.prototype) {
      const out = new Map<unknown, unknown>();
      for (const [k, x] of obj as Map<unknown, unknown>) out.set(walk(k, depth + 1), walk(x, depth + 1));
      return out;
    }
    if (proto === Set.prototype) {
      const out = new Set<unknown>();
      for (const x of obj as Set<unknown>) out.add(walk(x, depth + 1));
      return out;
    }
    if (proto === Uint8Array.prototype) return obj;
    if (proto !== Object.prototype) bad(`body holds ${describe(obj)}, which this format never writes`);
    const src = obj as Record<string, unknown>;
    const keys = Object.keys(src);
    if (!Object.hasOwn(src, "$t")) {
      const out: Record<string, unknown> = {};
      for (const k of keys) define(out, k, walk(src[k], depth + 1));
      return out;
    }
    const kind = src.$t;
    if (kind === "obj") {
      if (keys.length !== 2 || !Object.hasOwn(src, "v") || !Array.isArray(src.v)) bad(`an escaped object must be { $t: "obj", v: [...] }`);
      const out: Record<string, unknown> = {};
      for (const entry of src.v as unknown[]) {
        if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string") bad("an escaped object entry must be [key, value]");
        if (Object.hasOwn(out, entry[0])) bad(`an escaped object repeats the key ${JSON.stringify(entry[0])}`);
        define(out, entry[0], walk(entry[1], depth + 1));
      }
      return out;
    }
    if (kind === "custom") {
      if (keys.length !== 3 || !Object.hasOwn(src, "name") || !Object.hasOwn(src, "v")) bad(`a custom value must be { $t, name, v }`);
      if (!(src.name instanceof Uint8Array)) bad("a custom value's name must be UTF-8 bytes");
      const name = decodeUtf8(src.name, "a custom type name");
      const type = settings.byName.get(name);
      if (!type) throw new SerdeError("UNKNOWN_TYPE", `body names custom type ${JSON.stringify(name)}, which is not registered`);
      const data = walk(src.v, depth + 1);
      try {
        return type.decode(data);
      } catch (err) {
        throw new SerdeError("MALFORMED", `custom type "${name}" refused its data: ${errorText(err)}`);
      }
    }
    return bad(`unknown tagged kind ${JSON.stringify(kind)}`);
  };
  return walk(root, 0);
}

export function createSerde(options: SerdeOptions = {}): Serde {
  const settings = settingsFrom(options);
  return {
    dumpsTyped(value) {
      const tree = prepare(value, settings);
      let body: Uint8Array;
      try {
        body = serialize(tree);
      } catch (err) {
        throw new SerdeError("UNSUPPORTED_VALUE", `value cannot be serialized: ${errorText(err)}`);
      }
      return seal(body, settings);
    },
    loadsTyped(typed) {
      const { version, body } = open(typed, settings);
      if (version === 1) return decodeV1(parseV1Tree(body), settings);
      let tree: unknown;
      try {
        tree = deserialize(body);
      } catch (err) {
        throw new SerdeError("MALFORMED", `format version ${version} body does not decode: ${errorText(err)}`);
      }
      return revive(tree, settings);
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

/** Metadata: plain JSON values only, so a filter on it means what it says. */
function refuseNonJson(this: unknown, key: string, value: unknown): unknown {
  const where = key === "" ? "metadata" : `metadata field ${JSON.stringify(key)}`;
  switch (typeof value) {
    case "undefined":
      throw new SerdeError("UNSUPPORTED_VALUE", `${where} is undefined; JSON would drop it`);
    case "bigint":
      throw new SerdeError("UNSUPPORTED_VALUE", `${where} is a BigInt; write it as a string on purpose`);
    case "function":
    case "symbol":
      throw new SerdeError("UNSUPPORTED_VALUE", `${where} is a ${typeof value}; metadata holds JSON values only`);
    case "number":
      if (!Number.isFinite(value)) throw new SerdeError("UNSUPPORTED_VALUE", `${where} is ${value}, which JSON writes as null`);
      return value;
  }
  if (value instanceof Date) {
    throw new SerdeError("UNSUPPORTED_VALUE", `${where} is a Date; write it as an ISO string or epoch ms on purpose`);
  }
  if (value instanceof Map || value instanceof Set || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    throw new SerdeError("UNSUPPORTED_VALUE", `${where} is ${describe(value)}; metadata holds JSON values only`);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!Object.hasOwn(value, i)) throw new SerdeError("UNSUPPORTED_VALUE", `${where} has a hole at ${i}; JSON would write null`);
    }
  }
  return value;
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new SerdeError("UNSUPPORTED_VALUE", "metadata must be a plain object");
  }
  try {
    return JSON.stringify(metadata, refuseNonJson);
  } catch (err) {
    if (err instanceof SerdeError) throw err;
    // JSON.stringify's own TypeError: a cycle
    throw new SerdeError("CYCLE", `metadata cannot be written as JSON: ${errorText(err)}`);
  }
}

export function loadsMetadata(json: string): Record<string, unknown> {
  if (typeof json !== "string") throw new SerdeError("MALFORMED", "metadata must be a JSON string");
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new SerdeError("MALFORMED", `metadata is not JSON: ${errorText(err)}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new SerdeError("MALFORMED", "metadata must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}
