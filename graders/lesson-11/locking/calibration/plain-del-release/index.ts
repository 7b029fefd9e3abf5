/**
 * Calibration answer. Planted mistake: the lease is released with a plain DEL. A holder whose
 * lease expired while it was paused deletes the lease of the holder that replaced it, and a
 * third writer can then take the thread. Everything else is the reference.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { DEFAULT_NAMESPACE, threadKeys } from "./base/keys.ts";
import type { Lease, LeaseOptions } from "./base/lease.ts";
import { LockingInputError } from "./base/errors.ts";
import { validateThreadId } from "./base/versioned-store.ts";

export * from "./base/index.ts";

const ACQUIRE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end
return false
`;
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  const id = validateThreadId(threadId);
  if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new LockingInputError(`Invalid lease ttlMs (${ttlMs}): use a whole number of milliseconds, e.g. 30000.`);
  const keys = threadKeys(options.namespace ?? DEFAULT_NAMESPACE, id);
  const owner = randomUUID();
  const token = await redis.eval(ACQUIRE_SCRIPT, 2, keys.lease, keys.fence, owner, String(ttlMs));
  if (token == null || token === false) return undefined;
  return {
    threadId: id,
    token: Number(token),
    // The mistake: deletes the key whoever owns it now.
    release: async () => (await redis.del(keys.lease)) === 1,
    renew: async (renewTtlMs = ttlMs) => Number(await redis.eval(RENEW_SCRIPT, 1, keys.lease, owner, String(renewTtlMs))) === 1,
  };
}
