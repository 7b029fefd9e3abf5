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
import v8 from "node:v8";

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
 * Design notes (unchecked-limit)
 *
 * One row per checkpoint: `seq INTEGER PRIMARY KEY AUTOINCREMENT` is the save order (assigned by
 * SQLite inside the write transaction; never reused), the checkpoint id is a random UUID with a UNIQUE
 * constraint, and the parent is the parent's id.
 * The state is v8.serialize'd into a BLOB (structured clone: Date, Map, Set, BigInt, typed
 * arrays, undefined, NaN, -0 survive; functions and symbols are refused at save time); the
 * timestamp is epoch milliseconds in an INTEGER column. WAL and a busy timeout, because other
 * processes read and write the same file. save() reads the parent and inserts the child in one
 * BEGIN IMMEDIATE transaction.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoints (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  checkpoint_id TEXT    NOT NULL UNIQUE,
  task_id       TEXT    NOT NULL,
  parent_id     TEXT,
  current_node  TEXT    NOT NULL,
  ts_ms         INTEGER NOT NULL,
  state         BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_task ON checkpoints (task_id, seq);
`;

interface Row {
  checkpoint_id: string;
  parent_id: string | null;
  task_id: string;
  current_node: string;
  ts_ms: number;
  state: Buffer;
}

function bad(message: string): never {
  throw new CheckpointStoreError("BAD_INPUT", message);
}

function what(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : value === null ? "null" : typeof value;
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly insertTx: Database.Transaction<(taskId: string, parentId: string | undefined, currentNode: string, tsMs: number, state: Buffer) => string>;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 5000 });
    this.db.pragma("journal_mode = WAL");
    this.db.transaction(() => this.db.exec(SCHEMA)).immediate();

    const latest = this.db.prepare(`SELECT checkpoint_id, current_node FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1`);
    const exists = this.db.prepare(`SELECT 1 FROM checkpoints WHERE task_id = ? AND checkpoint_id = ?`);
    const insert = this.db.prepare(
      `INSERT INTO checkpoints (checkpoint_id, task_id, parent_id, current_node, ts_ms, state) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.insertTx = this.db.transaction((taskId, parentId, currentNode, tsMs, state) => {
      const head = latest.get(taskId) as { checkpoint_id: string; current_node: string } | undefined;
      let parent = head?.checkpoint_id ?? null;
      if (parentId !== undefined) {
        if (exists.get(taskId, parentId) === undefined) {
          throw new CheckpointStoreError("UNKNOWN_PARENT", `save(): task ${JSON.stringify(taskId)} has no checkpoint ${JSON.stringify(parentId)}.`);
        }
        parent = parentId;
      } else if (head?.current_node === END) {
        throw new CheckpointStoreError("FINISHED", `save(): task ${JSON.stringify(taskId)} is finished; resume with { parentId } of an earlier checkpoint.`);
      }
      
      const checkpointId = randomUUID();
      insert.run(checkpointId, taskId, parent, currentNode, tsMs, state);
      return checkpointId;
    });
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId.length === 0) bad(`save(): taskId must be a non-empty string, got ${what(taskId)}.`);
    if (typeof checkpoint !== "object" || checkpoint === null) bad(`save(): checkpoint must be an object, got ${what(checkpoint)}.`);
    if (checkpoint.taskId !== taskId) bad(`save(): checkpoint.taskId ${what(checkpoint.taskId)} differs from taskId ${what(taskId)}.`);
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode.length === 0) {
      bad(`save(): currentNode must be a non-empty string, got ${what(checkpoint.currentNode)}.`);
    }
    const ts = checkpoint.timestamp;
    if (!(ts instanceof Date) || Number.isNaN(ts.getTime())) bad(`save(): timestamp must be a valid Date, got ${ts instanceof Date ? "an invalid Date" : what(ts)}.`);
    const parentId = options?.parentId;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId.length === 0)) bad(`save(): options.parentId must be a non-empty string, got ${what(parentId)}.`);
    let state: Buffer;
    try {
      state = v8.serialize(checkpoint.state);
    } catch (error) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `save(): the state cannot be stored: ${(error as Error).message}`);
    }
    return this.insertTx.immediate(taskId, parentId, checkpoint.currentNode, ts.getTime(), state);
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    if (typeof taskId !== "string") bad(`load(): taskId must be a string, got ${what(taskId)}.`);
    const row = (
      checkpointId === undefined
        ? this.db.prepare(`SELECT ${this.columns()} WHERE task_id = ? ORDER BY seq DESC LIMIT 1`).get(taskId)
        : this.db.prepare(`SELECT ${this.columns()} WHERE task_id = ? AND checkpoint_id = ?`).get(taskId, checkpointId)
    ) as Row | undefined;
    return row === undefined ? null : this.toCheckpoint(row);
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    if (typeof taskId !== "string") bad(`list(): taskId must be a string, got ${what(taskId)}.`);
    // SQLite's LIMIT -1 means "no limit".
    const limit = options?.limit ?? -1;
    const rows = this.db.prepare(`SELECT ${this.columns()} WHERE task_id = ? ORDER BY seq DESC LIMIT ?`).all(taskId, limit) as Row[];
    return rows.map((row) => this.toCheckpoint(row));
  }

  async delete(taskId: string): Promise<void> {
    if (typeof taskId !== "string") bad(`delete(): taskId must be a string, got ${what(taskId)}.`);
    this.db.prepare(`DELETE FROM checkpoints WHERE task_id = ?`).run(taskId);
  }

  close(): void {
    this.db.close();
  }

  private columns(): string {
    return `checkpoint_id, parent_id, task_id, current_node, ts_ms, state FROM checkpoints`;
  }

  private toCheckpoint(row: Row): StoredCheckpoint<S> {
    let state: S;
    try {
      state = v8.deserialize(row.state) as S;
    } catch (error) {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.checkpoint_id}: ${(error as Error).message}`);
    }
    return {
      checkpointId: row.checkpoint_id,
      parentId: row.parent_id ?? null,
      taskId: row.task_id,
      state,
      currentNode: row.current_node,
      timestamp: new Date(row.ts_ms),
    };
  }
}
