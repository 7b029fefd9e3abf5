/**
 * lesson-03 / checkpoint-store: an append-only checkpoint store on SQLite.
 * Read lessons/lesson-03/checkpoint-store.md first.
 *
 * The seed's store keeps one row per task (INSERT OR REPLACE), writes the state with
 * JSON.stringify and is told to delete the row when the task completes. Build the store that
 * fixes all three, on one SQLite file (better-sqlite3), behind the seed's interface grown by a
 * history:
 *
 *   new SqliteCheckpointStore(dbPath)         opens (and creates) the file; close() closes it
 *   save(taskId, checkpoint, { parentId? })   appends a checkpoint, resolves with its new id
 *   load(taskId)                              the task's latest checkpoint, or null
 *   load(taskId, checkpointId)                that checkpoint of that task, or null
 *   list(taskId, { limit? })                  the task's checkpoints, newest first ([] if none)
 *   delete(taskId)                            removes every checkpoint of that one task
 *
 * A loaded checkpoint is a plain object { checkpointId, parentId, taskId, state, currentNode,
 * timestamp }, exactly as it was saved:
 *
 * - Append, never replace. Every save adds a checkpoint with a fresh id; its parentId is the
 *   task's latest checkpoint at the moment of the save (null for the first), or options.parentId
 *   when given (a checkpoint of the same task: a deliberate resume from an earlier point).
 * - "Latest" and "newest first" mean save order. Timestamps are the caller's: they may be equal
 *   or go backwards, and so may the machine's clock.
 * - Another process that opens the same file sees every save that returned, also after the
 *   writer was killed. Nothing is kept only in memory.
 * - state is any structured-clone value (objects, arrays, Date, Map, Set, BigInt, typed arrays,
 *   undefined, NaN, -0, nested) and comes back equal, with undefined keys kept; timestamp comes
 *   back as a Date with its milliseconds. The encoding and the schema are yours: argue them in
 *   your notes.
 * - Task ids are exact keys: "t1" never sees "t10", "T1", "t_" or "xt1".
 * - A task finishes by saving a checkpoint whose currentNode is END; nothing is deleted. After
 *   that, a save without options.parentId is refused (a stale worker must not reopen it); a save
 *   with options.parentId of an earlier checkpoint is accepted.
 * - Bad input is refused with CheckpointStoreError (a code and a message that says what was
 *   wrong) before anything is written: an empty or non-string taskId, a checkpoint whose taskId
 *   differs from the taskId argument, an empty or non-string currentNode, a timestamp that is not
 *   a valid Date, a state that cannot be stored (a function, a symbol), a parentId the task does
 *   not have, a limit that is not a positive integer. Reads (load, list, delete) refuse a
 *   non-string taskId too; an empty one they may refuse or treat as a task with no checkpoints.
 *
 * What the grader checks, in order (each failure names the lesson section to read); it writes
 * through your store in one process and reads through another store on the same file in another:
 * - core: save appends and returns an id; load returns the latest, also after the writer was killed;
 * - core: list gives the whole history newest first with parent pointers; load(taskId, id) any of it;
 * - core: Dates, Maps with non-string keys, Sets and undefined survive; the timestamp is a Date;
 * - core: task ids that prefix, contain or resemble each other stay apart, also for delete();
 * - core: the final checkpoint (currentNode END) is kept and loads, with the whole history;
 * - core: bad input is refused with CheckpointStoreError, and a refused save stores nothing;
 * - excellence: identical timestamps, a clock that steps back and saves in one millisecond keep
 *   save order; 400 checkpoints and list({ limit }); arbitrary structured values (property-based);
 *   a finished task refuses a save without parentId and accepts a resume from an earlier one.
 */
import Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { deserialize, serialize } from "node:v8";

/** The node name that marks a finished task (the seed's '__end__'). */
export const END = "__end__";

export interface Checkpoint<S> {
  taskId: string;
  state: S;
  /** The node to run next (END when the task is finished). */
  currentNode: string;
  timestamp: Date;
}

export interface StoredCheckpoint<S> extends Checkpoint<S> {
  checkpointId: string;
  /** The checkpoint this one was saved on top of; null for a task's first. */
  parentId: string | null;
}

export interface SaveOptions {
  /** Save on top of this checkpoint of the task instead of its latest. */
  parentId?: string;
}

export interface ListOptions {
  /** At most this many, newest first (a positive integer). */
  limit?: number;
}

export interface CheckpointStore<S> {
  save(taskId: string, checkpoint: Checkpoint<S>, options?: SaveOptions): Promise<string>;
  load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null>;
  list(taskId: string, options?: ListOptions): Promise<StoredCheckpoint<S>[]>;
  delete(taskId: string): Promise<void>;
}

export type CheckpointStoreErrorCode = "BAD_INPUT" | "UNKNOWN_PARENT" | "FINISHED" | "UNSERIALIZABLE" | "CORRUPT";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    readonly code: CheckpointStoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}


/*
 * Design notes (this answer):
 *
 * Schema: an append-only log plus a content-addressed state table.
 *
 *   cp_state(hash PRIMARY KEY, bytes BLOB)              v8 (structured-clone) bytes, keyed by sha256
 *   cp_log(seq INTEGER PRIMARY KEY AUTOINCREMENT,        save order, assigned under the write lock,
 *          task_id TEXT, checkpoint_id TEXT,             never reused after a delete
 *          parent_seq INTEGER -> cp_log(seq),            the parent as a row pointer, not a copy
 *          current_node TEXT, ts_ms INTEGER, state_hash TEXT)
 *   index (task_id, seq) for latest / list(limit); UNIQUE (task_id, checkpoint_id) for load-by-id.
 *
 * A graph that saves after every node writes mostly identical or slowly growing states; the
 * state table stores each distinct encoding once (an idle approval wait re-saving the same
 * state costs a log row, not a copy of the state). delete(taskId) removes the task's log rows
 * and then every state no log row refers to any more.
 *
 * Checkpoint ids are a hash chain: sha256(task, parent id, seq, node, timestamp, state hash).
 * They are unique (seq is never reused) and let an auditor check that a checkpoint's recorded
 * state and ancestry were not edited afterwards; load() re-hashes the state bytes and refuses
 * a mismatch with CORRUPT. Ordering never uses the ids or the timestamps: only seq.
 *
 * Encoding: node:v8 serialize (the structured-clone algorithm), so Date, Map (any keys), Set,
 * BigInt, typed arrays, undefined, NaN, -0, sparse arrays, cycles come back as saved; functions
 * and symbols are refused at save time (v8 throws; symbol-keyed properties, which v8 would drop
 * silently, are refused by a walk first). The timestamp is epoch milliseconds in an INTEGER.
 */

type Row = {
  seq: number;
  task_id: string;
  checkpoint_id: string;
  parent_id: string | null;
  current_node: string;
  ts_ms: number;
  state_hash: string;
  bytes: Buffer | null;
};

const SELECT = `SELECT l.seq, l.task_id, l.checkpoint_id, p.checkpoint_id AS parent_id, l.current_node,
                       l.ts_ms, l.state_hash, s.bytes
                  FROM cp_log l
                  LEFT JOIN cp_log p ON p.seq = l.parent_seq
                  LEFT JOIN cp_state s ON s.hash = l.state_hash`;

function bad(message: string): CheckpointStoreError {
  return new CheckpointStoreError("BAD_INPUT", message);
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Refuses what structured clone cannot carry faithfully: functions, symbols, symbol keys. */
function assertStorable(value: unknown, path: string, seen: Set<object>): void {
  const t = typeof value;
  if (t === "function") throw new CheckpointStoreError("UNSERIALIZABLE", `state${path} is a function`);
  if (t === "symbol") throw new CheckpointStoreError("UNSERIALIZABLE", `state${path} is a symbol`);
  if (value === null || t !== "object") return;
  const obj = value as object;
  if (seen.has(obj)) return;
  seen.add(obj);
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer || obj instanceof Date || obj instanceof RegExp) return;
  if (obj instanceof Map) {
    let i = 0;
    for (const [k, v] of obj) {
      assertStorable(k, `${path}<key ${i}>`, seen);
      assertStorable(v, `${path}<value ${i}>`, seen);
      i++;
    }
    return;
  }
  if (obj instanceof Set) {
    let i = 0;
    for (const v of obj) assertStorable(v, `${path}<item ${i++}>`, seen);
    return;
  }
  if (Object.getOwnPropertySymbols(obj).length > 0) {
    throw new CheckpointStoreError("UNSERIALIZABLE", `state${path} has a symbol-keyed property`);
  }
  for (const key of Object.keys(obj)) {
    assertStorable((obj as Record<string, unknown>)[key], `${path}.${key}`, seen);
  }
}

function encodeState(state: unknown): Buffer {
  assertStorable(state, "", new Set());
  try {
    return serialize(state);
  } catch (err) {
    throw new CheckpointStoreError("UNSERIALIZABLE", `state cannot be stored: ${(err as Error).message}`);
  }
}

function checkReadTaskId(taskId: unknown): asserts taskId is string {
  if (typeof taskId !== "string") throw bad(`taskId must be a string, got ${typeof taskId}`);
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly stmts: {
    latest: Database.Statement;
    byId: Database.Statement;
    list: Database.Statement;
    listLimit: Database.Statement;
    parent: Database.Statement;
    latestSeq: Database.Statement;
    nextSeq: Database.Statement;
    putState: Database.Statement;
    insert: Database.Statement;
    deleteTask: Database.Statement;
    gcStates: Database.Statement;
  };

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 10_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS cp_state (
        hash  TEXT PRIMARY KEY,
        bytes BLOB NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS cp_log (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id       TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_seq    INTEGER REFERENCES cp_log(seq),
        current_node  TEXT NOT NULL,
        ts_ms         INTEGER NOT NULL,
        state_hash    TEXT NOT NULL REFERENCES cp_state(hash),
        UNIQUE (task_id, checkpoint_id)
      );
      CREATE INDEX IF NOT EXISTS cp_log_task_seq ON cp_log (task_id, seq);
      CREATE INDEX IF NOT EXISTS cp_log_state ON cp_log (state_hash);
    `);
    const db = this.db;
    this.stmts = {
      latest: db.prepare(`${SELECT} WHERE l.task_id = ? ORDER BY l.seq DESC LIMIT 1`),
      byId: db.prepare(`${SELECT} WHERE l.task_id = ? AND l.checkpoint_id = ?`),
      list: db.prepare(`${SELECT} WHERE l.task_id = ? ORDER BY l.seq DESC`),
      listLimit: db.prepare(`${SELECT} WHERE l.task_id = ? ORDER BY l.seq DESC LIMIT ?`),
      parent: db.prepare(`SELECT seq, checkpoint_id, current_node FROM cp_log WHERE task_id = ? AND checkpoint_id = ?`),
      latestSeq: db.prepare(`SELECT seq, checkpoint_id, current_node FROM cp_log WHERE task_id = ? ORDER BY seq DESC LIMIT 1`),
      nextSeq: db.prepare(
        `SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'cp_log'), 0),
                    COALESCE((SELECT max(seq) FROM cp_log), 0)) + 1 AS next`,
      ),
      putState: db.prepare(`INSERT OR IGNORE INTO cp_state (hash, bytes) VALUES (?, ?)`),
      insert: db.prepare(
        `INSERT INTO cp_log (seq, task_id, checkpoint_id, parent_seq, current_node, ts_ms, state_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      deleteTask: db.prepare(`DELETE FROM cp_log WHERE task_id = ?`),
      gcStates: db.prepare(`DELETE FROM cp_state WHERE NOT EXISTS (SELECT 1 FROM cp_log WHERE state_hash = cp_state.hash)`),
    };
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId.length === 0) throw bad("taskId must be a non-empty string");
    if (checkpoint === null || typeof checkpoint !== "object") throw bad("checkpoint must be an object");
    if (checkpoint.taskId !== taskId) {
      throw bad(`checkpoint.taskId ${JSON.stringify(checkpoint.taskId)} differs from taskId ${JSON.stringify(taskId)}`);
    }
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode.length === 0) {
      throw bad("currentNode must be a non-empty string");
    }
    const ts = checkpoint.timestamp;
    if (!(ts instanceof Date) || !Number.isFinite(ts.getTime())) throw bad("timestamp must be a valid Date");
    if (options === null || typeof options !== "object") throw bad("options must be an object");
    const parentId = options.parentId;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId.length === 0)) {
      throw bad("options.parentId must be a non-empty string");
    }
    const bytes = encodeState(checkpoint.state);
    const stateHash = sha256(bytes);
    const tsMs = ts.getTime();
    const node = checkpoint.currentNode;

    const run = this.db.transaction((): string => {
      type P = { seq: number; checkpoint_id: string; current_node: string } | undefined;
      let parent: P;
      if (parentId !== undefined) {
        parent = this.stmts.parent.get(taskId, parentId) as P;
        if (!parent) throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${JSON.stringify(taskId)} has no checkpoint ${JSON.stringify(parentId)}`);
      } else {
        parent = this.stmts.latestSeq.get(taskId) as P;
        if (parent && parent.current_node === END) {
          throw new CheckpointStoreError(
            "FINISHED",
            `task ${JSON.stringify(taskId)} is finished (its latest checkpoint is at END); resume with options.parentId`,
          );
        }
      }
      const seq = (this.stmts.nextSeq.get() as { next: number }).next;
      const parentCheckpointId = parent ? parent.checkpoint_id : "";
      const id = sha256([taskId, parentCheckpointId, String(seq), node, String(tsMs), stateHash].join("\u0000")).slice(0, 32);
      this.stmts.putState.run(stateHash, bytes);
      this.stmts.insert.run(seq, taskId, id, parent ? parent.seq : null, node, tsMs, stateHash);
      return id;
    });
    return run.immediate();
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    checkReadTaskId(taskId);
    if (checkpointId !== undefined && typeof checkpointId !== "string") throw bad("checkpointId must be a string");
    const row = (checkpointId === undefined ? this.stmts.latest.get(taskId) : this.stmts.byId.get(taskId, checkpointId)) as
      | Row
      | undefined;
    return row ? this.decode(row) : null;
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    checkReadTaskId(taskId);
    if (options === null || typeof options !== "object") throw bad("options must be an object");
    const { limit } = options;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw bad("limit must be a positive integer");
    const rows = (limit === undefined ? this.stmts.list.all(taskId) : this.stmts.listLimit.all(taskId, limit)) as Row[];
    return rows.map((r) => this.decode(r));
  }

  async delete(taskId: string): Promise<void> {
    checkReadTaskId(taskId);
    this.db
      .transaction(() => {
        this.stmts.deleteTask.run(taskId);
        this.stmts.gcStates.run();
      })
      .immediate();
  }

  close(): void {
    this.db.close();
  }

  private decode(row: Row): StoredCheckpoint<S> {
    if (!row.bytes || sha256(row.bytes) !== row.state_hash) {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.checkpoint_id}: stored state does not match its hash`);
    }
    let state: S;
    try {
      state = deserialize(row.bytes) as S;
    } catch (err) {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.checkpoint_id}: ${(err as Error).message}`);
    }
    return {
      checkpointId: row.checkpoint_id,
      parentId: row.parent_id,
      taskId: row.task_id,
      state,
      currentNode: row.current_node,
      timestamp: new Date(row.ts_ms),
    };
  }
}
