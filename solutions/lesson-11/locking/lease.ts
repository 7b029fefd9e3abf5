/**
 * A lease on one thread: at most one live holder, for a bounded time. A lease alone cannot stop
 * a holder that was paused past its expiry, so every grant comes with a fencing token that the
 * stores check (see versioned-store.ts).
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { z } from "zod";
import { LockingInputError } from "./errors.ts";
import { DEFAULT_NAMESPACE, threadKeys } from "./keys.ts";
import { validateThreadId } from "./versioned-store.ts";

export interface Lease {
  readonly threadId: string;
  /** Fencing token: strictly greater than every token granted before for this thread. */
  readonly token: number;
  /** Deletes the lease if this holder still owns it; false if it had expired (or was taken over). */
  release(): Promise<boolean>;
  /** Extends the lease to `ttlMs` from now if this holder still owns it; false otherwise. */
  renew(ttlMs?: number): Promise<boolean>;
}

export interface LeaseOptions {
  /** Key prefix shared with the store, e.g. one per tenant; default "ckpt". */
  namespace?: string;
}

// SET NX PX and INCR in one script: a holder that paused between the two could otherwise be
// handed a token newer than the holder that replaced it.
const ACQUIRE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
`;
// Compare-and-delete / compare-and-extend: only the owner id that took the lease may end or
// extend it. A plain DEL would delete whichever holder owns the key now.
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

const ttlSchema = z.number().int("must be a whole number of milliseconds").min(1, "must be at least 1 ms").max(2 ** 31 - 1);

function validateTtl(ttlMs: unknown): number {
  const parsed = ttlSchema.safeParse(ttlMs);
  // Stryker disable next-line OptionalChaining: a failed zod parse always carries at least one issue
  if (!parsed.success) throw new LockingInputError(`Invalid lease ttlMs (${String(ttlMs)}): ${parsed.error.issues[0]?.message}. Example: 30_000.`);
  return parsed.data;
}

/** Takes the thread's lease for `ttlMs`, or returns undefined while another holder owns it. */
export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  const id = validateThreadId(threadId);
  const ttl = validateTtl(ttlMs);
  const keys = threadKeys(options.namespace ?? DEFAULT_NAMESPACE, id);
  const owner = randomUUID();
  const token = await redis.eval(ACQUIRE_SCRIPT, 2, keys.lease, keys.fence, owner, String(ttl));
  // The script's `return false` arrives as null: Redis sends a Lua false as a nil reply.
  if (token === null) return undefined;

  return {
    threadId: id,
    token: Number(token),
    release: async () => Number(await redis.eval(RELEASE_SCRIPT, 1, keys.lease, owner)) === 1,
    renew: async (renewTtlMs = ttl) => Number(await redis.eval(RENEW_SCRIPT, 1, keys.lease, owner, String(validateTtl(renewTtlMs)))) === 1,
  };
}
