/**
 * lesson-11 / locking: cross-instance consistency.
 *
 * Design: the Redis scripts are registered once per client with ioredis `defineCommand` (EVALSHA,
 * falling back to EVAL when the server does not have the script cached), so the script body is
 * not resent on every call. The lease value is "<token>:<owner>": whoever inspects the lease key
 * sees which grant holds it, and release / renew compare the whole value, so an owner id reused by
 * mistake still cannot act on a later grant. On SQLite the newest accepted fencing token lives in
 * a table of its own (thread_fences), checked and raised in the same BEGIN IMMEDIATE transaction
 * as the conditional UPDATE of the state row.
 * ResilientStore remembers what it saw (LRU), degrades to an in-memory CAS store on outage,
 * probes at most every probeIntervalMs and reconciles thread by thread without overwriting
 * threads another instance moved on.
 */
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import type { Redis } from "ioredis";

// ---------------------------------------------------------------- errors (given)

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
    super(`Version conflict on thread "${threadId}": expected version ${expectedVersion}, the store holds ${actualVersion}. Re-read and apply the change again.`);
  }
}

export class StaleFencingTokenError extends LockingError {
  override name = "StaleFencingTokenError";
  constructor(
    readonly threadId: string,
    readonly fencingToken: number,
    readonly newestToken: number,
  ) {
    super(`Stale fencing token on thread "${threadId}": token ${fencingToken} is older than ${newestToken}. Your lease was lost; stop writing.`);
  }
}

// ---------------------------------------------------------------- the store contract (given)

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

/**
 * A worked example of the contract, for one process: each put runs without an await between
 * check and write, so nothing can interleave. Fencing and input validation are left to you.
 */
export class MemoryVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly threads = new Map<string, { encoded: string; version: number }>();

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const entry = this.threads.get(threadId);
    return entry && { state: JSON.parse(entry.encoded) as S, version: entry.version };
  }

  async put(threadId: string, state: S, expectedVersion: number): Promise<number> {
    const actual = this.threads.get(threadId)?.version ?? 0;
    if (actual !== expectedVersion) throw new VersionConflictError(threadId, expectedVersion, actual);
    this.threads.set(threadId, { encoded: JSON.stringify(state), version: expectedVersion + 1 });
    return expectedVersion + 1;
  }
}

// ---------------------------------------------------------------- keys (given)

export const DEFAULT_NAMESPACE = "ckpt";

export interface ThreadKeys {
  state: string;
  lease: string;
  fence: string;
}

/** The thread id is a hash tag ({...}): in Redis Cluster all keys of a thread share one slot. */
export function threadKeys(namespace: string, threadId: string): ThreadKeys {
  const tag = `{${threadId}}`;
  return { state: `${namespace}:thread:${tag}`, lease: `${namespace}:lease:${tag}`, fence: `${namespace}:fence:${tag}` };
}

// ---------------------------------------------------------------- input validation

function checkThreadId(threadId: unknown): asserts threadId is string {
  if (typeof threadId !== "string" || threadId.length === 0) {
    throw new LockingInputError(`threadId must be a non-empty string, got ${JSON.stringify(threadId) ?? String(threadId)}.`);
  }
}

function checkVersion(version: unknown): asserts version is number {
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0) {
    throw new LockingInputError(`expectedVersion must be a non-negative integer (0 = the thread does not exist yet), got ${String(version)}.`);
  }
}

function checkToken(options: PutOptions | undefined): number | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== "object") throw new LockingInputError("put options must be an object like { fencingToken: 3 }.");
  const token = options.fencingToken;
  if (token === undefined) return undefined;
  if (typeof token !== "number" || !Number.isSafeInteger(token) || token < 1) {
    throw new LockingInputError(`fencingToken must be an integer >= 1 (as acquireLease returns it), got ${String(token)}.`);
  }
  return token;
}

function checkTtl(ttlMs: unknown, what: string): asserts ttlMs is number {
  if (typeof ttlMs !== "number" || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw new LockingInputError(`${what} must be an integer number of milliseconds >= 1, got ${String(ttlMs)}.`);
  }
}

function checkNamespace(namespace: unknown): string {
  if (namespace === undefined) return DEFAULT_NAMESPACE;
  if (typeof namespace !== "string" || namespace.length === 0 || /[{}]/.test(namespace)) {
    throw new LockingInputError(`namespace must be a non-empty string without braces (they would move the hash tag), got ${JSON.stringify(namespace)}.`);
  }
  return namespace;
}

function encodeState(state: unknown): string {
  let encoded: string | undefined;
  try {
    encoded = JSON.stringify(state);
  } catch (error) {
    throw new LockingInputError(`state must be JSON-serializable: ${(error as Error).message}.`);
  }
  if (encoded === undefined) throw new LockingInputError(`state must be a JSON value, got ${typeof state}.`);
  return encoded;
}

// ---------------------------------------------------------------- 1. versioned stores

export interface SqliteStoreOptions {
  busyTimeoutMs?: number;
}

interface Row {
  state: string;
  version: number;
  fence: number;
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;
  private readonly select: Database.Statement<[string], Row>;
  private readonly write: (threadId: string, encoded: string, expected: number, token: number | undefined) => number;

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    const busy = options.busyTimeoutMs ?? 5_000;
    if (!Number.isSafeInteger(busy) || busy < 0) throw new LockingInputError(`busyTimeoutMs must be a non-negative integer, got ${String(busy)}.`);
    this.db = new Database(filename, { timeout: busy });
    this.db.pragma(`busy_timeout = ${busy}`);
    this.db.pragma("journal_mode = WAL"); // readers never block the writer; one host only (no NFS)
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS thread_states (
        thread_id TEXT PRIMARY KEY,
        state     TEXT NOT NULL,
        version   INTEGER NOT NULL CHECK (version >= 1)
      );
      CREATE TABLE IF NOT EXISTS thread_fences (
        thread_id TEXT PRIMARY KEY,
        newest    INTEGER NOT NULL CHECK (newest >= 1)
      );`);
    this.select = this.db.prepare(
      "SELECT s.state AS state, s.version AS version, COALESCE(f.newest, 0) AS fence FROM thread_states s LEFT JOIN thread_fences f USING (thread_id) WHERE s.thread_id = ?",
    );
    const selectFence = this.db.prepare<[string], { newest: number }>("SELECT newest FROM thread_fences WHERE thread_id = ?");
    const selectVersion = this.db.prepare<[string], { version: number }>("SELECT version FROM thread_states WHERE thread_id = ?");
    const raiseFence = this.db.prepare<[string, number]>(
      "INSERT INTO thread_fences (thread_id, newest) VALUES (?, ?) ON CONFLICT (thread_id) DO UPDATE SET newest = MAX(newest, excluded.newest)",
    );
    const insert = this.db.prepare<[string, string]>("INSERT INTO thread_states (thread_id, state, version) VALUES (?, ?, 1) ON CONFLICT (thread_id) DO NOTHING");
    const update = this.db.prepare<[string, string, number]>("UPDATE thread_states SET state = ?, version = version + 1 WHERE thread_id = ? AND version = ?");
    const txn = this.db.transaction((threadId: string, encoded: string, expected: number, token: number | undefined): number => {
      // BEGIN IMMEDIATE holds the write lock from here to COMMIT: fence check, CAS and fence raise are one step.
      if (token !== undefined) {
        const newest = selectFence.get(threadId)?.newest ?? 0;
        if (token < newest) throw new StaleFencingTokenError(threadId, token, newest);
      }
      const changed = expected === 0 ? insert.run(threadId, encoded).changes : update.run(encoded, threadId, expected).changes;
      if (changed !== 1) throw new VersionConflictError(threadId, expected, selectVersion.get(threadId)?.version ?? 0);
      if (token !== undefined) raiseFence.run(threadId, token);
      return expected + 1;
    });
    this.write = (threadId, encoded, expected, token) => txn.immediate(threadId, encoded, expected, token);
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    checkThreadId(threadId);
    const row = this.select.get(threadId);
    return row && { state: JSON.parse(row.state) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    checkThreadId(threadId);
    checkVersion(expectedVersion);
    const token = checkToken(options);
    return this.write(threadId, encodeState(state), expectedVersion, token);
  }

  close(): void {
    this.db.close();
  }
}

export interface RedisStoreOptions {
  namespace?: string;
  ttlMs?: number;
}

/**
 * KEYS[1] = thread hash. ARGV: expected version, encoded state, token ("" = none), ttl ms ("" = none).
 * Token first (a stale holder must stop, not retry), then the version; the bump is in the same script.
 */
const PUT_SCRIPT = `
local version = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence')) or 0
local token = nil
if ARGV[3] ~= '' then token = tonumber(ARGV[3]) end
if token ~= nil and token < fence then return {'stale', fence} end
if version ~= tonumber(ARGV[1]) then return {'conflict', version} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'version', version + 1)
if token ~= nil and token > fence then redis.call('HSET', KEYS[1], 'fence', token) end
if ARGV[4] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {'ok', version + 1}
`;

type ScriptClient = Redis & {
  ckptCasPut(key: string, expected: string, encoded: string, token: string, ttl: string): Promise<[string, number | string]>;
  ckptLeaseAcquire(lease: string, fence: string, owner: string, ttl: string): Promise<number | null | false>;
  ckptLeaseRelease(lease: string, value: string): Promise<number>;
  ckptLeaseRenew(lease: string, value: string, ttl: string): Promise<number>;
};

const scripted = new WeakSet<Redis>();
/** Registers the scripts on a client once (defineCommand: EVALSHA with an EVAL fallback). */
function withScripts(redis: Redis): ScriptClient {
  if (!scripted.has(redis)) {
    redis.defineCommand("ckptCasPut", { numberOfKeys: 1, lua: PUT_SCRIPT });
    redis.defineCommand("ckptLeaseAcquire", { numberOfKeys: 2, lua: ACQUIRE_SCRIPT });
    redis.defineCommand("ckptLeaseRelease", { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    redis.defineCommand("ckptLeaseRenew", { numberOfKeys: 1, lua: RENEW_SCRIPT });
    scripted.add(redis);
  }
  return redis as ScriptClient;
}

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly namespace: string;
  private readonly ttlMs: number | undefined;

  constructor(
    protected readonly redis: Redis,
    protected readonly options: RedisStoreOptions = {},
  ) {
    this.namespace = checkNamespace(options.namespace);
    if (options.ttlMs !== undefined) checkTtl(options.ttlMs, "ttlMs");
    this.ttlMs = options.ttlMs;
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    checkThreadId(threadId);
    const [state, version] = await this.redis.hmget(threadKeys(this.namespace, threadId).state, "state", "version");
    if (state === null || state === undefined || version === null || version === undefined) return undefined;
    return { state: JSON.parse(state) as S, version: Number(version) };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    checkThreadId(threadId);
    checkVersion(expectedVersion);
    const token = checkToken(options);
    const encoded = encodeState(state);
    const reply = (await withScripts(this.redis).ckptCasPut(
      threadKeys(this.namespace, threadId).state,
      String(expectedVersion),
      encoded,
      token === undefined ? "" : String(token),
      this.ttlMs === undefined ? "" : String(this.ttlMs),
    )) as [string, number | string];
    const [outcome, number] = reply;
    if (outcome === "stale") throw new StaleFencingTokenError(threadId, token!, Number(number));
    if (outcome === "conflict") throw new VersionConflictError(threadId, expectedVersion, Number(number));
    return Number(number);
  }
}

// ---------------------------------------------------------------- 2. bounded retry

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

/** The wait before attempt `attempt + 1`: random under a cap that doubles per attempt. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return random() * cap; // full jitter: uniform in [0, cap)
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function updateWithRetry<S>(
  store: VersionedStore<S>,
  threadId: string,
  update: (current: S | undefined) => S | Promise<S>,
  options: RetryOptions,
): Promise<RetryResult<S>> {
  checkThreadId(threadId);
  if (typeof update !== "function") throw new LockingInputError("update must be a function (current) => next state.");
  if (typeof options !== "object" || options === null) throw new LockingInputError("options must be { maxAttempts, baseDelayMs, ... }.");
  const { maxAttempts, baseDelayMs, sleep = realSleep, random = Math.random } = options;
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) throw new LockingInputError(`maxAttempts must be an integer >= 1, got ${String(maxAttempts)}.`);
  if (typeof baseDelayMs !== "number" || !Number.isFinite(baseDelayMs) || baseDelayMs < 0) throw new LockingInputError(`baseDelayMs must be a finite number >= 0, got ${String(baseDelayMs)}.`);
  const maxDelayMs = options.maxDelayMs ?? baseDelayMs * 64;
  if (typeof maxDelayMs !== "number" || Number.isNaN(maxDelayMs) || maxDelayMs < 0) throw new LockingInputError(`maxDelayMs must be a number >= 0, got ${String(maxDelayMs)}.`);
  const token = checkToken(options.fencingToken === undefined ? undefined : { fencingToken: options.fencingToken });
  for (let attempt = 1; ; attempt++) {
    const current = await store.get(threadId);
    const next = await update(current?.state); // re-applied to fresh state on every attempt
    try {
      const version = await store.put(threadId, next, current?.version ?? 0, token === undefined ? undefined : { fencingToken: token });
      return { state: next, version, attempts: attempt };
    } catch (error) {
      // Only a conflict is worth retrying: a stale token means the lease is gone, anything else is an outage.
      if (!(error instanceof VersionConflictError) || attempt >= maxAttempts) throw error;
      await sleep(backoffDelay(attempt, baseDelayMs, maxDelayMs, random));
    }
  }
}

// ---------------------------------------------------------------- 3. lease with a fencing token

export interface Lease {
  readonly threadId: string;
  readonly token: number;
  release(): Promise<boolean>;
  renew(ttlMs?: number): Promise<boolean>;
}

export interface LeaseOptions {
  namespace?: string;
}

/**
 * KEYS[1] = lease, KEYS[2] = fence counter (never expires). ARGV: owner, ttl ms.
 * The token is taken first and written into the lease value; nothing is taken if the lease is held.
 */
const ACQUIRE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d', token) .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
`;
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  checkThreadId(threadId);
  checkTtl(ttlMs, "ttlMs");
  const keys = threadKeys(checkNamespace(options?.namespace), threadId);
  const owner = randomUUID();
  const client = withScripts(redis);
  const granted = await client.ckptLeaseAcquire(keys.lease, keys.fence, owner, String(ttlMs));
  if (granted === null || granted === undefined || granted === false || granted === 0) return undefined;
  const token = Number(granted);
  const value = `${token}:${owner}`;
  return {
    threadId,
    token,
    async release() {
      return Number(await client.ckptLeaseRelease(keys.lease, value)) === 1;
    },
    async renew(newTtlMs = ttlMs) {
      checkTtl(newTtlMs, "ttlMs");
      return Number(await client.ckptLeaseRenew(keys.lease, value, String(newTtlMs))) === 1;
    },
  };
}

// ---------------------------------------------------------------- 4. degradation

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

interface FallbackEntry {
  encoded: string;
  version: number;
  /** The primary version this instance last knew when it started writing the thread in memory. */
  base: number;
}

export class ResilientStore<S = unknown> {
  /** Last state seen on the primary per thread (JSON text, so callers never share objects); LRU order. */
  private readonly remembered = new Map<string, { encoded: string; version: number }>();
  private readonly fallback = new Map<string, FallbackEntry>();
  /** Newest fencing token this instance accepted per thread while degraded. */
  private readonly fences = new Map<string, number>();
  private mode: "primary" | "degraded" = "primary";
  private lastProbe = 0;
  private reconciling: Promise<ReconcileReport> | undefined;
  private readonly probeIntervalMs: number;
  private readonly maxRemembered: number;
  private readonly now: () => number;

  constructor(
    protected readonly primary: VersionedStore<S>,
    protected readonly options: ResilientStoreOptions = {},
  ) {
    this.probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.maxRemembered = options.maxRemembered ?? 10_000;
    this.now = options.now ?? Date.now;
    if (!Number.isFinite(this.probeIntervalMs) || this.probeIntervalMs < 0) throw new LockingInputError(`probeIntervalMs must be a number >= 0, got ${String(this.probeIntervalMs)}.`);
    if (!Number.isSafeInteger(this.maxRemembered) || this.maxRemembered < 1) throw new LockingInputError(`maxRemembered must be an integer >= 1, got ${String(this.maxRemembered)}.`);
  }

  get degraded(): boolean {
    return this.mode === "degraded";
  }

  async get(threadId: string): Promise<ResilientGetResult<S> | undefined> {
    checkThreadId(threadId);
    await this.maybeProbe();
    if (this.mode === "primary") {
      try {
        const found = await this.primary.get(threadId);
        if (found) this.remember(threadId, encodeState(found.state), found.version);
        return found && { state: found.state, version: found.version, degraded: false };
      } catch (error) {
        if (error instanceof LockingError) throw error;
        this.degrade(error);
      }
    }
    const entry = this.fallback.get(threadId) ?? this.remembered.get(threadId);
    return entry && { state: JSON.parse(entry.encoded) as S, version: entry.version, degraded: true };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<ResilientPutResult> {
    checkThreadId(threadId);
    checkVersion(expectedVersion);
    const token = checkToken(options);
    const encoded = encodeState(state);
    await this.maybeProbe();
    if (this.mode === "primary") {
      try {
        const version = await this.primary.put(threadId, state, expectedVersion, options);
        this.remember(threadId, encoded, version);
        return { version, degraded: false };
      } catch (error) {
        if (error instanceof LockingError) throw error; // a conflict or a stale token is an answer, not an outage
        this.degrade(error);
      }
    }
    return { version: this.putFallback(threadId, encoded, expectedVersion, token), degraded: true };
  }

  async reconcile(): Promise<ReconcileReport> {
    this.reconciling ??= this.runReconcile().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async runReconcile(): Promise<ReconcileReport> {
    this.lastProbe = this.now();
    const report: ReconcileReport = { restored: [], keptPrimary: [], recovered: false };
    for (const [threadId, entry] of [...this.fallback]) {
      try {
        const current = await this.primary.get(threadId);
        const primaryVersion = current?.version ?? 0;
        if (primaryVersion > entry.base) {
          // Another instance wrote while we were cut off: its data wins; report ours for a human or a merge.
          report.keptPrimary.push({ threadId, primaryVersion, fallbackState: JSON.parse(entry.encoded) });
          if (current) this.remember(threadId, encodeState(current.state), primaryVersion);
        } else {
          // Nobody moved past our base (or the primary lost the thread): write ours back with a CAS.
          const version = await this.primary.put(threadId, JSON.parse(entry.encoded) as S, primaryVersion);
          this.remember(threadId, entry.encoded, version);
          report.restored.push(threadId);
        }
        this.fallback.delete(threadId);
      } catch (error) {
        if (error instanceof VersionConflictError) {
          // Someone wrote between our read and our write-back: same verdict as "moved past the base".
          report.keptPrimary.push({ threadId, primaryVersion: error.actualVersion, fallbackState: JSON.parse(entry.encoded) });
          this.fallback.delete(threadId);
          continue;
        }
        if (error instanceof LockingError) throw error;
        // Still unreachable: stay degraded, keep the rest for the next probe.
        if (this.mode === "primary") this.degrade(error);
        return report;
      }
    }
    if (this.mode === "degraded") {
      // Only a primary that answers gets traffic back; with nothing to reconcile, probe with a read.
      if (report.restored.length === 0 && report.keptPrimary.length === 0) {
        try {
          await this.primary.get("__resilient_probe__");
        } catch (error) {
          if (!(error instanceof LockingError)) return report;
        }
      }
      this.mode = "primary";
      this.fences.clear();
      this.options.onModeChange?.("primary");
    }
    report.recovered = true;
    return report;
  }

  private async maybeProbe(): Promise<void> {
    if (this.mode !== "degraded" || this.now() - this.lastProbe < this.probeIntervalMs) return;
    await this.reconcile();
  }

  private degrade(cause: unknown): void {
    this.lastProbe = this.now();
    if (this.mode === "degraded") return;
    this.mode = "degraded";
    this.options.onModeChange?.("degraded", cause);
  }

  private putFallback(threadId: string, encoded: string, expected: number, token: number | undefined): number {
    const newest = this.fences.get(threadId) ?? 0;
    if (token !== undefined && token < newest) throw new StaleFencingTokenError(threadId, token, newest);
    const existing = this.fallback.get(threadId);
    const seen = this.remembered.get(threadId);
    const actual = existing?.version ?? seen?.version ?? 0;
    if (actual !== expected) throw new VersionConflictError(threadId, expected, actual);
    this.fallback.set(threadId, { encoded, version: expected + 1, base: existing?.base ?? seen?.version ?? 0 });
    if (token !== undefined && token > newest) this.fences.set(threadId, token);
    return expected + 1;
  }

  private remember(threadId: string, encoded: string, version: number): void {
    this.remembered.delete(threadId);
    this.remembered.set(threadId, { encoded, version });
    while (this.remembered.size > this.maxRemembered) {
      const oldest = this.remembered.keys().next().value as string;
      this.remembered.delete(oldest);
    }
  }
}
