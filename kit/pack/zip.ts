/**
 * Unpacks a .zip submission (candidates on Windows and macOS zip their folder)
 * with node:zlib alone: the central directory lists the entries, each is stored
 * or deflated. Entries that would land outside the target folder, links and
 * node_modules/ are skipped; sizes are bounded, so a zip bomb is refused.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, normalize, sep } from "node:path";
import { inflateRawSync } from "node:zlib";

export class ZipError extends Error {
  override name = "ZipError";
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_FILE_HEADER = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;
/** A submission is source code: more than this unpacked is not one. */
const MAX_TOTAL_BYTES = 200 * 2 ** 20;

export interface ZipEntry {
  path: string;
  data: Buffer;
}

export function readZip(file: string): ZipEntry[] {
  const zip = readFileSync(file);
  let end = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === END_OF_CENTRAL_DIRECTORY) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new ZipError(`${file} is not a zip archive (no central directory).`);
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const entries: ZipEntry[] = [];
  let total = 0;
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(offset) !== CENTRAL_FILE_HEADER) throw new ZipError(`${file}: damaged central directory.`);
    const flags = zip.readUInt16LE(offset + 8);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const size = zip.readUInt32LE(offset + 24);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const externalAttributes = zip.readUInt32LE(offset + 38);
    const localOffset = zip.readUInt32LE(offset + 42);
    const path = zip.toString(flags & 0x800 ? "utf8" : "latin1", offset + 46, offset + 46 + nameLength).replace(/\\/g, "/");
    offset += 46 + nameLength + extraLength + commentLength;
    const isLink = ((externalAttributes >>> 16) & 0o170000) === 0o120000;
    if (path.endsWith("/") || isLink) continue;
    if (flags & 0x1) throw new ZipError(`${file}: ${path} is encrypted; send the archive without a password.`);
    total += size;
    if (total > MAX_TOTAL_BYTES) throw new ZipError(`${file} unpacks to more than ${MAX_TOTAL_BYTES / 2 ** 20} MB; a submission is source code.`);
    if (zip.readUInt32LE(localOffset) !== LOCAL_FILE_HEADER) throw new ZipError(`${file}: damaged entry ${path}.`);
    const dataStart = localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28);
    const raw = zip.subarray(dataStart, dataStart + compressedSize);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) data = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) });
    else throw new ZipError(`${file}: ${path} uses compression method ${method}; zip it with the usual deflate.`);
    entries.push({ path, data });
  }
  return entries;
}

/** Writes the zip's entries under `dir`, skipping node_modules/ and anything that would escape `dir`. */
export function extractZip(file: string, dir: string): void {
  for (const { path, data } of readZip(file)) {
    const target = normalize(join(dir, path));
    if (!target.startsWith(`${normalize(dir)}${sep}`) || path.split("/").includes("node_modules") || path.startsWith("__MACOSX/")) continue;
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, data);
  }
}
