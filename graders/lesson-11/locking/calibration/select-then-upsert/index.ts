/**
 * Calibration answer, needs improvement. Planted mistake: the SQLite put reads the version with
 * a SELECT, compares it in JavaScript, then writes with an unconditional upsert, outside any
 * transaction. better-sqlite3 is synchronous, so inside one process nothing runs between the
 * two statements; another process's write does, and one of the two updates is lost.
 */
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import { randomUUID } from "node:crypto";

// ---------------------------------------------------------------- errors

export class LockingError extends Error {
  override name = "LockingError";
}
export class LockingInputError extends LockingError {
  override name = "LockingInputError";
}
export class VersionConflictError extends LockingError {
  override name = "VersionConflictError";
  constructor(readonly threadId: string, readonly expectedVersion: number, readonly actualVersion: number) {
    super(`Thread "${threadId}" is at version ${actualVersion}, not the expected ${expectedVersion}: re-read it and apply your change again.`);
  }
}
export class StaleFencingTokenError extends LockingError {
  override name = "StaleFencingTokenError";
  constructor(readonly threadId: string, readonly fencingToken: number, readonly newestToken: number) {
    super(`Thread "${threadId}" already accepted fencing token ${newestToken}; token ${fencingToken} belongs to a lost lease. Stop writing.`);
  }
}

// ---------------------------------------------------------------- contract

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

function checkThread(threadId: unknown): string {
  if (typeof threadId !== "string" || threadId.length === 0 || threadId.length > 512 || /[\u0000-\u001f]/.test(threadId)) {
    throw new LockingInputError(`Bad thread id ${JSON.stringify(threadId)}: use a non-empty string of at most 512 printable characters, e.g. "tenant-a:42".`);
  }
  return threadId;
}
function checkCount(value: unknown, what: string, min: number, example: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new LockingInputError(`Bad ${what} ${String(value)}: it must be a whole number of at least ${min}, e.g. ${example}.`);
  }
  return value;
}
function checkPut(threadId: unknown, expectedVersion: unknown, options: PutOptions | undefined) {
  const id = checkThread(threadId);
  const expected = checkCount(expectedVersion, "expectedVersion", 0, "0 for a new thread");
  const token = options?.fencingToken === undefined ? undefined : checkCount(options.fencingToken, "fencingToken", 1, "lease.token");
  return { id, expected, token };
}
function encode(threadId: string, state: unknown): string {
  const text = JSON.stringify(state);
  if (text === undefined) throw new LockingInputError(`The state of thread "${threadId}" cannot be stored as JSON; pass a plain object.`);
  return text;
}

export class MemoryVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly rows = new Map<string, { text: string; version: number; fence: number }>();
  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.rows.get(checkThread(threadId));
    return row && { state: JSON.parse(row.text) as S, version: row.version };
  }
  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = checkPut(threadId, expectedVersion, options);
    const row = this.rows.get(id);
    if (token !== undefined && token < (row?.fence ?? 0)) throw new StaleFencingTokenError(id, token, row!.fence);
    if ((row?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, row?.version ?? 0);
    this.rows.set(id, { text: encode(id, state), version: expected + 1, fence: Math.max(row?.fence ?? 0, token ?? 0) });
    return expected + 1;
  }
}

// ---------------------------------------------------------------- keys

export const DEFAULT_NAMESPACE = "ckpt";
export interface ThreadKeys {
  state: string;
  lease: string;
  fence: string;
}
export function threadKeys(namespace: string, threadId: string): ThreadKeys {
  if (typeof namespace !== "string" || !/^[\w.:-]{1,100}$/.test(namespace)) {
    throw new LockingInputError(`Bad namespace ${JSON.stringify(namespace)}: use 1-100 letters, digits, '_', '.', ':' or '-' (braces would break the hash tag), e.g. "tenant-a".`);
  }
  const tag = `{${threadId}}`;
  return { state: `${namespace}:thread:${tag}`, lease: `${namespace}:lease:${tag}`, fence: `${namespace}:fence:${tag}` };
}

// ---------------------------------------------------------------- SQLite

export interface SqliteStoreOptions {
  busyTimeoutMs?: number;
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;
  private readonly write: (id: string, text: string, expected: number, token: number | undefined) => number;

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.db = new Database(filename, { timeout: options.busyTimeoutMs ?? 5_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS threads (id TEXT PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL, fence INTEGER NOT NULL)");
    const read = this.db.prepare<[string], { version: number; fence: number }>("SELECT version, fence FROM threads WHERE id = ?");
    const insert = this.db.prepare("INSERT INTO threads (id, body, version, fence) VALUES (?, ?, 1, ?) ON CONFLICT (id) DO NOTHING");
    const update = this.db.prepare("UPDATE threads SET body = ?, version = version + 1, fence = max(fence, ?) WHERE id = ? AND version = ? AND fence <= ?");
    void insert;
    void update;
    // The mistake: check in JavaScript, then write whatever is there, with no condition and no transaction.
    const upsert = this.db.prepare("INSERT INTO threads (id, body, version, fence) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, version = excluded.version, fence = excluded.fence");
    this.write = (id, text, expected, token) => {
      const row = read.get(id);
      if (token !== undefined && row && token < row.fence) throw new StaleFencingTokenError(id, token, row.fence);
      if ((row?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, row?.version ?? 0);
      upsert.run(id, text, expected + 1, Math.max(row?.fence ?? 0, token ?? 0));
      return expected + 1;
    };
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.db.prepare<[string], { body: string; version: number }>("SELECT body, version FROM threads WHERE id = ?").get(checkThread(threadId));
    return row && { state: JSON.parse(row.body) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = checkPut(threadId, expectedVersion, options);
    return this.write(id, encode(id, state), expected, token);
  }

  close(): void {
    this.db.close();
  }
}

// ---------------------------------------------------------------- Redis: WATCH/MULTI on dedicated connections

/** Connections of one client for transactions: WATCH state is per connection, so each transaction takes one. */
const pools = new WeakMap<Redis, Redis[]>();
async function transaction<T>(redis: Redis, body: (connection: Redis) => Promise<T>): Promise<T> {
  let idle = pools.get(redis);
  if (!idle) pools.set(redis, (idle = []));
  const connection = idle.pop() ?? redis.duplicate();
  try {
    const result = await body(connection);
    idle.push(connection);
    return result;
  } catch (error) {
    if (error instanceof LockingError) {
      idle.push(connection);
    } else {
      connection.disconnect(); // its WATCH state is unknown: do not reuse it
    }
    throw error;
  }
}

export interface RedisStoreOptions {
  namespace?: string;
  ttlMs?: number;
}

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly namespace: string;
  private readonly ttlMs: number | undefined;

  constructor(
    private readonly redis: Redis,
    options: RedisStoreOptions = {},
  ) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    threadKeys(this.namespace, "x");
    this.ttlMs = options.ttlMs === undefined ? undefined : checkCount(options.ttlMs, "ttlMs", 1, "86400000");
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const key = threadKeys(this.namespace, checkThread(threadId)).state;
    const [body, version] = await this.redis.hmget(key, "body", "version");
    return body == null || version == null ? undefined : { state: JSON.parse(body) as S, version: Number(version) };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const { id, expected, token } = checkPut(threadId, expectedVersion, options);
    const key = threadKeys(this.namespace, id).state;
    const text = encode(id, state);
    return transaction(this.redis, async (connection) => {
      for (;;) {
        await connection.watch(key);
        const [version, fence] = (await connection.hmget(key, "version", "fence")).map((v) => Number(v ?? 0)) as [number, number];
        if (token !== undefined && token < fence) {
          await connection.unwatch();
          throw new StaleFencingTokenError(id, token, fence);
        }
        if (version !== expected) {
          await connection.unwatch();
          throw new VersionConflictError(id, expected, version);
        }
        const batch = connection.multi().hset(key, "body", text, "version", expected + 1, "fence", Math.max(fence, token ?? 0));
        if (this.ttlMs !== undefined) batch.pexpire(key, this.ttlMs);
        const done = await batch.exec();
        if (done !== null) return expected + 1;
        // Someone wrote between our read and EXEC: read again, and report what they did.
      }
    });
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
  return random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
}

export async function updateWithRetry<S>(store: VersionedStore<S>, threadId: string, update: (current: S | undefined) => S | Promise<S>, options: RetryOptions): Promise<RetryResult<S>> {
  const maxAttempts = checkCount(options?.maxAttempts, "maxAttempts", 1, "8");
  if (typeof options.baseDelayMs !== "number" || !(options.baseDelayMs >= 0) || !Number.isFinite(options.baseDelayMs)) {
    throw new LockingInputError(`Bad baseDelayMs ${String(options.baseDelayMs)}: use a finite number of milliseconds >= 0, e.g. 5.`);
  }
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const putOptions = options.fencingToken === undefined ? undefined : { fencingToken: options.fencingToken };
  let attempt = 0;
  for (;;) {
    attempt++;
    const current = await store.get(threadId);
    const next = await update(current?.state);
    try {
      return { state: next, version: await store.put(threadId, next, current?.version ?? 0, putOptions), attempts: attempt };
    } catch (error) {
      if (!(error instanceof VersionConflictError) || attempt >= maxAttempts) throw error;
      await sleep(backoffDelay(attempt, options.baseDelayMs, options.maxDelayMs ?? 1_000, random));
    }
  }
}

// ---------------------------------------------------------------- lease, all WATCH/MULTI

export interface Lease {
  readonly threadId: string;
  readonly token: number;
  release(): Promise<boolean>;
  renew(ttlMs?: number): Promise<boolean>;
}
export interface LeaseOptions {
  namespace?: string;
}

/** Runs `act` in MULTI only if the lease key still holds `owner`; WATCH makes check and act one step. */
function ifOwner(redis: Redis, key: string, owner: string, act: (batch: ReturnType<Redis["multi"]>) => void): Promise<boolean> {
  return transaction(redis, async (connection) => {
    await connection.watch(key);
    if ((await connection.get(key)) !== owner) {
      await connection.unwatch();
      return false;
    }
    const batch = connection.multi();
    act(batch);
    const done = await batch.exec();
    return done !== null && Number(done[0]?.[1]) === 1;
  });
}

export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  const id = checkThread(threadId);
  const ttl = checkCount(ttlMs, "ttlMs", 1, "30000");
  const keys = threadKeys(options.namespace ?? DEFAULT_NAMESPACE, id);
  const owner = randomUUID();
  const token = await transaction(redis, async (connection) => {
    await connection.watch(keys.lease);
    if ((await connection.exists(keys.lease)) === 1) {
      await connection.unwatch();
      return undefined;
    }
    // The lease and the token are granted together or not at all; the counter never expires.
    const done = await connection.multi().set(keys.lease, owner, "PX", ttl).incr(keys.fence).exec();
    return done === null ? undefined : Number(done[1]?.[1]);
  });
  if (token === undefined) return undefined;
  return {
    threadId: id,
    token,
    release: () => ifOwner(redis, keys.lease, owner, (batch) => void batch.del(keys.lease)),
    renew: (renewMs = ttl) => {
      const ms = checkCount(renewMs, "ttlMs", 1, "30000");
      return ifOwner(redis, keys.lease, owner, (batch) => void batch.pexpire(keys.lease, ms));
    },
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

interface Known {
  text: string;
  version: number;
  fence: number;
}

export class ResilientStore<S = unknown> {
  private readonly seen = new Map<string, Known>();
  private readonly pending = new Map<string, Known & { base: number }>();
  private down = false;
  private triedAt = 0;

  constructor(
    private readonly primary: VersionedStore<S>,
    private readonly options: ResilientStoreOptions = {},
  ) {}

  get degraded(): boolean {
    return this.down;
  }

  private clock(): number {
    return (this.options.now ?? Date.now)();
  }

  private fail(cause: unknown): void {
    this.triedAt = this.clock();
    if (!this.down) {
      this.down = true;
      this.options.onModeChange?.("degraded", cause);
    }
  }

  private note(id: string, text: string, version: number, token = 0): void {
    const fence = Math.max(this.seen.get(id)?.fence ?? 0, token);
    this.seen.delete(id);
    this.seen.set(id, { text, version, fence });
    const limit = this.options.maxRemembered ?? 10_000;
    if (this.seen.size > limit) this.seen.delete(this.seen.keys().next().value!);
  }

  private async primaryUsable(): Promise<boolean> {
    if (!this.down) return true;
    if (this.clock() - this.triedAt < (this.options.probeIntervalMs ?? 1_000)) return false;
    return (await this.reconcile()).recovered;
  }

  async get(threadId: string): Promise<ResilientGetResult<S> | undefined> {
    const id = checkThread(threadId);
    if (await this.primaryUsable()) {
      try {
        const found = await this.primary.get(id);
        if (found) this.note(id, JSON.stringify(found.state), found.version);
        return found && { state: found.state, version: found.version, degraded: false };
      } catch (error) {
        this.fail(error);
      }
    }
    const known = this.pending.get(id) ?? this.seen.get(id);
    return known && { state: JSON.parse(known.text) as S, version: known.version, degraded: true };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<ResilientPutResult> {
    const { id, expected, token } = checkPut(threadId, expectedVersion, options);
    const text = encode(id, state);
    if (await this.primaryUsable()) {
      try {
        const version = await this.primary.put(id, state, expected, options);
        this.note(id, text, version, token);
        return { version, degraded: false };
      } catch (error) {
        if (error instanceof LockingError) throw error;
        this.fail(error);
      }
    }
    const known = this.pending.get(id) ?? this.seen.get(id);
    if (token !== undefined && known && token < known.fence) throw new StaleFencingTokenError(id, token, known.fence);
    if ((known?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, known?.version ?? 0);
    const base = this.pending.get(id)?.base ?? this.seen.get(id)?.version ?? 0;
    this.pending.set(id, { text, version: expected + 1, fence: Math.max(known?.fence ?? 0, token ?? 0), base });
    return { version: expected + 1, degraded: true };
  }

  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { restored: [], keptPrimary: [], recovered: false };
    this.triedAt = this.clock();
    try {
      if (this.pending.size === 0 && this.seen.size > 0) await this.primary.get(this.seen.keys().next().value!);
      for (const [id, entry] of [...this.pending]) {
        const now = await this.primary.get(id);
        const primaryVersion = now?.version ?? 0;
        const fallbackState = JSON.parse(entry.text) as unknown;
        if (primaryVersion > entry.base) {
          report.keptPrimary.push({ threadId: id, primaryVersion, fallbackState });
        } else {
          try {
            const version = await this.primary.put(id, fallbackState as S, primaryVersion, entry.fence > 0 ? { fencingToken: entry.fence } : undefined);
            this.note(id, entry.text, version, entry.fence);
            report.restored.push(id);
          } catch (error) {
            if (!(error instanceof LockingError)) throw error;
            report.keptPrimary.push({ threadId: id, primaryVersion: error instanceof VersionConflictError ? error.actualVersion : primaryVersion, fallbackState });
          }
        }
        this.pending.delete(id);
      }
    } catch (error) {
      this.fail(error);
      return report;
    }
    if (this.down) {
      this.down = false;
      this.options.onModeChange?.("primary");
    }
    report.recovered = true;
    return report;
  }
}
