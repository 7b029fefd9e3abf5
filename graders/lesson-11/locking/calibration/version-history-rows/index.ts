/**
 * Calibration answer, excellent: an alternative correct design, written from the starter's
 * contract and the lesson page.
 *
 * - SQLite keeps an append-only history, one row per (thread, version), and the PRIMARY KEY is
 *   the compare-and-set: a put inserts row expectedVersion + 1 with a single INSERT ... SELECT
 *   whose WHERE asks that row expectedVersion exist (or expectedVersion be 0) and that no newer
 *   fencing token was recorded; two writers from the same version collide on the key, and
 *   SQLite makes one statement atomic across connections and processes.
 * - Redis runs its scripts through ioredis defineCommand (EVALSHA with a fallback to EVAL): the
 *   thread is a hash (head version, state, newest token) plus a capped list of recent versions.
 * - The degraded mode is a MemoryVersionedStore (composition) seeded from the last state seen.
 */
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import { randomUUID } from "node:crypto";

export class LockingError extends Error {
  override name = "LockingError";
}
export class LockingInputError extends LockingError {
  override name = "LockingInputError";
}
export class VersionConflictError extends LockingError {
  override name = "VersionConflictError";
  constructor(
    readonly threadId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`Lost the race on "${threadId}": wrote from version ${expectedVersion}, but version ${actualVersion} is current.`);
  }
}
export class StaleFencingTokenError extends LockingError {
  override name = "StaleFencingTokenError";
  constructor(
    readonly threadId: string,
    readonly fencingToken: number,
    readonly newestToken: number,
  ) {
    super(`Fenced off "${threadId}": token ${fencingToken} < newest token ${newestToken}; the lease behind it has been lost.`);
  }
}

export interface Versioned<S> {
  state: S;
  version: number;
}
export interface PutOptions {
  fencingToken?: number;
}
export interface VersionedStore<S = unknown> {
  get(threadId: string): Promise<Versioned<S> | undefined>;
  put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number>;
}

class Check {
  static thread(id: unknown): string {
    if (typeof id !== "string" || id === "" || id.length > 256 || /\p{Cc}/u.test(id)) {
      throw new LockingInputError(`threadId must be a non-empty printable string of at most 256 characters, like "order-1881"; got ${JSON.stringify(id)}.`);
    }
    return id;
  }
  static int(value: unknown, name: string, min: number): number {
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > Number.MAX_SAFE_INTEGER) {
      throw new LockingInputError(`${name} must be an integer >= ${min} (e.g. ${min === 0 ? 3 : min + 4}); got ${String(value)}.`);
    }
    return value as number;
  }
  static put(threadId: unknown, expectedVersion: unknown, options: PutOptions | undefined) {
    return {
      id: Check.thread(threadId),
      expected: Check.int(expectedVersion, "expectedVersion", 0),
      token: options?.fencingToken === undefined ? undefined : Check.int(options.fencingToken, "fencingToken", 1),
    };
  }
  static json(id: string, state: unknown): string {
    const text = JSON.stringify(state);
    if (text === undefined) throw new LockingInputError(`state of "${id}" must be JSON-serialisable (a plain object); got ${typeof state}.`);
    return text;
  }
}

export class MemoryVersionedStore<S = unknown> implements VersionedStore<S> {
  readonly rows = new Map<string, { text: string; version: number; fence: number }>();
  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.rows.get(Check.thread(threadId));
    return row && { state: JSON.parse(row.text) as S, version: row.version };
  }
  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = Check.put(threadId, expectedVersion, options);
    const text = Check.json(id, state);
    const row = this.rows.get(id);
    const fence = row?.fence ?? 0;
    if (token !== undefined && token < fence) throw new StaleFencingTokenError(id, token, fence);
    if ((row?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, row?.version ?? 0);
    this.rows.set(id, { text, version: expected + 1, fence: Math.max(fence, token ?? 0) });
    return expected + 1;
  }
}

export const DEFAULT_NAMESPACE = "ckpt";
export interface ThreadKeys {
  state: string;
  lease: string;
  fence: string;
}
export function threadKeys(namespace: string, threadId: string): ThreadKeys {
  if (typeof namespace !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$/.test(namespace)) {
    throw new LockingInputError(`namespace must be 1-80 characters of letters, digits, '_', '.', ':' or '-' and no braces (they would change the cluster hash tag), like "acme"; got ${JSON.stringify(namespace)}.`);
  }
  const tag = `{${threadId}}`;
  return { state: `${namespace}:thread:${tag}`, lease: `${namespace}:lease:${tag}`, fence: `${namespace}:fence:${tag}` };
}

// ---------------------------------------------------------------- SQLite: the primary key is the lock

export interface SqliteStoreOptions {
  busyTimeoutMs?: number;
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.db = new Database(filename, { timeout: options.busyTimeoutMs ?? 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS thread_history (
      thread  TEXT NOT NULL,
      version INTEGER NOT NULL,
      body    TEXT NOT NULL,
      fence   INTEGER NOT NULL,
      PRIMARY KEY (thread, version)
    ) WITHOUT ROWID`);
  }

  private head(id: string): { body: string; version: number; fence: number } | undefined {
    return this.db.prepare("SELECT body, version, fence FROM thread_history WHERE thread = ? ORDER BY version DESC LIMIT 1").get(id) as { body: string; version: number; fence: number } | undefined;
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.head(Check.thread(threadId));
    return row && { state: JSON.parse(row.body) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = Check.put(threadId, expectedVersion, options);
    const body = Check.json(id, state);
    let inserted = 0;
    try {
      inserted = this.db
        .prepare(
          `INSERT INTO thread_history (thread, version, body, fence)
           SELECT :id, :expected + 1, :body, max(coalesce((SELECT max(fence) FROM thread_history WHERE thread = :id), 0), coalesce(:token, 0))
           WHERE (:expected = 0 OR EXISTS (SELECT 1 FROM thread_history WHERE thread = :id AND version = :expected))
             AND (:token IS NULL OR coalesce((SELECT max(fence) FROM thread_history WHERE thread = :id), 0) <= :token)`,
        )
        .run({ id, expected, body, token: token ?? null }).changes;
    } catch (error) {
      if ((error as { code?: string }).code !== "SQLITE_CONSTRAINT_PRIMARYKEY") throw error;
    }
    if (inserted === 1) return expected + 1;
    // Refused: say why, from what is there now.
    const now = this.head(id);
    if (token !== undefined && now && token < now.fence) throw new StaleFencingTokenError(id, token, now.fence);
    throw new VersionConflictError(id, expected, now?.version ?? 0);
  }

  close(): void {
    this.db.close();
  }
}

// ---------------------------------------------------------------- Redis: scripts by SHA

type Scripted = Redis & {
  historyCas(key: string, versions: string, expected: number, token: number, text: string, ttl: number): Promise<[number, number]>;
  leaseTake(lease: string, fence: string, owner: string, ttl: number): Promise<number | null>;
  leaseIfOwner(lease: string, owner: string, ttl: number): Promise<number>;
};

const HISTORY_CAS = `
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local token = tonumber(ARGV[2])
if token > 0 and token < fence then return {2, fence} end
if head ~= tonumber(ARGV[1]) then return {1, head} end
if token > fence then fence = token end
redis.call('HSET', KEYS[1], 'head', head + 1, 'body', ARGV[3], 'fence', fence)
redis.call('LPUSH', KEYS[2], head + 1)
redis.call('LTRIM', KEYS[2], 0, 19)
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {0, head + 1}
`;
const LEASE_TAKE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
return redis.call('INCR', KEYS[2])
`;
// ARGV[2] = 0: delete; otherwise extend to ARGV[2] ms. Either only for the owner.
const LEASE_IF_OWNER = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`;

const prepared = new WeakSet<Redis>();
function scripted(redis: Redis): Scripted {
  if (!prepared.has(redis)) {
    redis.defineCommand("historyCas", { numberOfKeys: 2, lua: HISTORY_CAS });
    redis.defineCommand("leaseTake", { numberOfKeys: 2, lua: LEASE_TAKE });
    redis.defineCommand("leaseIfOwner", { numberOfKeys: 1, lua: LEASE_IF_OWNER });
    prepared.add(redis);
  }
  return redis as Scripted;
}

export interface RedisStoreOptions {
  namespace?: string;
  ttlMs?: number;
}

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly namespace: string;
  private readonly ttl: number;
  private readonly client: Scripted;

  constructor(redis: Redis, options: RedisStoreOptions = {}) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    threadKeys(this.namespace, "-");
    this.ttl = options.ttlMs === undefined ? 0 : Check.int(options.ttlMs, "ttlMs", 1);
    this.client = scripted(redis);
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const key = threadKeys(this.namespace, Check.thread(threadId)).state;
    const [head, body] = await this.client.hmget(key, "head", "body");
    return head == null || body == null ? undefined : { state: JSON.parse(body) as S, version: Number(head) };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = Check.put(threadId, expectedVersion, options);
    const key = threadKeys(this.namespace, id).state;
    const [code, value] = await this.client.historyCas(key, `${key}:versions`, expected, token ?? 0, Check.json(id, state), this.ttl);
    if (Number(code) === 0) return Number(value);
    if (Number(code) === 2) throw new StaleFencingTokenError(id, token!, Number(value));
    throw new VersionConflictError(id, expected, Number(value));
  }
}

// ---------------------------------------------------------------- retry

export interface RetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  fencingToken?: number;
}
export interface RetryResult<S> {
  state: S;
  version: number;
  attempts: number;
}

export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  let cap = baseDelayMs;
  for (let i = 1; i < attempt && cap < maxDelayMs; i++) cap *= 2;
  return random() * Math.min(cap, maxDelayMs);
}

export async function updateWithRetry<S>(store: VersionedStore<S>, threadId: string, update: (current: S | undefined) => S | Promise<S>, options: RetryOptions): Promise<RetryResult<S>> {
  const maxAttempts = Check.int(options?.maxAttempts, "maxAttempts", 1);
  const base = options.baseDelayMs;
  if (typeof base !== "number" || !(base >= 0) || base === Infinity) throw new LockingInputError(`baseDelayMs must be a finite number >= 0 (e.g. 10); got ${String(base)}.`);
  const token = options.fencingToken === undefined ? undefined : Check.int(options.fencingToken, "fencingToken", 1);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const attemptOnce = async (attempt: number): Promise<RetryResult<S>> => {
    const read = await store.get(threadId);
    const next = await update(read?.state);
    try {
      return { state: next, version: await store.put(threadId, next, read?.version ?? 0, token === undefined ? undefined : { fencingToken: token }), attempts: attempt };
    } catch (error) {
      if (error instanceof VersionConflictError && attempt < maxAttempts) {
        await sleep(backoffDelay(attempt, base, options.maxDelayMs ?? 500, options.random ?? Math.random));
        return attemptOnce(attempt + 1);
      }
      throw error;
    }
  };
  return attemptOnce(1);
}

// ---------------------------------------------------------------- lease

export interface Lease {
  readonly threadId: string;
  readonly token: number;
  release(): Promise<boolean>;
  renew(ttlMs?: number): Promise<boolean>;
}
export interface LeaseOptions {
  namespace?: string;
}

export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  const id = Check.thread(threadId);
  const ttl = Check.int(ttlMs, "ttlMs", 1);
  const keys = threadKeys(options.namespace ?? DEFAULT_NAMESPACE, id);
  const client = scripted(redis);
  const owner = randomUUID();
  const token = await client.leaseTake(keys.lease, keys.fence, owner, ttl);
  if (token == null) return undefined;
  return {
    threadId: id,
    token: Number(token),
    release: async () => Number(await client.leaseIfOwner(keys.lease, owner, 0)) === 1,
    renew: async (next = ttl) => Number(await client.leaseIfOwner(keys.lease, owner, Check.int(next, "ttlMs", 1))) === 1,
  };
}

// ---------------------------------------------------------------- degradation

export interface ResilientStoreOptions {
  probeIntervalMs?: number;
  maxRemembered?: number;
  now?: () => number;
  onModeChange?: (mode: "degraded" | "primary", cause?: unknown) => void;
}
export interface ResilientPutResult {
  version: number;
  degraded: boolean;
}
export type ResilientGetResult<S> = Versioned<S> & { degraded: boolean };
export interface ReconcileReport {
  restored: string[];
  keptPrimary: Array<{ threadId: string; primaryVersion: number; fallbackState: unknown }>;
  recovered: boolean;
}

export class ResilientStore<S = unknown> {
  private readonly memory = new MemoryVersionedStore<S>();
  /** Primary version of each thread when this instance last saw it: the fallback's starting point. */
  private readonly seenVersion = new Map<string, number>();
  /** Threads the fallback wrote, with the primary version they started from. */
  private readonly dirty = new Map<string, number>();
  private state: "primary" | "degraded" = "primary";
  private lastFailure = 0;

  constructor(
    private readonly primary: VersionedStore<S>,
    private readonly options: ResilientStoreOptions = {},
  ) {}

  get degraded(): boolean {
    return this.state === "degraded";
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private isOutage(error: unknown): boolean {
    return !(error instanceof LockingError);
  }

  private switchTo(mode: "primary" | "degraded", cause?: unknown): void {
    if (mode === "degraded") this.lastFailure = this.now();
    if (this.state === mode) return;
    this.state = mode;
    this.options.onModeChange?.(mode, cause);
  }

  /** Mirrors a primary state into memory, so the fallback starts from it. */
  private mirror(id: string, state: S, version: number, token?: number): void {
    const fence = Math.max(this.memory.rows.get(id)?.fence ?? 0, token ?? 0);
    this.memory.rows.delete(id);
    this.memory.rows.set(id, { text: JSON.stringify(state), version, fence });
    this.seenVersion.set(id, version);
    const limit = this.options.maxRemembered ?? 10_000;
    for (const old of this.memory.rows.keys()) {
      if (this.memory.rows.size <= limit) break;
      if (this.dirty.has(old)) continue;
      this.memory.rows.delete(old);
      this.seenVersion.delete(old);
    }
  }

  private async primaryTurn(): Promise<boolean> {
    if (this.state === "primary") return true;
    if (this.now() - this.lastFailure < (this.options.probeIntervalMs ?? 1_000)) return false;
    return (await this.reconcile()).recovered;
  }

  async get(threadId: string): Promise<ResilientGetResult<S> | undefined> {
    const id = Check.thread(threadId);
    if (await this.primaryTurn()) {
      try {
        const found = await this.primary.get(id);
        if (found) this.mirror(id, found.state, found.version);
        return found && { state: found.state, version: found.version, degraded: false };
      } catch (error) {
        if (!this.isOutage(error)) throw error;
        this.switchTo("degraded", error);
      }
    }
    const local = await this.memory.get(id);
    return local && { ...local, degraded: true };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<ResilientPutResult> {
    const { id, token } = Check.put(threadId, expectedVersion, options);
    if (await this.primaryTurn()) {
      try {
        const version = await this.primary.put(id, state, expectedVersion, options);
        this.mirror(id, state, version, token);
        return { version, degraded: false };
      } catch (error) {
        if (!this.isOutage(error)) throw error;
        this.switchTo("degraded", error);
      }
    }
    const version = await this.memory.put(id, state, expectedVersion, options);
    if (!this.dirty.has(id)) this.dirty.set(id, this.seenVersion.get(id) ?? 0);
    return { version, degraded: true };
  }

  async reconcile(): Promise<ReconcileReport> {
    const restored: string[] = [];
    const keptPrimary: ReconcileReport["keptPrimary"] = [];
    this.lastFailure = this.now();
    try {
      if (this.dirty.size === 0) await this.primary.get(this.seenVersion.keys().next().value ?? "probe");
      for (const [id, startedFrom] of [...this.dirty]) {
        const mine = this.memory.rows.get(id)!;
        const fallbackState = JSON.parse(mine.text) as S;
        const theirs = await this.primary.get(id);
        const primaryVersion = theirs?.version ?? 0;
        if (primaryVersion > startedFrom) {
          keptPrimary.push({ threadId: id, primaryVersion, fallbackState });
          this.mirror(id, theirs!.state, primaryVersion);
        } else {
          try {
            const version = await this.primary.put(id, fallbackState, primaryVersion, mine.fence > 0 ? { fencingToken: mine.fence } : undefined);
            this.mirror(id, fallbackState, version, mine.fence);
            restored.push(id);
          } catch (error) {
            if (this.isOutage(error)) throw error;
            keptPrimary.push({ threadId: id, primaryVersion: error instanceof VersionConflictError ? error.actualVersion : primaryVersion, fallbackState });
          }
        }
        this.dirty.delete(id);
      }
    } catch (error) {
      this.switchTo("degraded", error);
      return { restored, keptPrimary, recovered: false };
    }
    this.switchTo("primary");
    return { restored, keptPrimary, recovered: true };
  }
}
