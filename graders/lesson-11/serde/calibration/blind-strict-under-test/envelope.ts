/**
 * The 8-byte header every format version shares, the option checks, and bounded inflation.
 * The body encodings live elsewhere; this file only knows bytes.
 */
import { constants as bufferConstants } from "node:buffer";
import { crc32, gunzipSync, gzipSync } from "node:zlib";
import { CURRENT_VERSION, SerdeError, type CustomType, type SerdeOptions } from "./index.ts";

export const MAGIC0 = 0x63; // "c"
export const MAGIC1 = 0x6b; // "k"
export const FLAG_GZIP = 0x01;
const KNOWN_FLAGS = FLAG_GZIP;
export const TAG_PLAIN = "ck";
export const TAG_GZIP = "ck+gzip";

export const DEFAULT_COMPRESS_ABOVE = 64 * 1024;
export const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;
export const MAX_DEPTH = 512;

export interface Settings {
  compressAbove: number;
  maxDecodedBytes: number;
  byName: Map<string, CustomType<any>>;
  byProto: Map<object, CustomType<any>>;
}

export function settingsFrom(options: SerdeOptions): Settings {
  if (options === null || typeof options !== "object") throw new SerdeError("BAD_OPTIONS", "options must be an object");
  const compressAbove = options.compressAbove ?? DEFAULT_COMPRESS_ABOVE;
  if (typeof compressAbove !== "number" || Number.isNaN(compressAbove) || compressAbove < 0) {
    throw new SerdeError("BAD_OPTIONS", `compressAbove must be a non-negative number of bytes, got ${String(compressAbove)}`);
  }
  const maxDecodedBytes = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  if (typeof maxDecodedBytes !== "number" || !Number.isInteger(maxDecodedBytes) || maxDecodedBytes <= 0) {
    throw new SerdeError("BAD_OPTIONS", `maxDecodedBytes must be a positive integer, got ${String(maxDecodedBytes)}`);
  }
  const byName = new Map<string, CustomType<any>>();
  const byProto = new Map<object, CustomType<any>>();
  const types = options.types ?? [];
  if (!Array.isArray(types)) throw new SerdeError("BAD_OPTIONS", "types must be an array");
  for (const t of types) {
    if (t === null || typeof t !== "object") throw new SerdeError("BAD_OPTIONS", "each custom type must be an object");
    if (typeof t.name !== "string" || t.name.length === 0) throw new SerdeError("BAD_OPTIONS", "a custom type needs a non-empty name");
    if (typeof t.class !== "function" || t.class.prototype === null || typeof t.class.prototype !== "object") {
      throw new SerdeError("BAD_OPTIONS", `custom type "${t.name}" needs a class`);
    }
    if (typeof t.encode !== "function" || typeof t.decode !== "function") {
      throw new SerdeError("BAD_OPTIONS", `custom type "${t.name}" needs encode and decode functions`);
    }
    if (byName.has(t.name)) throw new SerdeError("BAD_OPTIONS", `custom type name "${t.name}" is registered twice`);
    if (byProto.has(t.class.prototype)) throw new SerdeError("BAD_OPTIONS", `class ${t.class.name} is registered twice`);
    byName.set(t.name, t);
    byProto.set(t.class.prototype, t);
  }
  return { compressAbove, maxDecodedBytes, byName, byProto };
}

/** Header + optional gzip around an encoded body. */
export function seal(body: Uint8Array, settings: Settings): [string, Uint8Array] {
  let stored = body;
  let flags = 0;
  if (body.length > settings.compressAbove) {
    stored = gzipSync(body);
    flags |= FLAG_GZIP;
  }
  const bytes = new Uint8Array(8 + stored.length);
  bytes[0] = MAGIC0;
  bytes[1] = MAGIC1;
  bytes[2] = CURRENT_VERSION;
  bytes[3] = flags;
  bytes.set(stored, 8);
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(4, crc32(stored, crc32(bytes.subarray(0, 4))));
  return [flags & FLAG_GZIP ? TAG_GZIP : TAG_PLAIN, bytes];
}

export interface Opened {
  version: number;
  body: Uint8Array;
}

/** Checks tag, header, checksum, version, flags and size, in that order; returns the plain body. */
export function open(typed: unknown, settings: Settings): Opened {
  if (!Array.isArray(typed) || typed.length !== 2) {
    throw new SerdeError("MALFORMED", "expected a [typeTag, bytes] pair");
  }
  const [tag, bytes] = typed as [unknown, unknown];
  if (tag !== TAG_PLAIN && tag !== TAG_GZIP) {
    throw new SerdeError("UNKNOWN_TAG", `unknown type tag ${JSON.stringify(String(tag))}; this code reads "ck" and "ck+gzip"`);
  }
  if (!(bytes instanceof Uint8Array)) throw new SerdeError("MALFORMED", "the bytes must be a Uint8Array");
  if (bytes.length < 8) throw new SerdeError("MALFORMED", `truncated: ${bytes.length} bytes, the header alone is 8`);
  if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) throw new SerdeError("MALFORMED", "bad magic: these bytes are not a checkpoint body");
  const stored = bytes.subarray(8);
  const expected = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4);
  const actual = crc32(stored, crc32(bytes.subarray(0, 4)));
  if (expected !== actual) {
    throw new SerdeError("CHECKSUM", `checksum mismatch: header says ${hex(expected)}, bytes give ${hex(actual)}`);
  }
  const version = bytes[2]!;
  if (version < 1 || version > CURRENT_VERSION) {
    throw new SerdeError("UNSUPPORTED_VERSION", `format version ${version}; this code reads 1 to ${CURRENT_VERSION}`);
  }
  const flags = bytes[3]!;
  if (flags & ~KNOWN_FLAGS) throw new SerdeError("MALFORMED", `unknown flag bits 0x${flags.toString(16)} in format version ${version}`);
  const gz = (flags & FLAG_GZIP) !== 0;
  if (gz !== (tag === TAG_GZIP)) {
    throw new SerdeError("MALFORMED", `tag "${tag}" does not match the header, which says the body is ${gz ? "" : "not "}gzipped`);
  }
  if (!gz) {
    if (stored.length > settings.maxDecodedBytes) {
      throw new SerdeError("TOO_LARGE", `body of ${stored.length} bytes is over the limit of ${settings.maxDecodedBytes}`);
    }
    return { version, body: stored };
  }
  return { version, body: inflate(stored, settings.maxDecodedBytes) };
}

function inflate(stored: Uint8Array, limit: number): Uint8Array {
  try {
    // maxOutputLength makes zlib stop as soon as the output passes the limit.
    return gunzipSync(stored, { maxOutputLength: Math.min(limit, bufferConstants.MAX_LENGTH) });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError) {
      throw new SerdeError("TOO_LARGE", `gzipped body inflates past the limit of ${limit} bytes; stopped there`);
    }
    throw new SerdeError("MALFORMED", `gzipped body does not inflate: ${(err as Error).message}`);
  }
}

function hex(n: number): string {
  return "0x" + n.toString(16).padStart(8, "0");
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SerdeError("MALFORMED", `${what} is not valid UTF-8`);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
