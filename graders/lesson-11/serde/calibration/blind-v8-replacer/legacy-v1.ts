/**
 * What last year's release wrote: format version 1 of the checkpoint bytes. Your loader must
 * keep reading these (stores are full of them); your dumpsTyped never writes them.
 *
 * The header is the one every version shares (see the contract in index.ts): "ck", the
 * version (1), the flags (bit 0: the body is gzipped), and the CRC-32 of header bytes 0-3
 * followed by the stored body. The version-1 body is UTF-8 JSON of a tagged tree: plain JSON
 * as itself, and every value JSON cannot hold as { "$t": kind, "v": ... }:
 *
 *   "undef"  { "$t": "undef" }                      undefined
 *   "num"    v: "NaN" | "Infinity" | "-Infinity" | "-0"
 *   "bigint" v: decimal integer string
 *   "date"   v: epoch milliseconds (a number), or null for an invalid Date
 *   "map"    v: [[key, value], ...]                 "set"  v: [item, ...]
 *   "u8"     v: base64 string                       "hole" a missing array element
 *   "obj"    v: [[key, value], ...]                 a plain object that has a "$t" key of its own
 *   "custom" { "$t": "custom", "name": registered name, "v": encoded data }
 *
 * Anything else in a version-1 body (another kind, a "v" of the wrong shape) is malformed.
 * This file is also the grader's: it is how the grader writes the version-1 bodies it loads.
 */
import { crc32, gzipSync } from "node:zlib";

type Tree = null | boolean | number | string | Tree[] | { [key: string]: Tree };

function own(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The tagged tree of a value, as version 1 wrote it. Custom types: [{ name, class, encode }]. */
export function treeV1(value: unknown, types: Array<{ name: string; class: abstract new (...args: never[]) => unknown; encode(v: never): unknown }> = []): Tree {
  const walk = (v: unknown): Tree => {
    if (v === undefined) return { $t: "undef" };
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") {
      if (Number.isNaN(v)) return { $t: "num", v: "NaN" };
      if (!Number.isFinite(v)) return { $t: "num", v: v > 0 ? "Infinity" : "-Infinity" };
      return Object.is(v, -0) ? { $t: "num", v: "-0" } : v;
    }
    if (typeof v === "bigint") return { $t: "bigint", v: v.toString() };
    if (typeof v !== "object") throw new TypeError(`version 1 cannot hold a ${typeof v}`);
    const proto = Object.getPrototypeOf(v);
    const type = types.find((t) => t.class.prototype === proto);
    if (type) return { $t: "custom", name: type.name, v: walk(type.encode(v as never)) };
    if (Array.isArray(v)) return Array.from({ length: v.length }, (_, i) => (Object.hasOwn(v, i) ? walk(v[i]) : { $t: "hole" }));
    if (v instanceof Date) return { $t: "date", v: Number.isNaN(v.getTime()) ? null : v.getTime() };
    if (v instanceof Map) return { $t: "map", v: [...v].map(([k, x]) => [walk(k), walk(x)]) };
    if (v instanceof Set) return { $t: "set", v: [...v].map(walk) };
    if (v instanceof Uint8Array) return { $t: "u8", v: Buffer.from(v).toString("base64") };
    const keys = Object.keys(v);
    if (keys.includes("$t")) return { $t: "obj", v: keys.map((k) => [k, walk((v as Record<string, unknown>)[k])]) };
    const out: Record<string, unknown> = {};
    for (const k of keys) own(out, k, walk((v as Record<string, unknown>)[k]));
    return out as Tree;
  };
  return walk(value);
}

/** Seals a body into the shared header: "ck" | version | flags | CRC-32(bytes 0-3 + body) | body. */
export function seal(version: number, flags: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(8 + body.length);
  bytes.set([0x63, 0x6b, version, flags]);
  bytes.set(body, 8);
  new DataView(bytes.buffer).setUint32(4, crc32(body, crc32(bytes.subarray(0, 4))));
  return bytes;
}

/** [typeTag, bytes] of a value as version 1 wrote it ("ck", or "ck+gzip" with gzip: true). */
export function dumpsV1(value: unknown, options: { gzip?: boolean; types?: Parameters<typeof treeV1>[1] } = {}): [string, Uint8Array] {
  const json = Buffer.from(JSON.stringify(treeV1(value, options.types)), "utf8");
  return options.gzip ? ["ck+gzip", seal(1, 1, gzipSync(json))] : ["ck", seal(1, 0, json)];
}
