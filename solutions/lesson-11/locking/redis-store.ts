/**
 * Versioned store on Redis. The compare-and-set runs as one Lua script: Redis executes a script
 * without interleaving any other client's command, so the check and the write are one step even
 * when many clients (and many application instances) share the server.
 */
import type { Redis } from "ioredis";
import { LockingInputError, StaleFencingTokenError, VersionConflictError } from "./errors.ts";
import { DEFAULT_NAMESPACE, threadKeys } from "./keys.ts";
import { encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "./versioned-store.ts";

export interface RedisStoreOptions {
  /** Key prefix, e.g. one per tenant ("tenant-a:ckpt"); default "ckpt". */
  namespace?: string;
  /** Expire a thread this long after its last write (retention); default: never. */
  ttlMs?: number;
}

// KEYS[1] thread hash. ARGV: expected version, encoded state, fencing token ("" = none), ttl ms ("0" = none).
// Fencing is checked before the version: a superseded writer must stop, not retry.
const PUT_SCRIPT = `
local current = redis.call('HMGET', KEYS[1], 'version', 'fence')
local version = tonumber(current[1]) or 0
local fence = tonumber(current[2]) or 0
if ARGV[3] ~= '' then
  local token = tonumber(ARGV[3])
  if token < fence then return {'stale', fence} end
  fence = token
end
if version ~= tonumber(ARGV[1]) then return {'conflict', version} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'version', version + 1, 'fence', fence)
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {'ok', version + 1}
`;

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  protected readonly namespace: string;
  protected readonly ttlMs: number;

  constructor(
    protected readonly redis: Redis,
    options: RedisStoreOptions = {},
  ) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.ttlMs = options.ttlMs ?? 0;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 0) {
      throw new LockingInputError(`Invalid ttlMs (${String(options.ttlMs)}): use a whole number of milliseconds, 1 or more (or leave it out for no expiry). Example: 86_400_000.`);
    }
    threadKeys(this.namespace, "probe"); // refuse a bad namespace now, not on the first write
  }

  /** The hash holding a thread's state, version and newest fencing token. */
  protected stateKey(threadId: string): string {
    return threadKeys(this.namespace, threadId).state;
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const key = this.stateKey(validateThreadId(threadId));
    const [state, version] = await this.redis.hmget(key, "state", "version");
    if (state == null) return undefined; // every write sets state and version together
    return { state: JSON.parse(state) as S, version: Number(version) };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const key = this.stateKey(args.threadId);
    const reply = (await this.redis.eval(
      PUT_SCRIPT,
      1,
      key,
      String(args.expectedVersion),
      encodeState(args.threadId, state),
      args.fencingToken === undefined ? "" : String(args.fencingToken),
      String(this.ttlMs),
    )) as [string, number];
    const [outcome, value] = reply;
    if (outcome === "ok") return Number(value);
    if (outcome === "stale") throw new StaleFencingTokenError(args.threadId, args.fencingToken ?? 0, Number(value));
    throw new VersionConflictError(args.threadId, args.expectedVersion, Number(value));
  }
}
