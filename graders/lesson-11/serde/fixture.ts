/** Inputs and helpers for the serde grader: seeded values, forged bodies, corruptions. */
import { inspect } from "node:util";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import type * as Reference from "../../../solutions/lesson-11/serde/index.ts";

export type SerdeApi = typeof Reference;

export function show(value: unknown): string {
  return inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 8, maxStringLength: 60 });
}

/** The error a call into the learner's code threw (or rejected with), or undefined when it returned. */
export async function thrown(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * A body in the contract's byte layout: "ck" | version | 0 | CRC-32 (big-endian) of the
 * body | body, where the body is UTF-8 JSON of the encoded tree (or the given raw bytes).
 */
export function forgeBody(version: number, tree: unknown, raw?: Uint8Array): Uint8Array {
  const body = raw ?? Buffer.from(JSON.stringify(tree), "utf8");
  const bytes = new Uint8Array(8 + body.length);
  bytes.set([0x63, 0x6b, version, 0]);
  new DataView(bytes.buffer).setUint32(4, crc32(body));
  bytes.set(body, 8);
  return bytes;
}

const WORDS = ["plan", "draft", "review", "send", "ünïcödé", "emoji 🚀", "", "with \"quotes\"", "$t", "__proto__"];

export function jsonValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 0 ? 7 : 4));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return random() < 0.5 ? Math.floor(random() * 2_000_000) - 1_000_000 : (random() - 0.5) * 1e6;
    case 3:
      return WORDS[Math.floor(random() * WORDS.length)]!;
    case 4:
    case 5: {
      const out: Record<string, unknown> = {};
      const size = Math.floor(random() * 4);
      for (let i = 0; i < size; i++) Object.defineProperty(out, WORDS[Math.floor(random() * WORDS.length)]!, { value: jsonValue(random, depth - 1), enumerable: true, writable: true, configurable: true });
      return out;
    }
    default:
      return Array.from({ length: Math.floor(random() * 4) }, () => jsonValue(random, depth - 1));
  }
}

/** A value shaped like a checkpoint's channel values. */
export function checkpointLike(random: () => number): unknown {
  return {
    messages: Array.from({ length: 3 + Math.floor(random() * 5) }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `message ${i} ${random().toString(36)}` })),
    stage: "review",
    updatedAt: new Date(1_700_000_000_000 + Math.floor(random() * 1e9)),
    scores: new Map([[1, random()], [2, random()]]),
  };
}

/** Ways stored bytes go wrong; every one must be refused. */
export function corruptions(random: () => number, tag: string, bytes: Uint8Array): Array<{ what: string; typed: [string, Uint8Array] }> {
  const cut = 1 + Math.floor(random() * (bytes.length - 2));
  const flipped = new Uint8Array(bytes);
  const at = 8 + Math.floor(random() * (bytes.length - 8));
  flipped[at] = flipped[at]! ^ (1 << Math.floor(random() * 8));
  const garbage = new Uint8Array(1 + Math.floor(random() * 64)).map(() => Math.floor(random() * 256));
  return [
    { what: 'an unknown type tag ("pickle")', typed: ["pickle", bytes] },
    { what: "empty bytes", typed: [tag, new Uint8Array(0)] },
    { what: `bytes truncated to ${cut} of ${bytes.length}`, typed: [tag, bytes.subarray(0, cut)] },
    { what: `bytes with one bit flipped at offset ${at}`, typed: [tag, flipped] },
    { what: `${garbage.length} random bytes`, typed: [tag, garbage] },
    { what: "a body that is not JSON", typed: [tag, forgeBody(2, undefined, Buffer.from("{not json", "utf8"))] },
    { what: "a body that is not UTF-8", typed: [tag, forgeBody(2, undefined, new Uint8Array([0x22, 0xff, 0xfe, 0x22]))] },
    { what: "a date that is not a date", typed: [tag, forgeBody(2, { $t: "date", v: "not a date" })] },
    { what: "a bigint that is not an integer", typed: [tag, forgeBody(2, { $t: "bigint", v: "1.5e3" })] },
    { what: "an unknown kind of tagged value", typed: [tag, forgeBody(2, { $t: "wat", v: 1 })] },
  ];
}

const leaf = fc.oneof(
  fc.string(),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 16 }),
);

/** Arbitrary nested values of every kind the serializer must hold. */
export const serdeValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  tree: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("array"), tie("object"), tie("map"), tie("set")),
  array: fc.array(tie("tree"), { maxLength: 5 }),
  object: fc.dictionary(fc.string({ maxLength: 8 }), tie("tree"), { maxKeys: 5, noNullPrototype: true }),
  map: fc.array(fc.tuple(tie("tree"), tie("tree")), { maxLength: 4 }).map((entries) => new Map(entries)),
  set: fc.array(tie("tree"), { maxLength: 4 }).map((items) => new Set(items)),
})).tree;
