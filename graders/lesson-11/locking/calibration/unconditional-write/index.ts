/**
 * Calibration answer. Planted mistake: read-then-write without a condition. put() ignores
 * expectedVersion and bumps whatever version is stored, so a write based on a stale read
 * silently replaces a newer one (lost update). Everything else is the reference.
 */
import Database from "better-sqlite3";
import { encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "./base/versioned-store.ts";

export * from "./base/index.ts";
import { RedisVersionedStore as ReferenceRedisStore } from "./base/redis-store.ts";

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

export class RedisVersionedStore<S = unknown> extends ReferenceRedisStore<S> {
  override async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const key = this.stateKey(args.threadId);
    // The mistake: the version is bumped whatever it was; expectedVersion is never compared.
    await this.redis.hset(key, "state", encodeState(args.threadId, state));
    const version = await this.redis.hincrby(key, "version", 1);
    if (this.ttlMs) await this.redis.pexpire(key, this.ttlMs);
    return version;
  }
}
