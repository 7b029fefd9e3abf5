/**
 * Format version 2 body: postfix bytecode for a small stack machine.
 *
 * The writer walks the value with an explicit work stack (no recursion) and emits every leaf
 * as a push and every container as a "build" op *after* its children, with the child count:
 *
 *   [1, { a: "x" }]   ->   INT 1  STR "a"  STR "x"  OBJECT 1  ARRAY 2
 *
 * The reader runs the ops against a value stack, again without recursion. So neither side has
 * a depth limit of its own: a value nested a hundred thousand levels deep is written and read
 * back like any other (the reader is still bounded by maxDecodedBytes). Cycles are refused on
 * dump (the containers on the current path are tracked as the walk enters and leaves them).
 *
 * Ops (1 byte), then their operands; n and lengths are unsigned LEB128 varints:
 *   0x00 NULL  0x01 UNDEF  0x02 FALSE  0x03 TRUE  0x04 HOLE (an array slot with no element)
 *   0x05 INT varint   0x0c NEGINT varint of -x (safe integers, not -0)   0x06 F64 8 bytes big-endian
 *   0x07 STR len utf8      0x08 STR16 len code units, big-endian (strings with lone surrogates)
 *   0x09 BIGINT sign(0|1) len magnitude-big-endian   0x0a BYTES len raw (a Uint8Array)
 *   0x0b DATE 8 bytes float64 epoch ms (NaN: an invalid Date)
 *   0x10 ARRAY n   pops n slots          0x11 OBJECT n  pops n (string key, value) pairs
 *   0x12 MAP n     pops n (key, value)   0x13 SET n     pops n items
 *   0x14 CUSTOM    pops (name string, data): a registered custom type
 */
import { SerdeError } from "./index.ts";
import { errorText, type Settings } from "./envelope.ts";

export const OP = {
  NULL: 0x00, UNDEF: 0x01, FALSE: 0x02, TRUE: 0x03, HOLE: 0x04, INT: 0x05, F64: 0x06, STR: 0x07, STR16: 0x08,
  BIGINT: 0x09, BYTES: 0x0a, DATE: 0x0b, NEGINT: 0x0c, ARRAY: 0x10, OBJECT: 0x11, MAP: 0x12, SET: 0x13, CUSTOM: 0x14,
} as const;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_DATE_MS = 8.64e15;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A growable byte sink; chunks are appended and joined once at the end. */
export class Sink {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(4096);
  private len = 0;
  private scratch = new DataView(new ArrayBuffer(8));

  byte(b: number): void {
    if (this.len === this.cur.length) this.flush(4096);
    this.cur[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    if (b.length > this.cur.length - this.len) {
      this.flush(Math.max(4096, b.length));
    }
    this.cur.set(b, this.len);
    this.len += b.length;
  }
  private flush(next: number): void {
    this.chunks.push(this.cur.subarray(0, this.len));
    this.cur = new Uint8Array(next);
    this.len = 0;
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.byte(n);
  }
  f64(x: number): void {
    this.scratch.setFloat64(0, x);
    this.bytes(new Uint8Array(this.scratch.buffer.slice(0)));
  }
  op(op: number, n?: number): void {
    this.byte(op);
    if (n !== undefined) this.varint(n);
  }
  str(s: string): void {
    if (LONE_SURROGATE.test(s)) {
      this.op(OP.STR16, s.length);
      const b = new Uint8Array(s.length * 2);
      for (let i = 0; i < s.length; i++) { const u = s.charCodeAt(i); b[2 * i] = u >> 8; b[2 * i + 1] = u & 0xff; }
      this.bytes(b);
      return;
    }
    const b = encoder.encode(s);
    this.op(OP.STR, b.length);
    this.bytes(b);
  }
  num(x: number): void {
    if (Number.isSafeInteger(x) && !Object.is(x, -0)) {
      this.op(x >= 0 ? OP.INT : OP.NEGINT, Math.abs(x));
    } else {
      this.op(OP.F64);
      this.f64(x);
    }
  }
  bigint(v: bigint): void {
    const neg = v < 0n;
    let hex = (neg ? -v : v).toString(16);
    if (hex.length % 2) hex = "0" + hex;
    const mag = v === 0n ? new Uint8Array(0) : Uint8Array.from(Buffer.from(hex, "hex"));
    this.op(OP.BIGINT);
    this.byte(neg ? 1 : 0);
    this.varint(mag.length);
    this.bytes(mag);
  }
  date(d: Date): void {
    this.op(OP.DATE);
    this.f64(d.getTime());
  }
  done(): Uint8Array {
    this.chunks.push(this.cur.subarray(0, this.len));
    return Buffer.concat(this.chunks);
  }
}

function describe(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  return typeof name === "string" && name ? `an instance of ${name}` : "an object with a foreign prototype";
}

type Work =
  | { k: 0; v: unknown } // visit a value
  | { k: 1; op: number; n: number; leave: object } // emit a build op, leave the container
  | { k: 2; s: string } // emit a key
  | { k: 3 }; // emit a hole

export function encode(root: unknown, settings: Settings): Uint8Array {
  const out = new Sink();
  const onPath = new Set<object>();
  const work: Work[] = [{ k: 0, v: root }];
  while (work.length > 0) {
    const w = work.pop()!;
    if (w.k === 1) {
      out.op(w.op, w.op === OP.CUSTOM ? undefined : w.n);
      onPath.delete(w.leave);
      continue;
    }
    if (w.k === 2) { out.str(w.s); continue; }
    if (w.k === 3) { out.op(OP.HOLE); continue; }
    const v = w.v;
    switch (typeof v) {
      case "undefined": out.op(OP.UNDEF); continue;
      case "boolean": out.op(v ? OP.TRUE : OP.FALSE); continue;
      case "number": out.num(v); continue;
      case "string": out.str(v); continue;
      case "bigint": out.bigint(v); continue;
      case "symbol": throw new SerdeError("UNSUPPORTED_VALUE", "a symbol cannot be stored in a checkpoint");
      case "function": throw new SerdeError("UNSUPPORTED_VALUE", "a function cannot be stored in a checkpoint");
    }
    if (v === null) { out.op(OP.NULL); continue; }
    const obj = v as object;
    const proto = Object.getPrototypeOf(obj);
    if (proto === Date.prototype) { out.date(obj as Date); continue; }
    if (proto === Uint8Array.prototype) {
      const b = obj as Uint8Array;
      out.op(OP.BYTES, b.length);
      out.bytes(b);
      continue;
    }
    if (onPath.has(obj)) throw new SerdeError("CYCLE", "value contains itself (a cycle)");
    // Children go on the work stack in reverse, after the build op, so they are emitted in order.
    const type = settings.byProto.get(proto);
    if (type) {
      let data: unknown;
      try {
        data = type.encode(obj);
      } catch (err) {
        throw new SerdeError("UNSUPPORTED_VALUE", `custom type "${type.name}" could not encode its value: ${errorText(err)}`);
      }
      onPath.add(obj);
      work.push({ k: 1, op: OP.CUSTOM, n: 2, leave: obj }, { k: 0, v: data }, { k: 2, s: type.name });
      continue;
    }
    if (proto === Array.prototype && Array.isArray(obj)) {
      const a = obj as unknown[];
      onPath.add(obj);
      work.push({ k: 1, op: OP.ARRAY, n: a.length, leave: obj });
      for (let i = a.length - 1; i >= 0; i--) work.push(Object.hasOwn(a, i) ? { k: 0, v: a[i] } : { k: 3 });
      continue;
    }
    if (proto === Map.prototype) {
      const entries = [...(obj as Map<unknown, unknown>)];
      onPath.add(obj);
      work.push({ k: 1, op: OP.MAP, n: entries.length, leave: obj });
      for (let i = entries.length - 1; i >= 0; i--) work.push({ k: 0, v: entries[i]![1] }, { k: 0, v: entries[i]![0] });
      continue;
    }
    if (proto === Set.prototype) {
      const items = [...(obj as Set<unknown>)];
      onPath.add(obj);
      work.push({ k: 1, op: OP.SET, n: items.length, leave: obj });
      for (let i = items.length - 1; i >= 0; i--) work.push({ k: 0, v: items[i] });
      continue;
    }
    if (proto === Object.prototype || proto === null) {
      const rec = obj as Record<string, unknown>;
      const keys = Object.keys(rec);
      onPath.add(obj);
      work.push({ k: 1, op: OP.OBJECT, n: keys.length, leave: obj });
      for (let i = keys.length - 1; i >= 0; i--) work.push({ k: 0, v: rec[keys[i]!] }, { k: 2, s: keys[i]! });
      continue;
    }
    throw new SerdeError(
      "UNSUPPORTED_VALUE",
      `${describe(obj)} is not a registered custom type; register it in options.types (it would load back without its prototype)`,
    );
  }
  return out.done();
}

const HOLE_SLOT: unique symbol = Symbol("hole");

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function decode(body: Uint8Array, settings: Settings): unknown {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const stack: unknown[] = [];
  let pos = 0;
  let opAt = 0;
  const bad = (msg: string): never => {
    throw new SerdeError("MALFORMED", `body byte ${opAt}: ${msg}`);
  };
  const need = (n: number): void => {
    if (n > body.length - pos) bad(`needs ${n} bytes, ${body.length - pos} left`);
  };
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      need(1);
      const b = body[pos++]!;
      n += (b & 0x7f) * scale;
      if (!(b & 0x80)) break;
      scale *= 0x80;
      if (i >= 7) bad("varint too long");
    }
    if (!Number.isSafeInteger(n)) bad("varint past 2^53");
    return n;
  };
  const f64 = (): number => {
    need(8);
    const x = view.getFloat64(pos);
    pos += 8;
    return x;
  };
  const take = (n: number): unknown[] => {
    if (n > stack.length) bad(`build op wants ${n} values, ${stack.length} on the stack`);
    return stack.splice(stack.length - n, n);
  };
  const value = (x: unknown): unknown => {
    if (x === HOLE_SLOT) bad("a hole outside an array");
    return x;
  };
  while (pos < body.length) {
    opAt = pos;
    const op = body[pos++]!;
    switch (op) {
      case OP.NULL: stack.push(null); break;
      case OP.UNDEF: stack.push(undefined); break;
      case OP.FALSE: stack.push(false); break;
      case OP.TRUE: stack.push(true); break;
      case OP.HOLE: stack.push(HOLE_SLOT); break;
      case OP.INT: stack.push(varint()); break;
      case OP.NEGINT: {
        const n = varint();
        if (n === 0) bad("NEGINT 0");
        stack.push(-n);
        break;
      }
      case OP.F64: {
        const x = f64();
        if (Number.isSafeInteger(x) && !Object.is(x, -0)) bad("an integer written as F64");
        stack.push(x);
        break;
      }
      case OP.STR: {
        const len = varint();
        need(len);
        try {
          stack.push(decoder.decode(body.subarray(pos, pos + len)));
        } catch {
          bad("text is not valid UTF-8");
        }
        pos += len;
        break;
      }
      case OP.STR16: {
        const units = varint();
        need(units * 2);
        let s = "";
        for (let i = 0; i < units; i++) s += String.fromCharCode(view.getUint16(pos + 2 * i));
        pos += units * 2;
        stack.push(s);
        break;
      }
      case OP.BIGINT: {
        need(1);
        const sign = body[pos++]!;
        if (sign > 1) bad("bigint sign must be 0 or 1");
        const len = varint();
        need(len);
        const mag = len === 0 ? 0n : BigInt("0x" + Buffer.from(body.subarray(pos, pos + len)).toString("hex"));
        pos += len;
        if (sign === 1 && mag === 0n) bad("negative zero bigint");
        stack.push(sign ? -mag : mag);
        break;
      }
      case OP.BYTES: {
        const len = varint();
        need(len);
        stack.push(new Uint8Array(body.subarray(pos, pos + len)));
        pos += len;
        break;
      }
      case OP.DATE: {
        const t = f64();
        if (!Number.isNaN(t) && (!Number.isInteger(t) || Math.abs(t) > MAX_DATE_MS)) bad("a date must be integer epoch milliseconds");
        stack.push(new Date(t));
        break;
      }
      case OP.ARRAY: {
        const items = take(varint());
        const out = new Array<unknown>(items.length);
        for (let i = 0; i < items.length; i++) if (items[i] !== HOLE_SLOT) out[i] = items[i];
        stack.push(out);
        break;
      }
      case OP.OBJECT: {
        const n = varint();
        const flat = take(n * 2);
        const out: Record<string, unknown> = {};
        for (let i = 0; i < flat.length; i += 2) {
          const k = flat[i];
          if (typeof k !== "string") bad("an object key must be a string");
          if (Object.hasOwn(out, k as string)) bad(`object repeats the key ${JSON.stringify(k)}`);
          define(out, k as string, value(flat[i + 1]));
        }
        stack.push(out);
        break;
      }
      case OP.MAP: {
        const n = varint();
        const flat = take(n * 2);
        const out = new Map<unknown, unknown>();
        for (let i = 0; i < flat.length; i += 2) out.set(value(flat[i]), value(flat[i + 1]));
        if (out.size !== n) bad("a Map repeats a key");
        stack.push(out);
        break;
      }
      case OP.SET: {
        const n = varint();
        const out = new Set<unknown>(take(n).map(value));
        if (out.size !== n) bad("a Set repeats an item");
        stack.push(out);
        break;
      }
      case OP.CUSTOM: {
        const [name, data] = take(2);
        if (typeof name !== "string") bad("a custom type's name must be a string");
        const type = settings.byName[name as string];
        if (!type) throw new SerdeError("UNKNOWN_TYPE", `body names custom type ${JSON.stringify(name)}, which is not registered`);
        try {
          stack.push(type.decode(value(data)));
        } catch (err) {
          throw new SerdeError("MALFORMED", `custom type "${String(name)}" refused its data: ${errorText(err)}`);
        }
        break;
      }
      default:
        bad(`unknown op 0x${op.toString(16)}`);
    }
  }
  if (stack.length !== 1) bad(`body leaves ${stack.length} values, not one`);
  return value(stack[0]);
}
