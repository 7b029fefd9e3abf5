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
 *   a valid Date, a state that cannot be stored (a function, a symbol), a parentId that is not a
 *   non-empty string or that the task does not have, a limit that is not a positive integer.
 *   Reads (load, list, delete) refuse a non-string taskId too, and load a non-string
 *   checkpointId; an empty one they may refuse or treat as an id with no checkpoints.
 * - The code names the kind of refusal: BAD_INPUT (an argument is wrong), UNKNOWN_PARENT (the
 *   task has no such parentId), FINISHED (a save without parentId on a finished task),
 *   UNSERIALIZABLE (the state); CORRUPT is there for a stored checkpoint you cannot read back.
 *   The message names the argument or field (taskId, checkpoint.currentNode, options.limit...),
 *   the missing parent id, and for a finished task how to go on ({ parentId }).
 * - After close(), the store refuses to write.
 *
 * What the grader checks, in order (each failure names the lesson section to read); it writes
 * through your store in one process and reads through another store on the same file in another:
 * - core: save appends and returns an id; load returns the latest, also after the writer was killed;
 * - core: list gives the whole history newest first with parent pointers; load(taskId, id) any of it;
 * - core: Dates, Maps with non-string keys, Sets and undefined survive; the timestamp is a Date;
 * - core: task ids that prefix, contain or resemble each other stay apart, also for delete();
 * - core: the final checkpoint (currentNode END) is kept and loads, with the whole history;
 * - core: bad input is refused with CheckpointStoreError, and a refused save stores nothing;
 * - excellence: reads refuse ids that are not strings; each refusal's code and message say what
 *   was wrong; a closed store refuses to write;
 * - excellence: identical timestamps, a clock that steps back and saves in one millisecond keep
 *   save order; 400 checkpoints and list({ limit }); arbitrary structured values (property-based);
 *   a finished task refuses a save without parentId and accepts a resume from an earlier one.
 */
import Database from "better-sqlite3";

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

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;

  constructor(dbPath: string) {
    this.db = new Database(dbPath);
    // TODO: WAL mode and a busy timeout (another process reads and writes this file too);
    // create your table(s): one row per checkpoint, with the save order, the parent and the task.
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    // TODO: validate; in one write transaction, read the parent (options.parentId, or the latest;
    // refuse on a finished task) and insert the new checkpoint with a fresh id; return the id.
    void taskId;
    void checkpoint;
    void options;
    throw new CheckpointStoreError("BAD_INPUT", "TODO: implement save()");
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    // TODO: the latest checkpoint of the task, or the given one of that task; null if none.
    void taskId;
    void checkpointId;
    throw new CheckpointStoreError("BAD_INPUT", "TODO: implement load()");
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    // TODO: every checkpoint of the task, newest first (save order), at most options.limit.
    void taskId;
    void options;
    throw new CheckpointStoreError("BAD_INPUT", "TODO: implement list()");
  }

  async delete(taskId: string): Promise<void> {
    // TODO: remove the checkpoints of this task, and of no other.
    void taskId;
    throw new CheckpointStoreError("BAD_INPUT", "TODO: implement delete()");
  }

  close(): void {
    this.db.close();
  }
}
