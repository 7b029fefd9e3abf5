/**
 * lesson-11 / serde: typed serialization of checkpoints.
 * Read lessons/lesson-11/serde.md first.
 *
 * Build a serializer for checkpoint bodies that keeps every value's type, and a
 * separate plain-JSON path for metadata.
 *
 *   dumpsTyped(value)            -> [typeTag, bytes]   typeTag: "ck", or "ck+gzip" when compressed
 *   loadsTyped([typeTag, bytes]) -> value
 *   createSerde({ types?, compressAbove?, maxDecodedBytes? }) -> { dumpsTyped, loadsTyped }
 *   dumpsMetadata(metadata) -> string (plain JSON)   loadsMetadata(string) -> object
 *   SerdeError(code, message)    the only error this module throws
 *
 * The bytes (so that other tools, and the grader, can read and forge them):
 *
 *   offset 0  "c" "k"                 magic (0x63 0x6b)
 *   offset 2  format version (1 byte)  CURRENT_VERSION when written
 *   offset 3  0                        reserved
 *   offset 4  CRC-32 of the body       4 bytes, big-endian (node:zlib crc32)
 *   offset 8  body                     UTF-8 JSON of the encoded value; gzipped when the tag is "ck+gzip"
 *
 * In the body, values JSON cannot hold are tagged objects: { "$t": kind, "v": ... }, with
 * kinds "undef", "num" ("NaN" | "Infinity" | "-Infinity" | "-0"), "bigint" (decimal string),
 * "date" (ISO-8601 string, or null for an invalid Date), "map" ([[key, value], ...]),
 * "set" ([...]), "u8" (base64), "hole" (a missing array element), "obj" ([[key, value], ...],
 * for a plain object that has a "$t" key of its own) and "custom" ({ "$t": "custom",
 * "name": registered name, "v": encoded data }). Format version 1 wrote dates as epoch
 * milliseconds ({ "$t": "date", "v": 1700000000000 }); version 2 (current) writes ISO strings.
 *
 * What the grader checks, in order (each failure names the lesson section to read):
 * - core: JSON values round-trip; the tag is a string, the bytes a Uint8Array;
 * - core: Date, Map (any keys), Set, BigInt, Uint8Array, undefined (in objects and arrays,
 *   distinct from null), NaN, ±Infinity and -0 round-trip;
 * - core: unknown tags, truncated, corrupted (checksum) or malformed bytes throw SerdeError
 *   with a message, never a SyntaxError and never a wrong value;
 * - core: metadata is plain JSON, readable with JSON.parse;
 * - excellence: arbitrary nested values round-trip (property-based); version-1 bodies load
 *   through a migration and newer versions are refused; registered classes come back as
 *   instances, unregistered ones are refused, and nothing named by a payload is constructed;
 *   `__proto__` keys stay data; a repetitive 1 MB state compresses to at most half; a
 *   decompression bomb is refused (maxDecodedBytes).
 */

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

export function createSerde(options: SerdeOptions = {}): Serde {
  // TODO: encode values into the tagged JSON tree described above, write the header, compress
  // above options.compressAbove; on load check tag, header, version and checksum, inflate with
  // a limit, migrate old versions, then rebuild the values. Custom types come only from options.types.
  void options;
  return {
    dumpsTyped(value) {
      void value;
      throw new SerdeError("UNSUPPORTED_VALUE", "TODO: implement dumpsTyped");
    },
    loadsTyped(typed) {
      void typed;
      throw new SerdeError("MALFORMED", "TODO: implement loadsTyped");
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  // TODO: plain JSON of a plain object; refuse values JSON cannot hold with SerdeError.
  void metadata;
  throw new SerdeError("UNSUPPORTED_VALUE", "TODO: implement dumpsMetadata");
}

export function loadsMetadata(json: string): Record<string, unknown> {
  // TODO: parse, check it is an object, wrap parse errors in SerdeError.
  void json;
  throw new SerdeError("MALFORMED", "TODO: implement loadsMetadata");
}
