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
 * What one row's `record` BLOB holds: the caller's checkpoint body, structured-cloned as one
 * value by node:v8. The timestamp is a Date inside it, so it comes back as a Date with its
 * milliseconds without any conversion code, and the state keeps every structured-clone type.
 */
interface RecordBody {
  state: unknown;
  currentNode: string;
  timestamp: Date;
}

interface LogRow {
  id: number;
  task_id: string;
  parent: number | null;
  record: Buffer;
}

/** Checkpoint ids are the decimal form of the row id; anything else names no checkpoint. */
function parseCheckpointId(text: string): number | null {
  if (!/^[1-9][0-9]{0,15}$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Design: one append-only log table; the database's AUTOINCREMENT row id is at once the save
 * order and the checkpoint id (returned as a decimal string). The id is assigned inside the
 * write transaction, grows with every save in every process, and AUTOINCREMENT never hands out
 * the number of a deleted row again, so an old id can never come to name a different checkpoint.
 * The checkpoint body (state, currentNode, timestamp) is one v8-serialized BLOB; only what SQL
 * has to filter on is a column: the task, the parent, and whether the checkpoint is final.
 */
export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly sql: {
    latest: Database.Statement<[string], LogRow & { is_final: number }>;
    one: Database.Statement<[string, number], LogRow>;
    history: Database.Statement<[string, number], LogRow>;
    append: Database.Statement<[string, number | null, number, Buffer]>;
    drop: Database.Statement<[string]>;
  };

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 5_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS checkpoint_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id  TEXT    NOT NULL,
        parent   INTEGER,
        is_final INTEGER NOT NULL DEFAULT 0,
        record   BLOB    NOT NULL
      );
      CREATE INDEX IF NOT EXISTS checkpoint_log_by_task ON checkpoint_log (task_id, id);
    `);
    this.sql = {
      latest: this.db.prepare(
        "SELECT id, task_id, parent, is_final, record FROM checkpoint_log WHERE task_id = ? ORDER BY id DESC LIMIT 1",
      ),
      one: this.db.prepare("SELECT id, task_id, parent, record FROM checkpoint_log WHERE task_id = ? AND id = ?"),
      history: this.db.prepare(
        "SELECT id, task_id, parent, record FROM checkpoint_log WHERE task_id = ? ORDER BY id DESC LIMIT ?",
      ),
      append: this.db.prepare("INSERT INTO checkpoint_log (task_id, parent, is_final, record) VALUES (?, ?, ?, ?)"),
      drop: this.db.prepare("DELETE FROM checkpoint_log WHERE task_id = ?"),
    };
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    const id = requireTaskId(taskId);
    const cp = requireCheckpoint<S>(id, checkpoint);
    const parentText = requireOptionalId(requireOptions(options, "options").parentId, "options.parentId");
    const body: RecordBody = { state: cp.state, currentNode: cp.currentNode, timestamp: new Date(cp.timestamp.getTime()) };
    let bytes: Buffer;
    try {
      bytes = serialize(body);
    } catch (error) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `state cannot be stored: ${(error as Error).message}`);
    }
    const isFinal = cp.currentNode === END ? 1 : 0;

    const newId = this.db
      .transaction((): number => {
        let parent: number | null;
        if (parentText !== undefined) {
          const wanted = parseCheckpointId(parentText);
          if (wanted === null || !this.sql.one.get(id, wanted)) {
            throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${JSON.stringify(id)} has no checkpoint ${JSON.stringify(parentText)}`);
          }
          parent = wanted;
        } else {
          const latest = this.sql.latest.get(id);
          if (latest?.is_final) {
            throw new CheckpointStoreError(
              "FINISHED",
              `task ${JSON.stringify(id)} is finished (checkpoint ${latest.id} is at END): a save must name its parentId`,
            );
          }
          parent = latest ? latest.id : null;
        }
        return Number(this.sql.append.run(id, parent, isFinal, bytes).lastInsertRowid);
      })
      .immediate();
    return String(newId);
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    const id = requireTaskId(taskId);
    const wanted = requireOptionalId(checkpointId, "checkpointId");
    if (wanted === undefined) {
      const row = this.sql.latest.get(id);
      return row ? this.decode(row) : null;
    }
    const n = parseCheckpointId(wanted);
    if (n === null) return null;
    const row = this.sql.one.get(id, n);
    return row ? this.decode(row) : null;
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    const id = requireTaskId(taskId);
    const limit = requireLimit(requireOptions(options, "options").limit);
    return this.sql.history.all(id, limit ?? -1).map((row) => this.decode(row));
  }

  async delete(taskId: string): Promise<void> {
    this.sql.drop.run(requireTaskId(taskId));
  }

  close(): void {
    this.db.close();
  }

  private decode(row: LogRow): StoredCheckpoint<S> {
    let body: RecordBody;
    try {
      body = deserialize(row.record) as RecordBody;
    } catch (error) {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.id} does not decode: ${(error as Error).message}`);
    }
    if (!(body.timestamp instanceof Date) || typeof body.currentNode !== "string") {
      throw new CheckpointStoreError("CORRUPT", `checkpoint ${row.id} has a malformed record`);
    }
    return {
      checkpointId: String(row.id),
      parentId: row.parent === null ? null : String(row.parent),
      taskId: row.task_id,
      state: body.state as S,
      currentNode: body.currentNode,
      timestamp: body.timestamp,
    };
  }
}
