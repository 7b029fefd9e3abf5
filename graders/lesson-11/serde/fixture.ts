/** Inputs and helpers for the serde grader: seeded values, forged bodies, corruptions. */
import { inspect } from "node:util";
import { crc32 } from "node:zlib";
import { seal } from "./legacy-v1.ts";
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

/** Error codes the contract lists; every SerdeError carries one. */
export const CODES = ["BAD_OPTIONS", "UNKNOWN_TAG", "MALFORMED", "CHECKSUM", "UNSUPPORTED_VERSION", "TOO_LARGE", "UNSUPPORTED_VALUE", "UNKNOWN_TYPE", "CYCLE", "TOO_DEEP"] as const;
export type Code = (typeof CODES)[number];

/** Why `error` is not the learner's SerdeError with one of `codes` and a message that says something, or undefined when it is. */
export function notSerdeError(api: SerdeApi, error: unknown, codes: readonly string[] = CODES): string | undefined {
  if (error === undefined) return "it returned instead of throwing";
  if (!(error instanceof api.SerdeError)) return `it threw ${show(error)}, not your SerdeError`;
  const code = (error as { code?: unknown }).code;
  if (!codes.includes(code as string)) return `its SerdeError has code ${show(code)}; expected ${codes.length === 1 ? codes[0] : `one of ${codes.join(", ")}`} (the codes are listed in the contract)`;
  if (typeof error.message !== "string" || error.message.length < 10) return `its SerdeError's message ${show(error.message)} does not say what was wrong`;
  return undefined;
}

/**
 * The same bytes with header fields or the body replaced, and the checksum recomputed as the
 * contract defines it (CRC-32 of header bytes 0-3 followed by the stored body).
 */
export function reseal(bytes: Uint8Array, change: { magic?: readonly [number, number]; version?: number; flags?: number; body?: Uint8Array }): Uint8Array {
  const out = seal(change.version ?? bytes[2]!, change.flags ?? bytes[3]!, change.body ?? bytes.subarray(8));
  if (change.magic) {
    out.set(change.magic, 0);
    new DataView(out.buffer).setUint32(4, crc32(out.subarray(8), crc32(out.subarray(0, 4))));
  }
  return out;
}

/** A version-1 body holding the given tagged tree (or raw bytes), as last year's release would have sealed it. */
export function v1Body(tree: unknown, raw?: Uint8Array): Uint8Array {
  return seal(1, 0, raw ?? Buffer.from(JSON.stringify(tree), "utf8"));
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
