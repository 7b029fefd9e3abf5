/**
 * Given code (from unit 1, checkpoint-store, cut down to what the graph needs): an append-only
 * checkpoint store on SQLite. You do not need to change it.
 *
 * Every save appends a row; load() returns the task's latest checkpoint by save order. The
 * state is stored with node:v8 (structured clone), so what comes back equals what was saved.
 */
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";

export interface Checkpoint<S> {
  taskId: string;
  state: S;
  /** The node to run next (END when the task is finished). */
  currentNode: string;
  /** How many steps (node executions) the task has completed. */
  step: number;
  timestamp: Date;
}

export interface CheckpointStore<S> {
  save(taskId: string, checkpoint: Checkpoint<S>): Promise<void>;
  load(taskId: string): Promise<Checkpoint<S> | null>;
}

interface Row {
  current_node: string;
  step: number;
  timestamp_ms: number;
  state: Buffer;
}

export class SqliteCheckpointStore<S = Record<string, unknown>> implements CheckpointStore<S> {
  private readonly db: Database.Database;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, current_node TEXT NOT NULL,
      step INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, state BLOB NOT NULL)`);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>): Promise<void> {
    this.db
      .prepare("INSERT INTO checkpoints (task_id, current_node, step, timestamp_ms, state) VALUES (?, ?, ?, ?, ?)")
      .run(taskId, checkpoint.currentNode, checkpoint.step, checkpoint.timestamp.getTime(), serialize(checkpoint.state));
  }

  async load(taskId: string): Promise<Checkpoint<S> | null> {
    const row = this.db.prepare("SELECT current_node, step, timestamp_ms, state FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1").get(taskId) as Row | undefined;
    if (!row) return null;
    return { taskId, state: deserialize(row.state) as S, currentNode: row.current_node, step: row.step, timestamp: new Date(row.timestamp_ms) };
  }

  close(): void {
    this.db.close();
  }
}
