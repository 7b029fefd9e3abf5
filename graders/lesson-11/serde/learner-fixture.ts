/**
 * Learner-side fixture of the serde grader: trusted code that must run inside the learner
 * process, next to the code under test.
 *
 * - Money is the registered custom type; instances made here cross to the grader as handles
 *   and arrive back in the learner's code as real Money instances.
 * - Unregistered is a class nobody registered.
 * - installBait() puts getters on globalThis for class names a payload may name; any read of
 *   them (a lookup, not only `new`) is counted. This evidence has to live in the learner
 *   process: that is where a pickle-style decoder would look the name up.
 * - Values nested deeper than the channel between the processes can carry (its encoder
 *   recurses) are built, dumped and measured here.
 */
import { isDeepStrictEqual } from "node:util";

export class Money {
  constructor(
    readonly cents: bigint,
    readonly currency: string,
  ) {}
  format(): string {
    return `${this.currency} ${this.cents}`;
  }
}

export const moneyType = {
  name: "money",
  class: Money,
  encode: (m: Money) => ({ cents: m.cents, currency: m.currency }),
  decode: (d: { cents: bigint; currency: string }) => new Money(d.cents, d.currency),
};

/** A second registered type whose name is as long as "Dangerous": the grader swaps one for the other in the bytes. */
export class Coupon {
  constructor(readonly code: string) {}
}
export const decoyType = { name: "Dangerou5", class: Coupon, encode: (c: Coupon) => c.code, decode: (code: string) => new Coupon(code) };
export function coupon(code: string): Coupon {
  return new Coupon(code);
}

export function money(cents: bigint, currency: string): Money {
  return new Money(cents, currency);
}

export class Unregistered {
  x = 1;
}

export function unregistered(): Unregistered {
  return new Unregistered();
}

/** A Map subclass, a Date subclass and a Uint8Array subclass (Buffer): each would load as its base class. */
export class TaggedMap<K, V> extends Map<K, V> {
  label = "tagged";
}
export class Deadline extends Date {}

export function builtinSubclasses(): Array<{ what: string; value: unknown }> {
  return [
    { what: "a Buffer (a Uint8Array subclass)", value: { bytes: Buffer.from([1, 2, 3]) } },
    { what: "an instance of class TaggedMap extends Map", value: { scores: new TaggedMap([[1, 2]]) } },
    { what: "an instance of class Deadline extends Date", value: { due: new Deadline(0) } },
  ];
}

const evidence = { lookups: 0, constructed: 0, calls: 0, names: [] as string[] };

/** Names a payload may use for a class; each becomes a counted getter on globalThis. */
export const BAIT = ["Dangerous", "Dangerou5"] as const;

export function installBait(): void {
  class Dangerous {
    constructor() {
      evidence.constructed++;
    }
    static fromJSON(): Dangerous {
      evidence.calls++;
      return new Dangerous();
    }
    static from(): Dangerous {
      evidence.calls++;
      return new Dangerous();
    }
    static parse(): Dangerous {
      evidence.calls++;
      return new Dangerous();
    }
  }
  for (const name of BAIT) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: false,
      get() {
        evidence.lookups++;
        evidence.names.push(name);
        return Dangerous;
      },
    });
  }
}

export function baitReport(): { lookups: number; constructed: number; calls: number; names: string[] } {
  return { ...evidence, names: [...evidence.names] };
}

export function removeBait(): void {
  for (const name of BAIT) delete (globalThis as Record<string, unknown>)[name];
  evidence.lookups = 0;
  evidence.constructed = 0;
  evidence.calls = 0;
  evidence.names = [];
}

/** Depth of a chain of single-element arrays, counted without recursion. */
function arrayChainDepth(value: unknown): number {
  let depth = 0;
  for (let node = value; Array.isArray(node); node = node[0]) depth++;
  return depth;
}

type Dumps = (value: unknown) => [string, Uint8Array] | Promise<[string, Uint8Array]>;
type Loads = (typed: readonly [string, Uint8Array]) => unknown;

/** A value nested `levels` deep alternating Map, array and object (crosses the channel fine at a few hundred levels). */
export function mixedNesting(levels: number): unknown {
  let value: unknown = "leaf";
  for (let i = 0; i < levels; i++) value = i % 3 === 0 ? new Map([[i, value]]) : i % 3 === 1 ? [value] : { next: value };
  return value;
}

/**
 * Dumps an array chain `levels` deep with the learner's dumpsTyped and loads it back. Returns
 * the depth that came back, or the error thrown (which crosses to the grader as itself).
 */
export async function roundTripArrayChain(dumps: Dumps, loads: Loads, levels: number): Promise<{ depth?: number; error?: unknown; stage?: string }> {
  let deep: unknown = 0;
  for (let i = 0; i < levels; i++) deep = [deep];
  let typed: [string, Uint8Array];
  try {
    typed = await dumps(deep);
  } catch (error) {
    return { error, stage: "dump" };
  }
  try {
    return { depth: arrayChainDepth(await loads(typed)) };
  } catch (error) {
    return { error, stage: "load" };
  }
}

/**
 * Dumps and loads a value that holds the same object, Map and Date more than once without a
 * cycle (built here: the sharing would not survive the channel). Reports whether it came back
 * deep-equal, or the error.
 */
export async function roundTripShared(dumps: Dumps, loads: Loads): Promise<{ same?: boolean; error?: unknown }> {
  const when = new Date(0);
  const shared = { list: [1, 2], when };
  const map = new Map([["k", shared]]);
  const value = { a: shared, b: shared, c: [shared, map, map, when], d: new Set([shared]), e: { again: shared } };
  try {
    return { same: isDeepStrictEqual(await loads(await dumps(value)), value) };
  } catch (error) {
    return { error };
  }
}

/**
 * Dumps a value, loads it and changes what came back as a caller would, in strict mode (a
 * read-only or non-configurable property throws): undefined when every change took, or what failed.
 */
export async function editLoaded(dumps: Dumps, loads: Loads): Promise<string | undefined> {
  const back = (await loads(await dumps({ count: 1, gone: "x", nested: { step: 1 }, escaped: { $t: "looks tagged", n: 1 } }))) as Record<string, any>;
  try {
    back.count = 2;
    delete back.gone;
    back.nested.step = 2;
    delete back.nested.step;
    back.escaped.n = 2;
    delete back.escaped.$t;
    back.added = true;
  } catch (error) {
    return String(error);
  }
  const expected = { count: 2, nested: {}, escaped: { n: 2 }, added: true };
  return isDeepStrictEqual(back, expected) ? undefined : `after the changes it is ${JSON.stringify(back)}`;
}

/** Loads stored bytes and reports the depth of the array chain they decode to (too deep to cross back), or the error. */
export async function loadArrayChain(loads: Loads, typed: [string, Uint8Array]): Promise<{ depth?: number; error?: unknown }> {
  try {
    return { depth: arrayChainDepth(await loads(typed)) };
  } catch (error) {
    return { error };
  }
}

/**
 * Every truncation of `bytes`, each copied into a buffer of exactly its length (as a store hands
 * them back: nothing readable past the end), loaded here. Returns the first that was not refused
 * with a SerdeError carrying one of `codes`, or undefined.
 */
export async function sweepTruncations(loads: Loads, serdeError: abstract new (...args: never[]) => Error, tag: string, bytes: Uint8Array, codes: string[]): Promise<{ length: number; outcome: unknown } | undefined> {
  for (let length = 0; length < bytes.length; length++) {
    let outcome: unknown = "returned a value";
    try {
      await loads([tag, bytes.slice(0, length)]);
    } catch (error) {
      if (error instanceof serdeError && codes.includes((error as { code?: string }).code ?? "") && error.message.length >= 10) continue;
      outcome = error;
    }
    return { length, outcome };
  }
  return undefined;
}

/**
 * Every single-byte change of `bytes` (every offset, every other value), loaded here: tens of
 * thousands of loads, too many to send one by one. Returns the first change that was not
 * refused with a SerdeError carrying one of `codes`, or undefined. (The grader replays a
 * subset of these itself, from its own process.)
 */
export async function sweepByteChanges(loads: Loads, serdeError: abstract new (...args: never[]) => Error, tag: string, bytes: Uint8Array, codes: string[]): Promise<{ at: number; from: number; to: number; outcome: unknown } | undefined> {
  for (let at = 0; at < bytes.length; at++) {
    for (let to = 0; to < 256; to++) {
      if (to === bytes[at]) continue;
      const changed = bytes.slice();
      changed[at] = to;
      let outcome: unknown = "returned a value";
      try {
        await loads([tag, changed]);
      } catch (error) {
        if (error instanceof serdeError && codes.includes((error as { code?: string }).code ?? "") && error.message.length >= 10) continue;
        outcome = error;
      }
      return { at, from: bytes[at]!, to, outcome };
    }
  }
  return undefined;
}
