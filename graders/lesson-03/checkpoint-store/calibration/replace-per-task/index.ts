/**
 * Calibration answer for lesson-03 / checkpoint-store.
 * Mistake planted: the seed's schema kept as is, one row per task written with INSERT OR REPLACE:
 * every save overwrites the last, so there is no history and no parent pointer (the state itself
 * is stored with v8.serialize, and input is validated).
 */
import { randomUUID } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";

export const END = "__end__";

export interface Checkpoint<S> {
  taskId: string;
  state: S;
  currentNode: string;
  timestamp: Date;
}
export interface StoredCheckpoint<S> extends Checkpoint<S> {
  checkpointId: string;
  parentId: string | null;
}

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Row {
  task_id: string;
  checkpoint_id: string;
  state: Buffer;
  current_node: string;
  timestamp: string;
}

export class SqliteCheckpointStore<S = unknown> {
  private readonly db: Database.Database;

  constructor(dbPath = "checkpoints.db") {
    this.db = new Database(dbPath, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
      task_id TEXT PRIMARY KEY,
      checkpoint_id TEXT NOT NULL,
      state BLOB NOT NULL,
      current_node TEXT NOT NULL,
      timestamp TEXT NOT NULL
    )`);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: { parentId?: string } = {}): Promise<string> {
    if (typeof taskId !== "string" || !taskId) throw new CheckpointStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (!checkpoint || checkpoint.taskId !== taskId) throw new CheckpointStoreError("BAD_INPUT", "checkpoint.taskId must match taskId");
    if (typeof checkpoint.currentNode !== "string" || !checkpoint.currentNode) throw new CheckpointStoreError("BAD_INPUT", "currentNode must be a non-empty string");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.getTime())) throw new CheckpointStoreError("BAD_INPUT", "timestamp must be a valid Date");
    const current = this.db.prepare("SELECT checkpoint_id FROM checkpoints WHERE task_id = ?").get(taskId) as { checkpoint_id: string } | undefined;
    if (options.parentId !== undefined && options.parentId !== current?.checkpoint_id) throw new CheckpointStoreError("UNKNOWN_PARENT", `unknown parent ${options.parentId}`);
    let state: Buffer;
    try {
      state = serialize(checkpoint.state);
    } catch (error) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `cannot store the state: ${String(error)}`);
    }
    const id = randomUUID();
    this.db
      .prepare("INSERT OR REPLACE INTO checkpoints (task_id, checkpoint_id, state, current_node, timestamp) VALUES (?, ?, ?, ?, ?)")
      .run(taskId, id, state, checkpoint.currentNode, checkpoint.timestamp.toISOString());
    return id;
  }

  private read(row: Row | undefined): StoredCheckpoint<S> | null {
    if (!row) return null;
    return { checkpointId: row.checkpoint_id, parentId: null, taskId: row.task_id, state: deserialize(row.state) as S, currentNode: row.current_node, timestamp: new Date(row.timestamp) };
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    if (typeof taskId !== "string" || !taskId) throw new CheckpointStoreError("BAD_INPUT", "taskId must be a non-empty string");
    const found = this.read(this.db.prepare("SELECT * FROM checkpoints WHERE task_id = ?").get(taskId) as Row | undefined);
    return checkpointId === undefined || found?.checkpointId === checkpointId ? found : null;
  }

  async list(taskId: string, options: { limit?: number } = {}): Promise<StoredCheckpoint<S>[]> {
    if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) throw new CheckpointStoreError("BAD_INPUT", "limit must be a positive integer");
    const only = await this.load(taskId);
    return only ? [only] : [];
  }

  async delete(taskId: string): Promise<void> {
    if (typeof taskId !== "string" || !taskId) throw new CheckpointStoreError("BAD_INPUT", "taskId must be a non-empty string");
    this.db.prepare("DELETE FROM checkpoints WHERE task_id = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }
}
