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
import { randomBytes } from "node:crypto";
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
 * One table, one row per checkpoint, and a per-task step number that is the checkpoint's depth
 * in its task: the first checkpoint is step 1, every other is its parent's step + 1. The
 * history is a chain, so the step says where a checkpoint sits in it without trusting any
 * clock, and it is computed from the parent row inside the write transaction.
 *
 *   checkpoints(id TEXT PRIMARY KEY, task_id TEXT, step INTEGER, parent_id TEXT,
 *               current_node TEXT, ts_ms INTEGER, state BLOB)   index (task_id, step)
 *
 * Ids are "<step>-<8 random hex>": readable in logs ("3-9f2c01ab" is the third step) and
 * unique. State is node:v8 serialize (structured clone) in a BLOB; the timestamp is epoch ms.
 * WAL and a 10 s busy timeout for a file shared between processes.
 */

type Row = {
  id: string;
  task_id: string;
  step: number;
  parent_id: string | null;
  current_node: string;
  ts_ms: number;
  state: Buffer;
};

function bad(message: string): CheckpointStoreError {
  return new CheckpointStoreError("BAD_INPUT", message);
}

function findUnstorable(value: unknown, seen = new Set<object>()): string | null {
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  if (value === null || typeof value !== "object" || seen.has(value)) return null;
  seen.add(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      const r = findUnstorable(k, seen) ?? findUnstorable(v, seen);
      if (r) return r;
    }
    return null;
  }
  if (value instanceof Set) {
    for (const v of value) {
      const r = findUnstorable(v, seen);
      if (r) return r;
    }
    return null;
  }
  if (ArrayBuffer.isView(value)) return null;
  if (Object.getOwnPropertySymbols(value).length > 0) return "a symbol-keyed property";
  for (const v of Object.values(value)) {
    const r = findUnstorable(v, seen);
    if (r) return r;
  }
  return null;
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 10_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS checkpoints (
        id           TEXT PRIMARY KEY,
        task_id      TEXT NOT NULL,
        step         INTEGER NOT NULL,
        parent_id    TEXT,
        current_node TEXT NOT NULL,
        ts_ms        INTEGER NOT NULL,
        state        BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS checkpoints_task_step ON checkpoints (task_id, step);
    `);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId === "") throw bad("taskId must be a non-empty string");
    if (!checkpoint || typeof checkpoint !== "object") throw bad("checkpoint must be an object");
    if (checkpoint.taskId !== taskId) throw bad(`checkpoint.taskId ${String(checkpoint.taskId)} is not ${taskId}`);
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode === "") {
      throw bad("currentNode must be a non-empty string");
    }
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.getTime())) {
      throw bad("timestamp must be a valid Date");
    }
    const parentId = options?.parentId;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId === "")) {
      throw bad("options.parentId must be a non-empty string");
    }
    const problem = findUnstorable(checkpoint.state);
    if (problem) throw new CheckpointStoreError("UNSERIALIZABLE", `state contains ${problem}`);
    let bytes: Buffer;
    try {
      bytes = serialize(checkpoint.state);
    } catch (err) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `state cannot be stored: ${(err as Error).message}`);
    }

    const tx = this.db.transaction((): string => {
      let parent: { id: string; step: number; current_node: string } | undefined;
      if (parentId !== undefined) {
        parent = this.db
          .prepare("SELECT id, step, current_node FROM checkpoints WHERE task_id = ? AND id = ?")
          .get(taskId, parentId) as typeof parent;
        if (!parent) throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${taskId} has no checkpoint ${parentId}`);
      } else {
        parent = this.db
          .prepare("SELECT id, step, current_node FROM checkpoints WHERE task_id = ? ORDER BY step DESC, rowid DESC LIMIT 1")
          .get(taskId) as typeof parent;
        if (parent?.current_node === END) {
          throw new CheckpointStoreError("FINISHED", `task ${taskId} is finished; resume with options.parentId`);
        }
      }
      const step = parent ? parent.step + 1 : 1;
      const id = `${step}-${randomBytes(4).toString("hex")}`;
      this.db
        .prepare(
          "INSERT INTO checkpoints (id, task_id, step, parent_id, current_node, ts_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .run(id, taskId, step, parent ? parent.id : null, checkpoint.currentNode, checkpoint.timestamp.getTime(), bytes);
      return id;
    });
    return tx.immediate();
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    if (typeof taskId !== "string") throw bad("taskId must be a string");
    if (checkpointId !== undefined && typeof checkpointId !== "string") throw bad("checkpointId must be a string");
    const row = (
      checkpointId === undefined
        ? this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY step DESC, rowid DESC LIMIT 1").get(taskId)
        : this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? AND id = ?").get(taskId, checkpointId)
    ) as Row | undefined;
    return row ? this.toCheckpoint(row) : null;
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    if (typeof taskId !== "string") throw bad("taskId must be a string");
    const limit = options?.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw bad("limit must be a positive integer");
    const rows = this.db
      .prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY step DESC, rowid DESC LIMIT ?")
      .all(taskId, limit ?? -1) as Row[];
    return rows.map((r) => this.toCheckpoint(r));
  }

  async delete(taskId: string): Promise<void> {
    if (typeof taskId !== "string") throw bad("taskId must be a string");
    this.db.prepare("DELETE FROM checkpoints WHERE task_id = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }

  private toCheckpoint(row: Row): StoredCheckpoint<S> {
    let state: S;
    try {
      state = deserialize(row.state) as S;
    } catch (err) {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.id}: ${(err as Error).message}`);
    }
    return {
      checkpointId: row.id,
      parentId: row.parent_id,
      taskId: row.task_id,
      state,
      currentNode: row.current_node,
      timestamp: new Date(row.ts_ms),
    };
  }
}
