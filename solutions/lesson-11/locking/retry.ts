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

const optionsSchema = z.object({
  maxAttempts: z.number("maxAttempts must be a number").int("maxAttempts must be a whole number").min(1, "maxAttempts must be at least 1").max(1_000, "maxAttempts above 1000 is a retry storm, not a bound"),
  baseDelayMs: z.number("baseDelayMs must be a number").min(0, "baseDelayMs must be 0 or more").finite("baseDelayMs must be finite"),
  maxDelayMs: z.number("maxDelayMs must be a number").min(0, "maxDelayMs must be 0 or more").finite("maxDelayMs must be finite").optional(),
  fencingToken: z.number("fencingToken must be a number").int("fencingToken must be a whole number").positive("fencingToken must be 1 or more").optional(),
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
    throw new LockingInputError(`Invalid retry options: ${parsed.error.issues.map((i) => i.message).join("; ")}. Example: { maxAttempts: 8, baseDelayMs: 5 }.`);
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
