/**
 * A complete serde written for calibration, independent of the reference: an encoder that
 * walks the value into a tagged JSON tree, the contract's 8-byte header, gzip above a
 * threshold, and a decoder that validates each tagged kind.
 */
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

type Tree = null | boolean | number | string | Tree[] | { [key: string]: Tree };
interface CustomType {
  name: string;
  class: abstract new (...args: never[]) => unknown;
  encode(value: never): unknown;
  decode(data: unknown): unknown;
}
interface Options {
  types?: CustomType[];
  compressAbove?: number;
  maxDecodedBytes?: number;
}

const DEPTH_LIMIT = 1000;

function own(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function bad(what: string): SerdeError {
  return new SerdeError("MALFORMED", `Cannot decode the checkpoint: ${what}`);
}

class Codec {
  readonly types: CustomType[];
  readonly compressAbove: number;
  readonly maxDecodedBytes: number;
  constructor(options: Options) {
    this.types = options.types ?? [];
    this.compressAbove = options.compressAbove ?? 32 * 1024;
    this.maxDecodedBytes = options.maxDecodedBytes ?? 32 * 1024 * 1024;
  }

  toTree(value: unknown, stack: object[]): Tree {
    if (stack.length > DEPTH_LIMIT) throw new SerdeError("TOO_DEEP", `value nested more than ${DEPTH_LIMIT} levels`);
    if (value === undefined) return { $t: "undef" };
    if (value === null || typeof value === "string" || typeof value === "boolean") return value;
    if (typeof value === "number") {
      if (Number.isNaN(value)) return { $t: "num", v: "NaN" };
      if (value === Infinity) return { $t: "num", v: "Infinity" };
      if (value === -Infinity) return { $t: "num", v: "-Infinity" };
      if (Object.is(value, -0)) return { $t: "num", v: "-0" };
      return value;
    }
    if (typeof value === "bigint") return { $t: "bigint", v: String(value) };
    if (typeof value !== "object") throw new SerdeError("UNSUPPORTED_VALUE", `cannot store a ${typeof value}`);
    if (stack.includes(value)) throw new SerdeError("CYCLE", "the value contains itself");
    stack.push(value);
    try {
      const sub = (child: unknown) => this.toTree(child, stack);
      const proto = Object.getPrototypeOf(value);
      for (const type of this.types) if (proto === type.class.prototype) return { $t: "custom", name: type.name, v: sub(type.encode(value as never)) };
      if (proto === Array.prototype) {
        const list = value as unknown[];
        const out: Tree[] = [];
        for (let i = 0; i < list.length; i++) out.push(Object.hasOwn(list, i) ? sub(list[i]) : { $t: "hole" });
        return out;
      }
      if (proto === Date.prototype) {
        const time = (value as Date).getTime();
        return { $t: "date", v: Number.isNaN(time) ? null : (value as Date).toISOString() };
      }
      if (proto === Map.prototype) return { $t: "map", v: Array.from(value as Map<unknown, unknown>, ([k, v]) => [sub(k), sub(v)]) };
      if (proto === Set.prototype) return { $t: "set", v: Array.from(value as Set<unknown>, sub) };
      if (proto === Uint8Array.prototype) return { $t: "u8", v: Buffer.from(value as Uint8Array).toString("base64") };
      if (proto !== Object.prototype && proto !== null) throw new SerdeError("UNSUPPORTED_VALUE", `instances of ${proto?.constructor?.name ?? "a class"} are not registered`);
      const keys = Object.keys(value);
      if (keys.includes("$t")) return { $t: "obj", v: keys.map((k) => [k, sub((value as Record<string, unknown>)[k])]) };
      const out: Record<string, unknown> = {};
      for (const k of keys) own(out, k, sub((value as Record<string, unknown>)[k]));
      return out as Tree;
    } finally {
      stack.pop();
    }
  }

  fromTree(node: Tree, depth: number): unknown {
    if (depth > 4 * DEPTH_LIMIT) throw new SerdeError("TOO_DEEP", "body nested too deep");
    if (node === null || typeof node !== "object") return node;
    const sub = (child: Tree) => this.fromTree(child, depth + 1);
    if (Array.isArray(node)) {
      const out = new Array(node.length);
      node.forEach((item, i) => {
        const hole = item !== null && typeof item === "object" && !Array.isArray(item) && item.$t === "hole" && Object.keys(item).length === 1;
        if (!hole) out[i] = sub(item);
      });
      return out;
    }
    if (!Object.hasOwn(node, "$t")) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(node)) own(out, k, sub(node[k]!));
      return out;
    }
    const v = node.v;
    const pairs = (x: Tree | undefined): x is Tree[][] => Array.isArray(x) && x.every((p) => Array.isArray(p) && p.length === 2);
    switch (node.$t) {
      case "undef":
        return undefined;
      case "num":
        if (v === "NaN") return Number.NaN;
        if (v === "Infinity") return Infinity;
        if (v === "-Infinity") return -Infinity;
        if (v === "-0") return -0;
        throw bad("a special number that is none of NaN, Infinity, -Infinity, -0");
      case "bigint":
        if (typeof v !== "string" || !/^-?[0-9]+$/.test(v)) throw bad("a bigint that is not a decimal integer");
        return BigInt(v);
      case "date": {
        if (v === null) return new Date(Number.NaN);
        if (typeof v !== "string" || Number.isNaN(Date.parse(v))) throw bad("a date that is not an ISO string");
        return new Date(v);
      }
      case "u8":
        if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw bad("bytes that are not base64");
        return new Uint8Array(Buffer.from(v, "base64"));
      case "map":
        if (!pairs(v)) throw bad("a map that is not a list of pairs");
        return new Map(v.map(([k, x]) => [sub(k!), sub(x!)]));
      case "set":
        if (!Array.isArray(v)) throw bad("a set that is not a list");
        return new Set(v.map(sub));
      case "obj": {
        if (!pairs(v) || !v.every(([k]) => typeof k === "string")) throw bad("an escaped object that is not a list of [key, value]");
        const out: Record<string, unknown> = {};
        for (const [k, x] of v) own(out, k as string, sub(x!));
        return out;
      }
      case "custom": {
        const type = this.types.find((t) => t.name === node.name);
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `type ${JSON.stringify(node.name)} is not registered`);
        const data = sub(v as Tree);
        try {
          return type.decode(data);
        } catch (error) {
          throw bad(`data the registered type ${JSON.stringify(type.name)} cannot decode (${(error as Error).message})`);
        }
      }
      default:
        throw bad(`unknown kind ${JSON.stringify(node.$t)}`);
    }
  }

  dumpsTyped(value: unknown): [string, Uint8Array] {
    let body: Buffer = Buffer.from(JSON.stringify(this.toTree(value, [])));
    const gzip = body.length > this.compressAbove;
    if (gzip) body = gzipSync(body);
    const out = Buffer.concat([Buffer.from([0x63, 0x6b, CURRENT_VERSION, gzip ? 1 : 0, 0, 0, 0, 0]), body]);
    out.writeUInt32BE(crc32(body, crc32(out.subarray(0, 4))), 4);
    return [gzip ? "ck+gzip" : "ck", new Uint8Array(out)];
  }

  loadsTyped(typed: readonly [string, Uint8Array]): unknown {
    const [tag, bytes] = typed ?? [];
    if (tag !== "ck" && tag !== "ck+gzip") throw new SerdeError("UNKNOWN_TAG", `unknown type tag ${JSON.stringify(tag)}`);
    if (!(bytes instanceof Uint8Array) || bytes.length < 8) throw bad("shorter than its header");
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    if (buffer.toString("latin1", 0, 2) !== "ck") throw bad("wrong magic bytes");
    const version = buffer[2]!;
    if (version < 1 || version > CURRENT_VERSION) throw new SerdeError("UNSUPPORTED_VERSION", `format version ${version} is not one this reader knows (1..${CURRENT_VERSION})`);
    let body: Buffer = buffer.subarray(8);
    if (crc32(body, crc32(buffer.subarray(0, 4))) !== buffer.readUInt32BE(4)) throw new SerdeError("CHECKSUM", "checksum mismatch: the bytes were damaged");
    if (buffer[3] !== (tag === "ck+gzip" ? 1 : 0)) throw bad(`flags ${buffer[3]} do not match the tag ${tag}`);
    if (tag === "ck+gzip") {
      try {
        body = gunzipSync(body, { maxOutputLength: this.maxDecodedBytes });
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new SerdeError("TOO_LARGE", `inflates past ${this.maxDecodedBytes} bytes`);
        throw bad("the gzip stream is broken");
      }
    } else if (body.length > this.maxDecodedBytes) throw new SerdeError("TOO_LARGE", `body larger than ${this.maxDecodedBytes} bytes`);
    let tree: Tree;
    try {
      tree = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) as Tree;
    } catch {
      throw bad("the body is not UTF-8 JSON");
    }
    try {
      if (version === 1) tree = upgradeV1(tree);
      return this.fromTree(tree, 0);
    } catch (error) {
      if (error instanceof RangeError) throw new SerdeError("TOO_DEEP", "body nested too deep");
      throw error;
    }
  }
}

/** Version 1 stored dates as epoch milliseconds. */
function upgradeV1(node: Tree): Tree {
  if (Array.isArray(node)) return node.map(upgradeV1);
  if (node === null || typeof node !== "object") return node;
  if (node.$t === "date") {
    if (node.v === null) return node;
    const time = typeof node.v === "number" ? new Date(node.v).getTime() : Number.NaN;
    if (Number.isNaN(time)) throw bad("a version-1 date that is not epoch milliseconds");
    return { $t: "date", v: new Date(time).toISOString() };
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(node)) own(out, k, upgradeV1(node[k]!));
  return out as Tree;
}

export function createSerde(options: Options = {}) {
  const codec = new Codec(options);
  return { dumpsTyped: (value: unknown) => codec.dumpsTyped(value), loadsTyped: (typed: readonly [string, Uint8Array]) => codec.loadsTyped(typed) };
}

const standard = createSerde();
export const dumpsTyped = standard.dumpsTyped;
export const loadsTyped = standard.loadsTyped;

function isJson(value: unknown): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJson);
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) return Object.values(value).every(isJson);
  return false;
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata) || !isJson(metadata)) throw new SerdeError("UNSUPPORTED_VALUE", "metadata must be a plain object of JSON values");
  return JSON.stringify(metadata);
}

export function loadsMetadata(json: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new SerdeError("MALFORMED", "metadata is not JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SerdeError("MALFORMED", "metadata must be a JSON object");
  return parsed as Record<string, unknown>;
}
