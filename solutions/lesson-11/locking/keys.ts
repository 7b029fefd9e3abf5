/**
 * Key namespace shared by the Redis store and the lease. Every key of one thread carries the
 * thread id as a hash tag ({...}), so in Redis Cluster they live in one slot and a Lua script
 * may touch several of them; the namespace keeps tenants and applications apart.
 */
import { z } from "zod";
import { LockingInputError } from "./errors.ts";

export const DEFAULT_NAMESPACE = "ckpt";

const namespaceSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "use 1-128 letters, digits, '_', '.', ':' or '-' (no braces: they would change the hash tag)");

export interface ThreadKeys {
  /** Hash: state, version, fence (newest fencing token accepted). */
  state: string;
  /** String: the lease holder's owner id, with a PX expiry. */
  lease: string;
  /** Integer: the fencing-token counter; it never expires, so tokens never go back. */
  fence: string;
}

export function threadKeys(namespace: string, threadId: string): ThreadKeys {
  const parsed = namespaceSchema.safeParse(namespace);
  if (!parsed.success) {
    // Stryker disable next-line OptionalChaining: a failed zod parse always carries at least one issue
    throw new LockingInputError(`Invalid key namespace ${JSON.stringify(namespace)}: ${parsed.error.issues[0]?.message}. Example: "tenant-a:ckpt".`);
  }
  const tag = `{${threadId}}`;
  return { state: `${namespace}:thread:${tag}`, lease: `${namespace}:lease:${tag}`, fence: `${namespace}:fence:${tag}` };
}
