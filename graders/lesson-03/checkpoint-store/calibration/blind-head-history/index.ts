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
 *   not have, a limit that is not a positive integer.
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
import { randomUUID } from "node:crypto";
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


// ---------------------------------------------------------------------------------------------
// Boundary checks: everything is refused with CheckpointStoreError before anything is written.

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  return typeof value;
}

function requireTaskId(taskId: unknown, what = "taskId"): string {
  if (typeof taskId !== "string" || taskId.length === 0) {
    throw new CheckpointStoreError("BAD_INPUT", `${what} must be a non-empty string, got ${describe(taskId)}`);
  }
  return taskId;
}

function requireCheckpoint<S>(taskId: string, checkpoint: unknown): Checkpoint<S> {
  if (typeof checkpoint !== "object" || checkpoint === null) {
    throw new CheckpointStoreError("BAD_INPUT", `checkpoint must be an object, got ${describe(checkpoint)}`);
  }
  const cp = checkpoint as Partial<Checkpoint<S>>;
  if (cp.taskId !== taskId) {
    throw new CheckpointStoreError(
      "BAD_INPUT",
      `checkpoint.taskId ${describe(cp.taskId)} differs from the taskId argument ${describe(taskId)}`,
    );
  }
  if (typeof cp.currentNode !== "string" || cp.currentNode.length === 0) {
    throw new CheckpointStoreError("BAD_INPUT", `currentNode must be a non-empty string, got ${describe(cp.currentNode)}`);
  }
  if (!(cp.timestamp instanceof Date) || Number.isNaN(cp.timestamp.getTime())) {
    throw new CheckpointStoreError("BAD_INPUT", `timestamp must be a valid Date, got ${describe(cp.timestamp)}`);
  }
  return cp as Checkpoint<S>;
}

function requireOptionalId(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) {
    throw new CheckpointStoreError("BAD_INPUT", `${what} must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

function requireLimit(limit: unknown): number | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit <= 0) {
    throw new CheckpointStoreError("BAD_INPUT", `limit must be a positive integer, got ${String(limit)}`);
  }
  return limit;
}

function requireOptions(options: unknown, what: string): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") {
    throw new CheckpointStoreError("BAD_INPUT", `${what} must be an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}

/**
 * State encoding: node:v8 serialize/deserialize (the structured-clone algorithm) into a BLOB.
 * Dates, Maps with any keys, Sets, BigInt, typed arrays, undefined, NaN and -0 come back as
 * they went in; a function or a symbol makes serialize throw, which becomes UNSERIALIZABLE.
 */
function encodeState(state: unknown): Buffer {
  try {
    return serialize(state);
  } catch (error) {
    throw new CheckpointStoreError("UNSERIALIZABLE", `state cannot be stored: ${(error as Error).message}`);
  }
}

function decodeState<S>(bytes: Buffer, checkpointId: string): S {
  try {
    return deserialize(bytes) as S;
  } catch (error) {
    throw new CheckpointStoreError("CORRUPT", `checkpoint ${checkpointId}: state does not decode: ${(error as Error).message}`);
  }
}

interface HistoryRow {
  seq: number;
  checkpoint_id: string;
  task_id: string;
  parent_id: string | null;
  current_node: string;
  ts_ms: number;
  state: Buffer;
}

interface HeadRow {
  task_id: string;
  head_seq: number;
  head_id: string;
  finished: number;
}

/**
 * Design: a head table plus an append-only history table.
 *
 * - checkpoint_history holds one immutable row per save. `seq` is an INTEGER PRIMARY KEY
 *   AUTOINCREMENT assigned inside the write transaction: it is the save order ("newest first"
 *   is seq DESC), never reused after a delete, and independent of any clock.
 * - checkpoint_head holds one row per task: which history row is the latest and whether it is
 *   final. It is a pointer, not a checkpoint: moving it never changes a saved checkpoint. It makes
 *   "latest" and the finished-task rule one primary-key lookup however long the history is.
 * - Both tables change together in one BEGIN IMMEDIATE transaction, so the head can never point
 *   at a row that is not there, and the parent is read under the write lock.
 */
export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly stmt: {
    head: Database.Statement<[string], HeadRow>;
    byId: Database.Statement<[string, string], HistoryRow>;
    latest: Database.Statement<[string], HistoryRow>;
    listAll: Database.Statement<[string], HistoryRow>;
    listLimit: Database.Statement<[string, number], HistoryRow>;
    insert: Database.Statement<[string, string, string | null, string, number, Buffer]>;
    moveHead: Database.Statement<[string, number | bigint, string, number]>;
    deleteHistory: Database.Statement<[string]>;
    deleteHead: Database.Statement<[string]>;
  };

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 5000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS checkpoint_history (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        checkpoint_id TEXT    NOT NULL UNIQUE,
        task_id       TEXT    NOT NULL,
        parent_id     TEXT,
        current_node  TEXT    NOT NULL,
        ts_ms         INTEGER NOT NULL,
        state         BLOB    NOT NULL
      );
      CREATE INDEX IF NOT EXISTS checkpoint_history_task_seq ON checkpoint_history (task_id, seq);
      CREATE TABLE IF NOT EXISTS checkpoint_head (
        task_id  TEXT    PRIMARY KEY,
        head_seq INTEGER NOT NULL,
        head_id  TEXT    NOT NULL,
        finished INTEGER NOT NULL
      );
    `);
    const cols = "seq, checkpoint_id, task_id, parent_id, current_node, ts_ms, state";
    this.stmt = {
      head: this.db.prepare("SELECT task_id, head_seq, head_id, finished FROM checkpoint_head WHERE task_id = ?"),
      byId: this.db.prepare(`SELECT ${cols} FROM checkpoint_history WHERE task_id = ? AND checkpoint_id = ?`),
      latest: this.db.prepare(
        `SELECT ${cols.split(", ").map((c) => `h.${c}`).join(", ")}
           FROM checkpoint_head AS p JOIN checkpoint_history AS h ON h.seq = p.head_seq
          WHERE p.task_id = ?`,
      ),
      listAll: this.db.prepare(`SELECT ${cols} FROM checkpoint_history WHERE task_id = ? ORDER BY seq DESC`),
      listLimit: this.db.prepare(`SELECT ${cols} FROM checkpoint_history WHERE task_id = ? ORDER BY seq DESC LIMIT ?`),
      insert: this.db.prepare(
        `INSERT INTO checkpoint_history (checkpoint_id, task_id, parent_id, current_node, ts_ms, state)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      moveHead: this.db.prepare(
        `INSERT INTO checkpoint_head (task_id, head_seq, head_id, finished) VALUES (?, ?, ?, ?)
         ON CONFLICT (task_id) DO UPDATE SET head_seq = excluded.head_seq, head_id = excluded.head_id,
                                             finished = excluded.finished`,
      ),
      deleteHistory: this.db.prepare("DELETE FROM checkpoint_history WHERE task_id = ?"),
      deleteHead: this.db.prepare("DELETE FROM checkpoint_head WHERE task_id = ?"),
    };
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    const id = requireTaskId(taskId);
    const cp = requireCheckpoint<S>(id, checkpoint);
    const requestedParent = requireOptionalId(requireOptions(options, "options").parentId, "options.parentId");
    const stateBytes = encodeState(cp.state);
    const node = cp.currentNode;
    const tsMs = cp.timestamp.getTime();
    const checkpointId = randomUUID();

    const append = this.db.transaction((): void => {
      let parentId: string | null;
      if (requestedParent !== undefined) {
        if (!this.stmt.byId.get(id, requestedParent)) {
          throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${JSON.stringify(id)} has no checkpoint ${JSON.stringify(requestedParent)}`);
        }
        parentId = requestedParent;
      } else {
        const head = this.stmt.head.get(id);
        if (head && head.finished) {
          throw new CheckpointStoreError(
            "FINISHED",
            `task ${JSON.stringify(id)} is finished (its latest checkpoint is at END); resume with options.parentId`,
          );
        }
        parentId = head ? head.head_id : null;
      }
      const info = this.stmt.insert.run(checkpointId, id, parentId, node, tsMs, stateBytes);
      this.stmt.moveHead.run(id, info.lastInsertRowid, checkpointId, node === END ? 1 : 0);
    });
    append.immediate();
    return checkpointId;
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    const id = requireTaskId(taskId);
    const wanted = requireOptionalId(checkpointId, "checkpointId");
    const row = wanted === undefined ? this.stmt.latest.get(id) : this.stmt.byId.get(id, wanted);
    return row ? this.toCheckpoint(row) : null;
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    const id = requireTaskId(taskId);
    const limit = requireLimit(requireOptions(options, "options").limit);
    const rows = limit === undefined ? this.stmt.listAll.all(id) : this.stmt.listLimit.all(id, limit);
    return rows.map((row) => this.toCheckpoint(row));
  }

  async delete(taskId: string): Promise<void> {
    const id = requireTaskId(taskId);
    this.db
      .transaction(() => {
        this.stmt.deleteHistory.run(id);
        this.stmt.deleteHead.run(id);
      })
      .immediate();
  }

  close(): void {
    this.db.close();
  }

  private toCheckpoint(row: HistoryRow): StoredCheckpoint<S> {
    return {
      checkpointId: row.checkpoint_id,
      parentId: row.parent_id,
      taskId: row.task_id,
      state: decodeState<S>(row.state, row.checkpoint_id),
      currentNode: row.current_node,
      timestamp: new Date(row.ts_ms),
    };
  }
}
