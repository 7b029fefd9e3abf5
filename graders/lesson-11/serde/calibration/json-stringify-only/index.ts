/**
 * Planted mistake: JSON.stringify is the whole serializer. The header and checksum are
 * right, but Dates come back as strings, Maps and Sets as {}, undefined as null or nothing,
 * and BigInt throws a TypeError.
 */
import { crc32 } from "node:zlib";

// The error type and the metadata path are right: the planted mistake is in the body encoding only.
export class SerdeError extends Error {
  override name = "SerdeError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  const json = (value: unknown): boolean =>
    value === null ||
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value)) ||
    (Array.isArray(value) && value.every(json)) ||
    (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype && Object.values(value as object).every(json));
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata) || !json(metadata)) throw new SerdeError("UNSUPPORTED_VALUE", "Metadata must be a plain JSON object.");
  return JSON.stringify(metadata);
}

export function loadsMetadata(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SerdeError("MALFORMED", "Metadata is not JSON.");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SerdeError("MALFORMED", "Metadata must be a JSON object.");
  return parsed as Record<string, unknown>;
}

export const CURRENT_VERSION = 2;

export function createSerde() {
  return { dumpsTyped, loadsTyped };
}

export function dumpsTyped(value: unknown): [string, Uint8Array] {
  const body = Buffer.from(JSON.stringify(value), "utf8");
  const bytes = new Uint8Array(8 + body.length);
  bytes.set([0x63, 0x6b, CURRENT_VERSION, 0]);
  bytes.set(body, 8);
  new DataView(bytes.buffer).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return ["ck", bytes];
}

export function loadsTyped([tag, bytes]: readonly [string, Uint8Array]): unknown {
  if (tag !== "ck") throw new SerdeError("UNKNOWN_TAG", `Unknown tag ${tag}.`);
  if (bytes.length < 8 || bytes[0] !== 0x63 || bytes[1] !== 0x6b) throw new SerdeError("MALFORMED", "Bad header.");
  const body = bytes.subarray(8);
  if (crc32(body, crc32(bytes.subarray(0, 4))) !== new DataView(bytes.buffer, bytes.byteOffset).getUint32(4)) throw new SerdeError("CHECKSUM", "Checksum mismatch.");
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new SerdeError("MALFORMED", `Not JSON: ${(error as Error).message}`);
  }
}

