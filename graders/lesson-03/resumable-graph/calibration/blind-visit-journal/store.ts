/**
 * Given code (the previous unit, checkpoint-store, solved): an append-only checkpoint store on
 * one SQLite file. You do not need to change it; your graph talks to any store through the
 * CheckpointStore interface below, and the grader hands your graph a store of its own that
 * behaves the same way.
 *
 *   save(taskId, checkpoint)   appends a checkpoint (parent = the task's latest); resolves with its new id
 *   load(taskId)               the task's latest checkpoint (by save order), or null
 *   load(taskId, id)           that checkpoint of that task, or null
 *   list(taskId, { limit })    the task's checkpoints, newest first
 *   delete(taskId)             removes every checkpoint of that task (retention, never the end of a run)
 *
 * State is stored with node:v8 (Dates, Maps, Sets, undefined come back as saved). A save
 * without parentId on top of a finished checkpoint (currentNode END) is refused: a finished
 * task is not reopened by accident.
 */
import { randomUUID } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";

/** The node name that marks a finished task. */
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
  parentId: string | null;
}

export interface CheckpointStore<S> {
  save(taskId: string, checkpoint: Checkpoint<S>, options?: { parentId?: string }): Promise<string>;
  load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null>;
  list(taskId: string, options?: { limit?: number }): Promise<StoredCheckpoint<S>[]>;
  delete(taskId: string): Promise<void>;
}

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
}

interface Row {
  checkpoint_id: string;
  task_id: string;
  parent_id: string | null;
  current_node: string;
  timestamp_ms: number;
  state: Buffer;
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, checkpoint_id TEXT NOT NULL UNIQUE, task_id TEXT NOT NULL,
      parent_id TEXT, current_node TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, state BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS checkpoints_by_task ON checkpoints (task_id, seq);`);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: { parentId?: string } = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId === "" || checkpoint.taskId !== taskId) throw new CheckpointStoreError(`save(): taskId must be a non-empty string equal to checkpoint.taskId`);
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode === "") throw new CheckpointStoreError(`save(): checkpoint.currentNode must name the node to run next`);
    const state = serialize(checkpoint.state);
    const append = this.db.transaction(() => {
      let parent: string | null;
      if (options.parentId !== undefined) {
        if (!this.row(taskId, options.parentId)) throw new CheckpointStoreError(`save(): task ${taskId} has no checkpoint ${options.parentId}`);
        parent = options.parentId;
      } else {
        const latest = this.latest(taskId);
        if (latest?.current_node === END) throw new CheckpointStoreError(`save(): task ${taskId} is finished; pass { parentId } to resume from an earlier checkpoint`);
        parent = latest?.checkpoint_id ?? null;
      }
      const id = randomUUID();
      this.db
        .prepare("INSERT INTO checkpoints (checkpoint_id, task_id, parent_id, current_node, timestamp_ms, state) VALUES (?, ?, ?, ?, ?, ?)")
        .run(id, taskId, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
      return id;
    });
    return append.immediate();
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    const row = checkpointId === undefined ? this.latest(taskId) : this.row(taskId, checkpointId);
    return row ? this.toCheckpoint(row) : null;
  }

  async list(taskId: string, options: { limit?: number } = {}): Promise<StoredCheckpoint<S>[]> {
    const rows = this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT ?").all(taskId, options.limit ?? -1) as Row[];
    return rows.map((row) => this.toCheckpoint(row));
  }

  async delete(taskId: string): Promise<void> {
    this.db.prepare("DELETE FROM checkpoints WHERE task_id = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }

  private latest(taskId: string): Row | undefined {
    return this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1").get(taskId) as Row | undefined;
  }

  private row(taskId: string, checkpointId: string): Row | undefined {
    return this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ? AND checkpoint_id = ?").get(taskId, checkpointId) as Row | undefined;
  }

  private toCheckpoint(row: Row): StoredCheckpoint<S> {
    return {
      checkpointId: row.checkpoint_id,
      parentId: row.parent_id,
      taskId: row.task_id,
      state: deserialize(row.state) as S,
      currentNode: row.current_node,
      timestamp: new Date(row.timestamp_ms),
    };
  }
}
