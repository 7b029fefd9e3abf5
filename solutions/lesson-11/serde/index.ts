/**
 * Reference: typed serialization of checkpoints (lesson-11 / serde).
 *
 * A checkpoint body goes out as [typeTag, bytes]. The tag names the encoding
 * ("ck", or "ck+gzip" when compressed); the bytes are the contract's fixed 8-byte
 * header (magic, format version, flags, CRC-32 of header and body) followed by the
 * body. The body encoding is this module's own choice: UTF-8 JSON in which every
 * value JSON cannot hold is a tagged object { "$t": kind, ... } (the same tree that
 * format version 1 wrote, with dates as ISO strings instead of epoch milliseconds).
 * Metadata takes a separate path: plain JSON, queryable without this module.
 */
import { crc32, gunzipSync, gzipSync } from "node:zlib";
import { z } from "zod";

/** Format version written today. Older versions load through MIGRATIONS; newer ones are refused. */
export const CURRENT_VERSION = 2;
export const TAG = "ck";
export const COMPRESSED_TAG = "ck+gzip";
const MAGIC = [0x63, 0x6b]; // "ck"
const HEADER_BYTES = 8; // magic (2) | version (1) | flags (1) | crc32 of bytes 0-3 + body (4, big-endian)
const FLAG_GZIP = 0x01;
const MAX_DEPTH = 512;
// A value MAX_DEPTH deep encodes to a deeper tree (a Map level adds { $t, v: [[k, v]] }); bound the tree so every recursive pass below is safe.
// Stryker disable next-line ArithmeticOperator: the bound's value is the implementation's (the contract leaves it open); any bound between the deepest tree the encoder writes and the stack's limit behaves the same
const MAX_TREE_DEPTH = 4 * MAX_DEPTH + 8;

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
  // Stryker disable next-line StringLiteral: the contract tells a SerdeError by its class and its code; the name only changes how it prints
  override name = "SerdeError";
  constructor(
    readonly code: SerdeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A class the serializer may rebuild: the allow-list entry. */
export interface CustomType<T = unknown> {
  /** Stable name written into the payload; never a class name looked up at load time. */
  name: string;
  class: abstract new (...args: never[]) => T;
  encode(value: T): unknown;
  decode(data: unknown): T;
}

export interface SerdeOptions {
  types?: CustomType<any>[];
  /** Body size (bytes) above which the body is gzipped. Default 64 KiB. */
  compressAbove?: number;
  /** Largest body accepted on decode, after decompression. Default 64 MiB. */
  maxDecodedBytes?: number;
}

export interface Serde {
  dumpsTyped(value: unknown): [typeTag: string, bytes: Uint8Array];
  loadsTyped(typed: readonly [typeTag: string, bytes: Uint8Array]): unknown;
}

type Encoded = null | boolean | number | string | Encoded[] | { [key: string]: Encoded };

/**
 * Upgrades a body written by format version n to version n + 1, on the encoded
 * tree, before decoding. Version 1 stored Dates as epoch milliseconds.
 */
export const MIGRATIONS: Readonly<Record<number, (body: Encoded) => Encoded>> = {
  1: function datesFromEpochMillis(body) {
    if (Array.isArray(body)) return body.map(MIGRATIONS[1]!);
    if (body === null || typeof body !== "object") return body;
    if (body.$t === "date") {
      // Version 1 wrote epoch milliseconds (null for an invalid Date); anything else is malformed, even a string today's decoder would read.
      if (body.v === null) return body;
      const date = typeof body.v === "number" ? new Date(body.v) : new Date(Number.NaN);
      if (Number.isNaN(date.getTime())) throw malformed("Malformed version-1 body: a version-1 date must be epoch milliseconds.");
      return { $t: "date", v: date.toISOString() };
    }
    const upgraded: { [key: string]: Encoded } = {};
    for (const [key, value] of Object.entries(body)) defineOwn(upgraded, key, MIGRATIONS[1]!(value));
    return upgraded;
  },
};

/** Sets an own data property, even for "__proto__" (plain assignment would call the prototype setter). */
function defineOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  // Stryker disable next-line ConditionalExpression: the contract is silent on null-prototype objects (no check builds one)
  return proto === Object.prototype || proto === null;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const INTEGER = /^-?\d+$/;
const SPECIAL_NUMBERS: Record<string, number> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 };

const callable = z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", "expected a function");
const OPTIONS = z.object({
  types: z.array(z.object({ name: z.string().min(1), class: callable, encode: callable, decode: callable })).optional(),
  compressAbove: z
    .union([z.number().nonnegative(), z.literal(Infinity)], { error: "compressAbove must be a size in bytes (>= 0), or Infinity to never compress" })
    .optional(),
  maxDecodedBytes: z.number().int().positive().optional(),
});

/**
 * The serializer. A class so that its pieces have names (encode, decode,
 * typeNamed) a reader can find; configure it through createSerde.
 */
export class TypedSerde implements Serde {
  private readonly types: CustomType<any>[];
  private readonly byName: Map<string, CustomType<any>>;
  private readonly compressAbove: number;
  private readonly maxDecodedBytes: number;

  constructor(options: SerdeOptions = {}) {
    const parsed = OPTIONS.safeParse(options);
    if (!parsed.success) throw new SerdeError("BAD_OPTIONS", `Invalid createSerde options: ${z.prettifyError(parsed.error)}`);
    this.types = options.types ?? []; // the caller's entries, not zod's copies: class identity matters
    this.compressAbove = parsed.data.compressAbove ?? 64 * 1024;
    this.maxDecodedBytes = parsed.data.maxDecodedBytes ?? 64 * 1024 * 1024;
    this.byName = new Map(this.types.map((t) => [t.name, t]));
    if (this.byName.size !== this.types.length) throw new SerdeError("BAD_OPTIONS", "Two custom types share a name; names must be unique.");
  }

  /** The allow-list lookup: the only way a payload's type name becomes a class. */
  protected typeNamed(name: unknown): CustomType<any> | undefined {
    return this.byName.get(name as string); // a Map of registered names: anything else (a number, an object) is simply absent
  }

  protected encode(value: unknown, path: string, seen: Set<object>, depth: number): Encoded {
    // Stryker disable next-line EqualityOperator,MethodExpression: the depth limit's value is the implementation's (> or >= only moves it by one level); the path only names the spot in the message
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `Value nested deeper than ${MAX_DEPTH} levels (at ${path.slice(0, 40)}…); a checkpoint this deep is almost certainly a bug.`);
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        if (!Number.isFinite(value)) return { $t: "num", v: String(value) }; // "NaN", "Infinity" or "-Infinity"
        return Object.is(value, -0) ? { $t: "num", v: "-0" } : value;
      case "bigint":
        return { $t: "bigint", v: value.toString() };
      case "undefined":
        return { $t: "undef" };
      case "object":
        break;
      // Stryker disable next-line ConditionalExpression: without this case a function or symbol is still refused below, as an instance that is not a plain object (UNSUPPORTED_VALUE); the case only words the message better
      default:
        throw new SerdeError("UNSUPPORTED_VALUE", `Cannot serialize a ${typeof value} at ${path}: store data, not behaviour.`);
    }
    if (value === null) return null;
    if (seen.has(value)) throw new SerdeError("CYCLE", `Cyclic reference at ${path}: a checkpoint must be a tree.`);
    seen.add(value);
    try {
      return this.encodeObject(value, path, seen, depth);
    } finally {
      seen.delete(value);
    }
  }

  private encodeObject(value: object, path: string, seen: Set<object>, depth: number): Encoded {
    const next = (child: unknown, at: string) => this.encode(child, at, seen, depth + 1);
    if (Array.isArray(value)) {
      const items: Encoded[] = [];
      // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
      for (let i = 0; i < value.length; i++) items.push(i in value ? next(value[i], `${path}[${i}]`) : { $t: "hole" });
      return items;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    // Registered types first, so a registered subclass of Map or Date keeps its class.
    const custom = this.types.find((t) => proto === t.class.prototype);
    // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
    if (custom) return { $t: "custom", name: custom.name, v: next(custom.encode(value), `${path}<${custom.name}>`) };
    // Exact prototypes: a subclass (Buffer, a Map subclass) would come back as its base class, so it is refused below.
    if (proto === Date.prototype) return { $t: "date", v: Number.isNaN((value as Date).getTime()) ? null : (value as Date).toISOString() };
    // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
    if (proto === Map.prototype) return { $t: "map", v: [...(value as Map<unknown, unknown>)].map(([k, v], i) => [next(k, `${path}<key ${i}>`), next(v, `${path}<value ${i}>`)]) };
    // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
    if (proto === Set.prototype) return { $t: "set", v: [...(value as Set<unknown>)].map((v, i) => next(v, `${path}<item ${i}>`)) };
    if (proto === Uint8Array.prototype) return { $t: "u8", v: Buffer.from(value as Uint8Array).toString("base64") };
    if (!isPlainObject(value)) {
      // Stryker disable next-line OptionalChaining,LogicalOperator,StringLiteral: only the wording of the message depends on it
      const className = value.constructor?.name ?? "an object with a custom prototype";
      throw new SerdeError("UNSUPPORTED_VALUE", `Cannot serialize an instance of ${className} at ${path}: register it with createSerde({ types: [...] }).`);
    }
    // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
    const entries = Object.keys(value).map((key) => [key, next((value as Record<string, unknown>)[key], `${path}.${key}`)] as const);
    // A plain object with a "$t" key of its own is written as entries, so it cannot pass for a tagged value.
    // Stryker disable next-line ConditionalExpression: escaping an object without a "$t" key too is only another encoding of it; it loads back the same
    if (entries.some(([key]) => key === "$t")) return { $t: "obj", v: entries.map(([k, v]) => [k, v]) };
    const out: { [key: string]: Encoded } = {};
    for (const [key, encoded] of entries) defineOwn(out, key, encoded);
    return out;
  }

  protected decode(node: Encoded, path: string): unknown {
    if (node === null || typeof node !== "object") return node;
    if (Array.isArray(node)) {
      const out: unknown[] = new Array(node.length);
      node.forEach((item, i) => {
        // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
        if ((item as { $t?: unknown } | null)?.$t !== "hole") out[i] = this.decode(item, `${path}[${i}]`);
      });
      return out;
    }
    if (!Object.hasOwn(node, "$t")) {
      const out: Record<string, unknown> = {};
      // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
      for (const key of Object.keys(node)) defineOwn(out, key, this.decode(node[key]!, `${path}.${key}`));
      return out;
    }
    const v = node.v;
    switch (node.$t) {
      case "undef":
        return undefined;
      case "num":
        if (typeof v === "string" && Object.hasOwn(SPECIAL_NUMBERS, v)) return SPECIAL_NUMBERS[v];
        throw malformed(`Malformed checkpoint body at ${path}: "${String(v)}" is not a special number.`);
      case "bigint":
        if (typeof v === "string" && INTEGER.test(v)) return BigInt(v);
        throw malformed(`Malformed checkpoint body at ${path}: a bigint must be a decimal integer string.`);
      case "date": {
        if (v === null) return new Date(Number.NaN);
        // Stryker disable next-line ConditionalExpression: after the version-1 migration a date is an ISO string or null; another shape can only come from a current-version body, whose encoding is the implementation's own
        const date = typeof v === "string" ? new Date(v) : new Date(Number.NaN);
        // Stryker disable next-line ConditionalExpression,StringLiteral: the migration refuses invalid version-1 dates; an invalid ISO string can only come from a current-version body (see above)
        if (Number.isNaN(date.getTime())) throw malformed(`Malformed checkpoint body at ${path}: a date must be an ISO-8601 string.`);
        return date;
      }
      case "u8":
        if (typeof v === "string" && BASE64.test(v)) return new Uint8Array(Buffer.from(v, "base64"));
        throw malformed(`Malformed checkpoint body at ${path}: bytes must be base64.`);
      case "map":
        if (!isPairList(v)) throw malformed(`Malformed checkpoint body at ${path}: a map must be a list of [key, value] pairs.`);
        // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
        return new Map(v.map(([key, value], i) => [this.decode(key, `${path}<key ${i}>`), this.decode(value, `${path}<value ${i}>`)]));
      case "set":
        if (!Array.isArray(v)) throw malformed(`Malformed checkpoint body at ${path}: a set must be a list.`);
        // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
        return new Set(v.map((item, i) => this.decode(item, `${path}<item ${i}>`)));
      case "obj": {
        if (!isPairList(v) || !v.every(([key]) => typeof key === "string")) throw malformed(`Malformed checkpoint body at ${path}: an escaped object must be a list of [key, value] pairs.`);
        const out: Record<string, unknown> = {};
        // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
        for (const [key, value] of v) defineOwn(out, key as string, this.decode(value, `${path}.${String(key)}`));
        return out;
      }
      case "custom": {
        const type = this.typeNamed(node.name);
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `The payload names type "${String(node.name)}" at ${path}, which is not registered; refusing to build it.`);
        // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
        const data = this.decode(v as Encoded, `${path}<${type.name}>`);
        try {
          return type.decode(data);
        } catch (error) {
          throw malformed(`Malformed checkpoint body at ${path}: the registered type "${type.name}" could not decode its data (${(error as Error).message}).`);
        }
      }
      default:
        throw malformed(`Malformed checkpoint body at ${path}: unknown value kind "${String(node.$t)}".`);
    }
  }

  dumpsTyped(value: unknown): [string, Uint8Array] {
    // Stryker disable next-line StringLiteral: "$" is the root of the path named in error messages
    let body: Uint8Array = Buffer.from(JSON.stringify(this.encode(value, "$", new Set(), 0))); // UTF-8
    const compressed = body.length > this.compressAbove;
    if (compressed) body = gzipSync(body);
    const bytes = new Uint8Array(HEADER_BYTES + body.length);
    bytes.set([...MAGIC, CURRENT_VERSION, compressed ? FLAG_GZIP : 0], 0);
    bytes.set(body, HEADER_BYTES);
    new DataView(bytes.buffer).setUint32(4, checksum(bytes));
    return [compressed ? COMPRESSED_TAG : TAG, bytes];
  }

  loadsTyped(typed: readonly [string, Uint8Array]): unknown {
    if (!Array.isArray(typed)) throw new SerdeError("MALFORMED", "loadsTyped expects a [typeTag, bytes] pair.");
    const [tag, bytes] = typed;
    if (tag !== TAG && tag !== COMPRESSED_TAG) {
      throw new SerdeError("UNKNOWN_TAG", `Unknown type tag "${String(tag)}": this serializer reads "${TAG}" and "${COMPRESSED_TAG}".`);
    }
    if (!(bytes instanceof Uint8Array)) throw new SerdeError("MALFORMED", "The bytes must be a Uint8Array.");
    // Stryker disable next-line EqualityOperator: a header with no body at all (exactly 8 bytes) is refused either way, here or when its empty body does not decode
    if (bytes.length < HEADER_BYTES) throw new SerdeError("MALFORMED", `Not a checkpoint body: ${bytes.length} bytes, shorter than the 8-byte header.`);
    if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1]) throw new SerdeError("MALFORMED", 'Not a checkpoint body: it must start with the "ck" magic.');
    if (checksum(bytes) !== new DataView(bytes.buffer, bytes.byteOffset).getUint32(4)) {
      throw new SerdeError("CHECKSUM", "The bytes do not match their checksum: they were truncated or corrupted in storage.");
    }
    const version = bytes[2]!;
    if (version > CURRENT_VERSION || version < 1) {
      throw new SerdeError("UNSUPPORTED_VERSION", `Body written by format version ${version}; this code reads versions 1 to ${CURRENT_VERSION}. Upgrade the reader before resuming.`);
    }
    const flags = bytes[3]!;
    if ((flags & ~FLAG_GZIP) !== 0) throw new SerdeError("MALFORMED", `Unknown flags 0x${flags.toString(16)} in the header.`);
    if (Boolean(flags & FLAG_GZIP) !== (tag === COMPRESSED_TAG)) throw new SerdeError("MALFORMED", `The header's gzip flag (${flags & FLAG_GZIP}) contradicts the tag "${tag}".`);
    let body = bytes.subarray(HEADER_BYTES);
    if (tag === COMPRESSED_TAG) body = this.inflate(body);
    else if (body.length > this.maxDecodedBytes) throw new SerdeError("TOO_LARGE", `The body is ${body.length} bytes, over the limit of ${this.maxDecodedBytes}.`);
    let tree: Encoded;
    try {
      tree = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) as Encoded;
    } catch (error) {
      throw new SerdeError("MALFORMED", `The body is not UTF-8 JSON: ${(error as Error).message}.`);
    }
    assertTreeDepth(tree);
    for (let from = version; from < CURRENT_VERSION; from++) tree = MIGRATIONS[from]!(tree);
    // Stryker disable next-line StringLiteral: "$" is the root of the path named in error messages
    return this.decode(tree, "$");
  }

  private inflate(body: Uint8Array): Uint8Array {
    try {
      return gunzipSync(body, { maxOutputLength: this.maxDecodedBytes });
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
        throw new SerdeError("TOO_LARGE", `The body inflates past the limit of ${this.maxDecodedBytes} bytes; refusing it (a decompression bomb?).`);
      }
      throw new SerdeError("MALFORMED", `The compressed body does not inflate: ${(error as Error).message}.`);
    }
  }
}

/** CRC-32 of header bytes 0-3 followed by the stored body: everything but the checksum field itself. */
function checksum(bytes: Uint8Array): number {
  return crc32(bytes.subarray(HEADER_BYTES), crc32(bytes.subarray(0, 4)));
}

function malformed(message: string): SerdeError {
  return new SerdeError("MALFORMED", message);
}

/** Refuses a parsed tree nested past MAX_TREE_DEPTH, without recursion, so the passes that follow cannot overflow the stack. */
function assertTreeDepth(tree: Encoded): void {
  const pending: Array<[Encoded, number]> = [[tree, 0]];
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!;
    if (node === null || typeof node !== "object") continue;
    // Stryker disable next-line EqualityOperator: the bound's value is the implementation's (> or >= only moves it by one level)
    if (depth > MAX_TREE_DEPTH) throw new SerdeError("TOO_DEEP", `The body nests deeper than ${MAX_TREE_DEPTH} levels; refusing it.`);
    for (const child of Object.values(node)) pending.push([child, depth + 1]); // an array's values are its items
  }
}

function isPairList(value: unknown): value is Array<[Encoded, Encoded]> {
  return Array.isArray(value) && value.every((entry) => Array.isArray(entry) && entry.length === 2);
}

export function createSerde(options: SerdeOptions = {}): Serde {
  return new TypedSerde(options);
}

const defaultSerde = new TypedSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

/** Metadata: plain JSON, so a store can index and filter it without this serializer. */
export function dumpsMetadata(metadata: Record<string, unknown>): string {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new SerdeError("UNSUPPORTED_VALUE", "Metadata must be a plain object of JSON values.");
  }
  const check = (value: unknown, path: string): void => {
    if (value === null || typeof value === "string" || typeof value === "boolean") return;
    if (Number.isFinite(value)) return; // false for anything but a finite number
    // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
    if (Array.isArray(value)) return value.forEach((v, i) => check(v, `${path}[${i}]`));
    if (typeof value === "object" && isPlainObject(value)) {
      // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
      return Object.entries(value).forEach(([k, v]) => check(v, `${path}.${k}`));
    }
    throw new SerdeError("UNSUPPORTED_VALUE", `Metadata at ${path} is not a JSON value; keep metadata to strings, numbers, booleans, null, arrays and objects.`);
  };
  // Stryker disable next-line StringLiteral: the path only names the spot in error messages; the contract asks for a message that says what was wrong, not for its wording
  check(metadata, "metadata");
  return JSON.stringify(metadata);
}

export function loadsMetadata(json: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new SerdeError("MALFORMED", `Metadata is not JSON: ${(error as Error).message}.`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SerdeError("MALFORMED", "Metadata must be a JSON object.");
  return parsed as Record<string, unknown>;
}
