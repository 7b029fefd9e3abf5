/**
 * Calibration answer, adequate. Planted mistake: the lease is released with a plain DEL. A
 * holder whose lease expired while it was paused deletes the lease of the holder that replaced
 * it, and a third writer can then take the thread.
 * Derived from the packed-string-lua answer (one string key per thread, one Lua script, BEGIN IMMEDIATE on SQLite) with one mistake planted; it shares no code with the reference.
 */
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import { randomBytes } from "node:crypto";

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
    super(`Cannot write thread "${threadId}" at version ${expectedVersion}: it is at version ${actualVersion} now. Read it again and redo the change.`);
  }
}
export class StaleFencingTokenError extends LockingError {
  override name = "StaleFencingTokenError";
  constructor(
    readonly threadId: string,
    readonly fencingToken: number,
    readonly newestToken: number,
  ) {
    super(`Thread "${threadId}" has seen fencing token ${newestToken}; a write with token ${fencingToken} comes from a lease that was lost. Stop and take a new lease.`);
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

// ---------------------------------------------------------------- input checks

const bad = (what: string, value: unknown, rule: string, example: string) =>
  new LockingInputError(`${what} ${JSON.stringify(value) ?? String(value)} is not valid: ${rule} (for example ${example}).`);

function threadIdOf(value: unknown): string {
  if (typeof value === "string" && value.length > 0 && value.length <= 400 && !/[\x00-\x1f]/.test(value)) return value;
  throw bad("thread id", value, "a non-empty string of at most 400 printable characters", `"user-7:chat-3"`);
}
function wholeAtLeast(value: unknown, min: number, what: string, example: string): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= min) return value;
  throw bad(what, value, `a whole number of at least ${min}`, example);
}
function tokenOf(options: PutOptions | undefined): number | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== "object") throw bad("put options", options, "an object like { fencingToken }", "{ fencingToken: lease.token }");
  return options.fencingToken === undefined ? undefined : wholeAtLeast(options.fencingToken, 1, "fencingToken", "lease.token");
}
function toJson(threadId: string, state: unknown): string {
  const text = JSON.stringify(state);
  if (typeof text !== "string") throw new LockingInputError(`The state of thread "${threadId}" has no JSON form (${typeof state}); store a plain object.`);
  return text;
}

export class MemoryVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly data = new Map<string, { json: string; version: number; fence: number }>();
  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const hit = this.data.get(threadIdOf(threadId));
    return hit ? { state: JSON.parse(hit.json) as S, version: hit.version } : undefined;
  }
  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const id = threadIdOf(threadId);
    const expected = wholeAtLeast(expectedVersion, 0, "expectedVersion", "0 for a new thread");
    const token = tokenOf(options);
    const json = toJson(id, state);
    const hit = this.data.get(id);
    if (token !== undefined && hit && token < hit.fence) throw new StaleFencingTokenError(id, token, hit.fence);
    if ((hit?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, hit?.version ?? 0);
    this.data.set(id, { json, version: expected + 1, fence: Math.max(hit?.fence ?? 0, token ?? 0) });
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
  if (typeof namespace !== "string" || namespace.length === 0 || namespace.length > 64 || /[^A-Za-z0-9_.:-]/.test(namespace)) {
    throw bad("namespace", namespace, "1-64 of A-Z a-z 0-9 _ . : - (a brace would move the hash tag)", `"tenant-9"`);
  }
  return { state: `${namespace}:thread:{${threadId}}`, lease: `${namespace}:lease:{${threadId}}`, fence: `${namespace}:fence:{${threadId}}` };
}

// ---------------------------------------------------------------- SQLite: lock first, then compare

export interface SqliteStoreOptions {
  busyTimeoutMs?: number;
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;
  private readonly readRow: Database.Statement<[string], { body: string; version: number; fence: number }>;
  private readonly writeRow: Database.Statement<[string, string, number, number]>;

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.db = new Database(filename, { timeout: options.busyTimeoutMs ?? 60_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS checkpoint_heads (thread TEXT PRIMARY KEY, version INTEGER NOT NULL, fence INTEGER NOT NULL, body TEXT NOT NULL)");
    this.readRow = this.db.prepare("SELECT body, version, fence FROM checkpoint_heads WHERE thread = ?");
    this.writeRow = this.db.prepare("INSERT OR REPLACE INTO checkpoint_heads (thread, body, version, fence) VALUES (?, ?, ?, ?)");
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.readRow.get(threadIdOf(threadId));
    return row ? { state: JSON.parse(row.body) as S, version: row.version } : undefined;
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const id = threadIdOf(threadId);
    const expected = wholeAtLeast(expectedVersion, 0, "expectedVersion", "0 for a new thread");
    const token = tokenOf(options);
    const body = toJson(id, state);
    // BEGIN IMMEDIATE takes the database's write lock before the read: no other connection, in
    // this process or another, can write between the comparison below and the write.
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const row = this.readRow.get(id);
      if (token !== undefined && row && token < row.fence) throw new StaleFencingTokenError(id, token, row.fence);
      if ((row?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, row?.version ?? 0);
      this.writeRow.run(id, body, expected + 1, Math.max(row?.fence ?? 0, token ?? 0));
      this.db.exec("COMMIT");
      return expected + 1;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }
}

// ---------------------------------------------------------------- Redis: one string key, one script

export interface RedisStoreOptions {
  namespace?: string;
  ttlMs?: number;
}

/** KEYS[1] = thread key. ARGV = expected version, token (0 = none), header-less state JSON, ttl (0 = none). */
const CAS = `
local raw = redis.call('GET', KEYS[1])
local version, fence = 0, 0
if raw then
  local v, f = string.match(raw, '^(%d+):(%d+):')
  version, fence = tonumber(v), tonumber(f)
end
local token = tonumber(ARGV[2])
if token > 0 and token < fence then return {'fenced', fence} end
if version ~= tonumber(ARGV[1]) then return {'moved', version} end
if token > fence then fence = token end
local packed = (version + 1) .. ':' .. fence .. ':' .. ARGV[3]
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], packed, 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], packed)
end
return {'ok', version + 1}
`;

function unpack(raw: string): { version: number; fence: number; json: string } {
  const first = raw.indexOf(":");
  const second = raw.indexOf(":", first + 1);
  return { version: Number(raw.slice(0, first)), fence: Number(raw.slice(first + 1, second)), json: raw.slice(second + 1) };
}

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly namespace: string;
  private readonly ttlMs: number;

  constructor(
    private readonly redis: Redis,
    options: RedisStoreOptions = {},
  ) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    threadKeys(this.namespace, "check");
    this.ttlMs = options.ttlMs === undefined ? 0 : wholeAtLeast(options.ttlMs, 1, "ttlMs", "604800000 (a week)");
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const raw = await this.redis.get(threadKeys(this.namespace, threadIdOf(threadId)).state);
    if (raw == null) return undefined;
    const { version, json } = unpack(raw);
    return { state: JSON.parse(json) as S, version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const id = threadIdOf(threadId);
    const expected = wholeAtLeast(expectedVersion, 0, "expectedVersion", "0 for a new thread");
    const token = tokenOf(options);
    const json = toJson(id, state);
    const [verdict, number] = (await this.redis.eval(CAS, 1, threadKeys(this.namespace, id).state, expected, token ?? 0, json, this.ttlMs)) as [string, number];
    if (verdict === "ok") return Number(number);
    if (verdict === "fenced") throw new StaleFencingTokenError(id, token ?? 0, Number(number));
    throw new VersionConflictError(id, expected, Number(number));
  }
}

// ---------------------------------------------------------------- bounded retry

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
  const ceiling = Math.min(maxDelayMs, baseDelayMs * Math.pow(2, attempt - 1));
  return ceiling * random();
}

export async function updateWithRetry<S>(store: VersionedStore<S>, threadId: string, update: (current: S | undefined) => S | Promise<S>, options: RetryOptions): Promise<RetryResult<S>> {
  if (typeof options !== "object" || options === null) throw bad("retry options", options, "an object", "{ maxAttempts: 5, baseDelayMs: 10 }");
  const maxAttempts = wholeAtLeast(options.maxAttempts, 1, "maxAttempts", "5");
  if (typeof options.baseDelayMs !== "number" || !Number.isFinite(options.baseDelayMs) || options.baseDelayMs < 0) throw bad("baseDelayMs", options.baseDelayMs, "a finite number of milliseconds, 0 or more", "10");
  const cap = options.maxDelayMs ?? 2_000;
  const wait = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const random = options.random ?? Math.random;
  const putOptions: PutOptions | undefined = options.fencingToken === undefined ? undefined : { fencingToken: options.fencingToken };
  let lastConflict: VersionConflictError | undefined;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) await wait(backoffDelay(attempt - 1, options.baseDelayMs, cap, random));
    const seen = await store.get(threadId);
    const next = await update(seen?.state);
    try {
      const version = await store.put(threadId, next, seen?.version ?? 0, putOptions);
      return { state: next, version, attempts: attempt };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      lastConflict = error;
    }
  }
  throw lastConflict!;
}

// ---------------------------------------------------------------- lease: one script, three operations

export interface Lease {
  readonly threadId: string;
  readonly token: number;
  release(): Promise<boolean>;
  renew(ttlMs?: number): Promise<boolean>;
}
export interface LeaseOptions {
  namespace?: string;
}

/** KEYS[1] = lease, KEYS[2] = fence counter (never expires). ARGV = operation, owner, ttl. */
const LEASE = `
local op, owner = ARGV[1], ARGV[2]
if op == 'take' then
  if redis.call('SET', KEYS[1], owner, 'NX', 'PX', ARGV[3]) then return redis.call('INCR', KEYS[2]) end
  return -1
end
if redis.call('GET', KEYS[1]) ~= owner then return 0 end
if op == 'drop' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
`;

export async function acquireLease(redis: Redis, threadId: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | undefined> {
  const id = threadIdOf(threadId);
  const ttl = wholeAtLeast(ttlMs, 1, "lease ttlMs", "15000");
  const keys = threadKeys(options.namespace ?? DEFAULT_NAMESPACE, id);
  const owner = randomBytes(16).toString("base64url");
  const run = async (op: string, ms: number) => Number(await redis.eval(LEASE, 2, keys.lease, keys.fence, op, owner, ms));
  const token = await run("take", ttl);
  if (token < 1) return undefined;
  return {
    threadId: id,
    token,
    release: async () => (await redis.del(keys.lease)) === 1, // the mistake: whoever owns it now
    renew: async (ms = ttl) => (await run("extend", wholeAtLeast(ms, 1, "lease ttlMs", "15000"))) === 1,
  };
}

// ---------------------------------------------------------------- degradation: a journal of outage writes

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

interface Snapshot {
  json: string;
  version: number;
  fence: number;
}

export class ResilientStore<S = unknown> {
  /** Last state this instance read or wrote in the primary, most recent last. */
  private readonly known = new Map<string, Snapshot>();
  /** Writes made during the outage, with the primary version each thread had when it began. */
  private readonly journal = new Map<string, Snapshot & { startedAt: number }>();
  private offline = false;
  private nextProbe = 0;

  constructor(
    private readonly primary: VersionedStore<S>,
    private readonly options: ResilientStoreOptions = {},
  ) {}

  get degraded(): boolean {
    return this.offline;
  }

  private time(): number {
    return this.options.now ? this.options.now() : Date.now();
  }

  private goOffline(cause: unknown): void {
    this.nextProbe = this.time() + (this.options.probeIntervalMs ?? 1_000);
    if (this.offline) return;
    this.offline = true;
    this.options.onModeChange?.("degraded", cause);
  }

  private remember(id: string, snapshot: Snapshot): void {
    this.known.delete(id);
    this.known.set(id, snapshot);
    while (this.known.size > (this.options.maxRemembered ?? 5_000)) this.known.delete(this.known.keys().next().value!);
  }

  private async online(): Promise<boolean> {
    if (!this.offline) return true;
    if (this.time() < this.nextProbe) return false;
    return (await this.reconcile()).recovered;
  }

  async get(threadId: string): Promise<ResilientGetResult<S> | undefined> {
    const id = threadIdOf(threadId);
    if (await this.online()) {
      try {
        const found = await this.primary.get(id);
        if (found) this.remember(id, { json: JSON.stringify(found.state), version: found.version, fence: this.known.get(id)?.fence ?? 0 });
        return found ? { ...found, degraded: false } : undefined;
      } catch (error) {
        if (error instanceof LockingError) throw error;
        this.goOffline(error);
      }
    }
    const local = this.journal.get(id) ?? this.known.get(id);
    return local ? { state: JSON.parse(local.json) as S, version: local.version, degraded: true } : undefined;
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<ResilientPutResult> {
    const id = threadIdOf(threadId);
    const expected = wholeAtLeast(expectedVersion, 0, "expectedVersion", "0 for a new thread");
    const token = tokenOf(options);
    const json = toJson(id, state);
    if (await this.online()) {
      try {
        const version = await this.primary.put(id, state, expected, options);
        this.remember(id, { json, version, fence: Math.max(this.known.get(id)?.fence ?? 0, token ?? 0) });
        return { version, degraded: false };
      } catch (error) {
        if (error instanceof LockingError) throw error; // the primary answered: no outage
        this.goOffline(error);
      }
    }
    const base = this.journal.get(id) ?? this.known.get(id);
    if (token !== undefined && base && token < base.fence) throw new StaleFencingTokenError(id, token, base.fence);
    if ((base?.version ?? 0) !== expected) throw new VersionConflictError(id, expected, base?.version ?? 0);
    const startedAt = this.journal.get(id)?.startedAt ?? this.known.get(id)?.version ?? 0;
    this.journal.set(id, { json, version: expected + 1, fence: Math.max(base?.fence ?? 0, token ?? 0), startedAt });
    return { version: expected + 1, degraded: true };
  }

  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { restored: [], keptPrimary: [], recovered: false };
    try {
      if (this.journal.size === 0) await this.primary.get(this.known.keys().next().value ?? "probe");
      for (const [id, entry] of [...this.journal]) {
        const fallbackState = JSON.parse(entry.json) as S;
        const fenced = entry.fence > 0 ? { fencingToken: entry.fence } : undefined;
        try {
          // Compare-and-set against the version the outage started from: it lands only if no
          // other instance wrote the thread meanwhile.
          const version = await this.primary.put(id, fallbackState, entry.startedAt, fenced);
          this.remember(id, { json: entry.json, version, fence: entry.fence });
          report.restored.push(id);
        } catch (error) {
          if (!(error instanceof LockingError)) throw error;
          const now = await this.primary.get(id);
          const primaryVersion = now?.version ?? 0;
          if (error instanceof VersionConflictError && primaryVersion < entry.startedAt) {
            // The primary lost data (restarted empty): the outage's state is the newest there is.
            const version = await this.primary.put(id, fallbackState, primaryVersion, fenced);
            this.remember(id, { json: entry.json, version, fence: entry.fence });
            report.restored.push(id);
          } else {
            report.keptPrimary.push({ threadId: id, primaryVersion, fallbackState });
          }
        }
        this.journal.delete(id);
      }
    } catch (error) {
      this.goOffline(error);
      return report;
    }
    if (this.offline) {
      this.offline = false;
      this.options.onModeChange?.("primary");
    }
    report.recovered = true;
    return report;
  }
}
