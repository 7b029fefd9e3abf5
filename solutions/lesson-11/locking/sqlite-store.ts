/**
 * Versioned store on SQLite. Every instance opens its own connection, so several instances (or
 * processes) on one database file behave like several application servers on one database.
 */
import Database from "better-sqlite3";
import { StaleFencingTokenError, VersionConflictError } from "./errors.ts";
import { encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "./versioned-store.ts";

export interface SqliteStoreOptions {
  /** How long a writer waits for another connection's write lock before SQLITE_BUSY (default 30 s: on a busy machine the holder may be descheduled for seconds). */
  busyTimeoutMs?: number;
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;
  private readonly select: Database.Statement<[string], { state: string; version: number; fence: number }>;
  private readonly insert: Database.Statement<[string, string, number]>;
  private readonly update: Database.Statement<{ threadId: string; state: string; expected: number; token: number | null }>;
  private readonly writeAtomically: (threadId: string, encoded: string, expected: number, token: number | undefined) => number;

  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.db = new Database(filename, { timeout: options.busyTimeoutMs ?? 30_000 });
    // WAL lets readers proceed while one writer commits; the busy timeout makes writers queue
    // for the lock instead of failing at once.
    this.db.pragma("journal_mode = WAL");
    // Several processes may open a fresh file at once: take the write lock before looking at the
    // schema, or a CREATE TABLE IF NOT EXISTS that read first fails with SQLITE_BUSY when another
    // process created the table in between (a read cannot wait to become a write).
    const createSchema = this.db.transaction(() =>
      this.db.exec(`CREATE TABLE IF NOT EXISTS versioned_threads (
        thread_id TEXT PRIMARY KEY,
        state     TEXT    NOT NULL,
        version   INTEGER NOT NULL,
        fence     INTEGER NOT NULL DEFAULT 0  -- newest fencing token accepted for this thread
      ) STRICT`),
    );
    createSchema.immediate();
    this.select = this.db.prepare("SELECT state, version, fence FROM versioned_threads WHERE thread_id = ?");
    this.insert = this.db.prepare("INSERT INTO versioned_threads (thread_id, state, version, fence) VALUES (?, ?, 1, ?) ON CONFLICT (thread_id) DO NOTHING");
    // The version check and the write are one statement: no other connection can slip in between.
    this.update = this.db.prepare(`UPDATE versioned_threads
      SET state = :state, version = version + 1, fence = max(fence, coalesce(:token, 0))
      WHERE thread_id = :threadId AND version = :expected AND (:token IS NULL OR fence <= :token)`);

    // BEGIN IMMEDIATE takes the write lock up front, so the classify-on-failure read below sees
    // exactly the row that made the conditional write miss.
    const write = (threadId: string, encoded: string, expected: number, token: number | undefined): number => {
      const changed =
        expected === 0
          ? this.insert.run(threadId, encoded, token ?? 0).changes
          : this.update.run({ threadId, state: encoded, expected, token: token ?? null }).changes;
      if (changed === 1) return expected + 1;
      const row = this.select.get(threadId);
      if (row && token !== undefined && token < row.fence) throw new StaleFencingTokenError(threadId, token, row.fence);
      throw new VersionConflictError(threadId, expected, row?.version ?? 0);
    };
    const transaction = this.db.transaction(write);
    this.writeAtomically = (...args) => transaction.immediate(...args);
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.select.get(validateThreadId(threadId));
    return row && { state: JSON.parse(row.state) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    return this.writeAtomically(args.threadId, encodeState(args.threadId, state), args.expectedVersion, args.fencingToken);
  }

  close(): void {
    this.db.close();
  }
}
