/**
 * Calibration answer. Planted mistake: read-then-write without a condition. put() ignores
 * expectedVersion and bumps whatever version is stored, so a write based on a stale read
 * silently replaces a newer one (lost update). Everything else is the reference.
 */
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import { encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "../../../../../solutions/lesson-11/locking/versioned-store.ts";
import { threadKeys, DEFAULT_NAMESPACE } from "../../../../../solutions/lesson-11/locking/keys.ts";

export * from "../../../../../solutions/lesson-11/locking/index.ts";

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;

  constructor(filename: string) {
    this.db = new Database(filename, { timeout: 5_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS versioned_threads (thread_id TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL)");
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.db.prepare("SELECT state, version FROM versioned_threads WHERE thread_id = ?").get(validateThreadId(threadId)) as { state: string; version: number } | undefined;
    return row && { state: JSON.parse(row.state) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    // The mistake: no "WHERE version = expected"; the write always wins.
    const row = this.db
      .prepare("INSERT INTO versioned_threads VALUES (?, ?, 1) ON CONFLICT (thread_id) DO UPDATE SET state = excluded.state, version = version + 1 RETURNING version")
      .get(args.threadId, encodeState(args.threadId, state)) as { version: number };
    return row.version;
  }

  close(): void {
    this.db.close();
  }
}

export class RedisVersionedStore<S = unknown> implements VersionedStore<S> {
  constructor(
    private readonly redis: Redis,
    private readonly options: { namespace?: string; ttlMs?: number } = {},
  ) {}

  private key(threadId: string): string {
    return threadKeys(this.options.namespace ?? DEFAULT_NAMESPACE, threadId).state;
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const [state, version] = await this.redis.hmget(this.key(validateThreadId(threadId)), "state", "version");
    return state == null || version == null ? undefined : { state: JSON.parse(state) as S, version: Number(version) };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const key = this.key(args.threadId);
    // The mistake: the version is bumped whatever it was; expectedVersion is never compared.
    await this.redis.hset(key, "state", encodeState(args.threadId, state));
    const version = await this.redis.hincrby(key, "version", 1);
    if (this.options.ttlMs) await this.redis.pexpire(key, this.options.ttlMs);
    return version;
  }
}
