/**
 * Calibration answer. Planted mistake: retry without a bound. updateWithRetry backs off with
 * jitter but ignores maxAttempts and loops until a put succeeds, so a hot thread (or a store
 * that always conflicts) keeps the caller busy for ever. Everything else is the reference.
 */
import { setTimeout as sleepFor } from "node:timers/promises";
import { VersionConflictError } from "./base/errors.ts";
import { backoffDelay, type RetryOptions, type RetryResult } from "./base/retry.ts";
import type { VersionedStore } from "./base/versioned-store.ts";

export * from "./base/index.ts";

export async function updateWithRetry<S>(store: VersionedStore<S>, threadId: string, update: (current: S | undefined) => S | Promise<S>, options: RetryOptions): Promise<RetryResult<S>> {
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms));
  for (let attempt = 1; ; attempt++) {
    const current = await store.get(threadId);
    const next = await update(current?.state);
    try {
      const version = await store.put(threadId, next, current?.version ?? 0, options.fencingToken === undefined ? undefined : { fencingToken: options.fencingToken });
      return { state: next, version, attempts: attempt };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      // The mistake: no "attempt >= maxAttempts" exit.
      await sleep(backoffDelay(Math.min(attempt, 10), options.baseDelayMs, options.maxDelayMs ?? 1_000, Math.random));
    }
  }
}
