/**
 * Format version 2 body: a subset of CBOR (RFC 8949), written and read by hand.
 *
 *   major 0/1  safe integers (not -0)          major 2  Uint8Array (byte string)
 *   major 3    UTF-8 text                      major 4  array; a hole is simple(16) = 0xf0
 *   major 5    plain object, text keys only    major 7  false/true/null/undefined, float64 (0xfb)
 *   major 6    tags:
 *     2 / 3    BigInt, as CBOR bignums (big-endian magnitude; 3 holds -1 - n)
 *     27       registered custom type: [name (text), encoded data]   (RFC "generic object" tag)
 *     258      Set: array of items          259  Map: CBOR map, keys of any kind
 *     60000    Date: integer epoch milliseconds, or null for an invalid Date
 *     60001    string that is not well-formed UTF-16 (lone surrogates): its code units, big-endian
 *
 * Only definite lengths; no trailing bytes; every length is checked against the bytes left.
 * The reader accepts exactly what the writer produces, anything else is MALFORMED.
 */
import { SerdeError } from "./index.ts";
import { errorText, MAX_DEPTH, type Settings } from "./envelope.ts";

export const TAG_POS_BIG = 2;
export const TAG_NEG_BIG = 3;
export const TAG_CUSTOM = 27;
export const TAG_SET = 258;
export const TAG_MAP = 259;
export const TAG_DATE = 60000;
export const TAG_UTF16 = 60001;
export const HOLE = 0xf0;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_DATE_MS = 8.64e15;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;
  private view = new DataView(this.buf.buffer);

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** A major type with its argument, in the shortest form. */
  head(major: number, n: number): void {
    const m = major << 5;
    if (n < 24) this.byte(m | n);
    else if (n < 0x100) { this.byte(m | 24); this.byte(n); }
    else if (n < 0x10000) { this.byte(m | 25); this.room(2); this.view.setUint16(this.len, n); this.len += 2; }
    else if (n < 0x100000000) { this.byte(m | 26); this.room(4); this.view.setUint32(this.len, n); this.len += 4; }
    else { this.byte(m | 27); this.room(8); this.view.setBigUint64(this.len, BigInt(n)); this.len += 8; }
  }
  float64(x: number): void {
    this.byte(0xfb);
    this.room(8);
    this.view.setFloat64(this.len, x);
    this.len += 8;
  }
  text(s: string): void {
    if (LONE_SURROGATE.test(s)) {
      this.head(6, TAG_UTF16);
      const units = new Uint8Array(s.length * 2);
      const dv = new DataView(units.buffer);
      for (let i = 0; i < s.length; i++) dv.setUint16(i * 2, s.charCodeAt(i));
      this.head(2, units.length);
      this.bytes(units);
      return;
    }
    const b = textEncoder.encode(s);
    this.head(3, b.length);
    this.bytes(b);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function magnitudeBytes(n: bigint): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

export function writeBigInt(w: Writer, v: bigint): void {
  if (v >= 0n) { w.head(6, TAG_POS_BIG); const m = magnitudeBytes(v); w.head(2, m.length); w.bytes(m); }
  else { w.head(6, TAG_NEG_BIG); const m = magnitudeBytes(-1n - v); w.head(2, m.length); w.bytes(m); }
}

export function writeNumber(w: Writer, v: number): void {
  if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
    if (v >= 0) w.head(0, v);
    else w.head(1, -1 - v);
  } else {
    w.float64(v);
  }
}

function describe(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  return typeof name === "string" && name ? `an instance of ${name}` : "an object with a foreign prototype";
}

export function encode(root: unknown, settings: Settings): Uint8Array {
  const w = new Writer();
  const onPath = new Set<object>();
  const item = (v: unknown, depth: number): void => {
    switch (typeof v) {
      case "undefined": w.byte(0xf7); return;
      case "boolean": w.byte(v ? 0xf5 : 0xf4); return;
      case "number": writeNumber(w, v); return;
      case "string": w.text(v); return;
      case "bigint": writeBigInt(w, v); return;
      case "symbol": throw new SerdeError("UNSUPPORTED_VALUE", "a symbol cannot be stored in a checkpoint");
      case "function": throw new SerdeError("UNSUPPORTED_VALUE", "a function cannot be stored in a checkpoint");
    }
    if (v === null) { w.byte(0xf6); return; }
    const obj = v as object;
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `value nests deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(obj)) throw new SerdeError("CYCLE", "value contains itself (a cycle)");
    onPath.add(obj);
    try {
      container(obj, depth);
    } finally {
      onPath.delete(obj);
    }
  };
  const container = (obj: object, depth: number): void => {
    const proto = Object.getPrototypeOf(obj);
    const type = settings.byProto.get(proto);
    if (type) {
      let data: unknown;
      try {
        data = type.encode(obj);
      } catch (err) {
        throw new SerdeError("UNSUPPORTED_VALUE", `custom type "${type.name}" could not encode its value: ${errorText(err)}`);
      }
      w.head(6, TAG_CUSTOM);
      w.head(4, 2);
      w.text(type.name);
      item(data, depth + 1);
      return;
    }
    if (proto === Array.prototype && Array.isArray(obj)) {
      const a = obj as unknown[];
      w.head(4, a.length);
      for (let i = 0; i < a.length; i++) {
        if (Object.hasOwn(a, i)) item(a[i], depth + 1);
        else w.byte(HOLE);
      }
      return;
    }
    if (proto === Date.prototype) {
      const t = (obj as Date).getTime();
      w.head(6, TAG_DATE);
      if (Number.isNaN(t)) w.byte(0xf6);
      else writeNumber(w, t);
      return;
    }
    if (proto === Map.prototype) {
      const m = obj as Map<unknown, unknown>;
      w.head(6, TAG_MAP);
      w.head(5, m.size);
      for (const [k, x] of m) { item(k, depth + 1); item(x, depth + 1); }
      return;
    }
    if (proto === Set.prototype) {
      const s = obj as Set<unknown>;
      w.head(6, TAG_SET);
      w.head(4, s.size);
      for (const x of s) item(x, depth + 1);
      return;
    }
    if (proto === Uint8Array.prototype) {
      const b = obj as Uint8Array;
      w.head(2, b.length);
      w.bytes(b);
      return;
    }
    if (proto === Object.prototype || proto === null) {
      const rec = obj as Record<string, unknown>;
      const keys = Object.keys(rec);
      w.head(5, keys.length);
      for (const k of keys) { w.text(k); item(rec[k], depth + 1); }
      return;
    }
    throw new SerdeError(
      "UNSUPPORTED_VALUE",
      `${describe(obj)} is not a registered custom type; register it in options.types (it would load back without its prototype)`,
    );
  };
  item(root, 0);
  return w.done();
}

function bad(msg: string, at: number): never {
  throw new SerdeError("MALFORMED", `body byte ${at}: ${msg}`);
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function decode(body: Uint8Array, settings: Settings): unknown {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let pos = 0;
  const need = (n: number, what: string): void => {
    if (n > body.length - pos) bad(`${what} needs ${n} bytes, ${body.length - pos} left`, pos);
  };
  /** Reads a head; returns [major, argument as number, start]. */
  const head = (): [number, number, number, number] => {
    const start = pos;
    need(1, "an item");
    const ib = body[pos++]!;
    const major = ib >> 5;
    const ai = ib & 31;
    if (major === 7) return [7, 0, ai, start];
    let arg: number;
    if (ai < 24) arg = ai;
    else if (ai === 24) { need(1, "a length"); arg = body[pos]!; pos += 1; }
    else if (ai === 25) { need(2, "a length"); arg = view.getUint16(pos); pos += 2; }
    else if (ai === 26) { need(4, "a length"); arg = view.getUint32(pos); pos += 4; }
    else if (ai === 27) {
      need(8, "a length");
      const big = view.getBigUint64(pos);
      pos += 8;
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) bad("argument past 2^53", start);
      arg = Number(big);
    } else return bad(ai === 31 ? "indefinite lengths are not used" : `reserved additional info ${ai}`, start);
    return [major, arg, ai, start];
  };
  const text = (): string => {
    const [major, len, , start] = head();
    if (major === 6 && len === TAG_UTF16) return utf16();
    if (major !== 3) bad("expected a text string", start);
    return utf8(len);
  };
  const utf16 = (): string => {
    const start = pos;
    const b = byteString();
    if (b.length % 2) bad("UTF-16 text has an odd length", start);
    let s = "";
    for (let i = 0; i < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
    return s;
  };
  const utf8 = (len: number): string => {
    need(len, "a text string");
    const start = pos;
    pos += len;
    try {
      return textDecoder.decode(body.subarray(start, pos));
    } catch {
      return bad("text is not valid UTF-8", start);
    }
  };
  const byteString = (): Uint8Array => {
    const [major, len, , start] = head();
    if (major !== 2) bad("expected a byte string", start);
    need(len, "a byte string");
    const out = new Uint8Array(body.subarray(pos, pos + len));
    pos += len;
    return out;
  };
  const bignum = (): bigint => {
    const b = byteString();
    return b.length === 0 ? 0n : BigInt("0x" + Buffer.from(b).toString("hex"));
  };

  const item = (depth: number, inArray: boolean): unknown => {
    if (depth > MAX_DEPTH * 2) throw new SerdeError("TOO_DEEP", `body nests deeper than ${MAX_DEPTH * 2} levels`);
    const [major, arg, ai, start] = head();
    switch (major) {
      case 0: return arg;
      case 1: return -1 - arg;
      case 2: { need(arg, "a byte string"); const out = new Uint8Array(body.subarray(pos, pos + arg)); pos += arg; return out; }
      case 3: return utf8(arg);
      case 4: {
        need(arg, "an array");
        const out = new Array<unknown>(arg);
        for (let i = 0; i < arg; i++) {
          if (body[pos] === HOLE) { pos++; continue; }
          out[i] = item(depth + 1, true);
        }
        return out;
      }
      case 5: {
        need(arg * 2, "an object");
        const out: Record<string, unknown> = {};
        for (let i = 0; i < arg; i++) {
          const at = pos;
          const k = text();
          if (Object.hasOwn(out, k)) bad(`object repeats the key ${JSON.stringify(k)}`, at);
          define(out, k, item(depth + 1, false));
        }
        return out;
      }
      case 6: return tagged(arg, depth, start);
      case 7: {
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        if (ai === 23) return undefined;
        if (ai === 27) {
          need(8, "a float64");
          const x = view.getFloat64(pos);
          pos += 8;
          if (Number.isSafeInteger(x) && !Object.is(x, -0)) bad("an integer written as a float", start);
          return x;
        }
        if (ai === 16) return bad(inArray ? "a hole" : "a hole outside an array", start);
        return bad(`simple value ${ai} is not used`, start);
      }
    }
    return bad(`major type ${major}`, start);
  };

  const tagged = (tag: number, depth: number, start: number): unknown => {
    switch (tag) {
      case TAG_POS_BIG: return bignum();
      case TAG_NEG_BIG: return -1n - bignum();
      case TAG_DATE: {
        const at = pos;
        const t = item(depth + 1, false);
        if (t === null) return new Date(NaN);
        if (typeof t !== "number" || !Number.isInteger(t) || Math.abs(t) > MAX_DATE_MS) bad("a date must be integer epoch milliseconds or null", at);
        return new Date(t);
      }
      case TAG_UTF16:
        return utf16();
      case TAG_SET: {
        const [major, n, , at] = head();
        if (major !== 4) bad("a set holds an array", at);
        need(n, "a set");
        const out = new Set<unknown>();
        for (let i = 0; i < n; i++) out.add(item(depth + 1, false));
        if (out.size !== n) bad("a set repeats an item", at);
        return out;
      }
      case TAG_MAP: {
        const [major, n, , at] = head();
        if (major !== 5) bad("a Map holds a CBOR map", at);
        need(n * 2, "a Map");
        const out = new Map<unknown, unknown>();
        for (let i = 0; i < n; i++) {
          const k = item(depth + 1, false);
          out.set(k, item(depth + 1, false));
        }
        if (out.size !== n) bad("a Map repeats a key", at);
        return out;
      }
      case TAG_CUSTOM: {
        const [major, n, , at] = head();
        if (major !== 4 || n !== 2) bad("a custom value is [name, data]", at);
        const name = text();
        const type = settings.byName.get(name);
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `body names custom type ${JSON.stringify(name)}, which is not registered`);
        const data = item(depth + 1, false);
        try {
          return type.decode(data);
        } catch (err) {
          throw new SerdeError("MALFORMED", `custom type "${name}" refused its data: ${errorText(err)}`);
        }
      }
    }
    return bad(`unknown tag ${tag}`, start);
  };

  const value = item(0, false);
  if (pos !== body.length) bad(`${body.length - pos} bytes after the value`, pos);
  return value;
}
