/**
 * Calibration answer for lesson-03 / checkpoint-store: a correct alternative design.
 * Two tables: `history` holds every checkpoint ever saved (append-only, v8 blobs), and `heads`
 * holds one row per task pointing at its latest checkpoint. A save reads the head, inserts the
 * new checkpoint with the head as its parent and moves the head, in one IMMEDIATE transaction;
 * load() of the latest follows the head instead of sorting.
 */
import { randomUUID } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import Database from "better-sqlite3";

export const END = "__end__";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Checkpoint<S> {
  taskId: string;
  state: S;
  currentNode: string;
  timestamp: Date;
}

type HistoryRow = { n: number; checkpoint_id: string; task_id: string; parent_id: string | null; next_node: string; written_at: number; body: Uint8Array };

function requireString(value: unknown, name: string): string {
  if (typeof value === "string" && value.length > 0) return value;
  throw new CheckpointStoreError("BAD_INPUT", `${name} must be a non-empty string (got ${typeof value})`);
}

export class SqliteCheckpointStore<S = unknown> {
  private readonly db: Database.Database;
  private readonly stmt: Record<"head" | "byId" | "insert" | "moveHead" | "history" | "dropHistory" | "dropHead", Database.Statement>;

  constructor(path: string) {
    this.db = new Database(path, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS history (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        checkpoint_id TEXT NOT NULL UNIQUE,
        task_id TEXT NOT NULL,
        parent_id TEXT REFERENCES history (checkpoint_id),
        next_node TEXT NOT NULL,
        written_at INTEGER NOT NULL,
        body BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS history_task ON history (task_id, n);
      CREATE TABLE IF NOT EXISTS heads (
        task_id TEXT PRIMARY KEY,
        checkpoint_id TEXT NOT NULL
      );`);
    this.stmt = {
      head: this.db.prepare("SELECT h.* FROM heads JOIN history h ON h.checkpoint_id = heads.checkpoint_id WHERE heads.task_id = ?"),
      byId: this.db.prepare("SELECT * FROM history WHERE task_id = ? AND checkpoint_id = ?"),
      insert: this.db.prepare("INSERT INTO history (checkpoint_id, task_id, parent_id, next_node, written_at, body) VALUES (?, ?, ?, ?, ?, ?)"),
      moveHead: this.db.prepare("INSERT INTO heads (task_id, checkpoint_id) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET checkpoint_id = excluded.checkpoint_id"),
      history: this.db.prepare("SELECT * FROM history WHERE task_id = ? ORDER BY n DESC LIMIT ?"),
      dropHistory: this.db.prepare("DELETE FROM history WHERE task_id = ?"),
      dropHead: this.db.prepare("DELETE FROM heads WHERE task_id = ?"),
    };
  }

  private view(row: HistoryRow | undefined) {
    if (row === undefined) return null;
    return { checkpointId: row.checkpoint_id, parentId: row.parent_id, taskId: row.task_id, currentNode: row.next_node, timestamp: new Date(row.written_at), state: deserialize(row.body) as S };
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: { parentId?: string } = {}): Promise<string> {
    requireString(taskId, "taskId");
    if (typeof checkpoint !== "object" || checkpoint === null) throw new CheckpointStoreError("BAD_INPUT", "checkpoint must be an object");
    if (checkpoint.taskId !== taskId) throw new CheckpointStoreError("BAD_INPUT", `checkpoint.taskId must be ${JSON.stringify(taskId)}`);
    requireString(checkpoint.currentNode, "checkpoint.currentNode");
    const time = checkpoint.timestamp instanceof Date ? checkpoint.timestamp.getTime() : Number.NaN;
    if (Number.isNaN(time)) throw new CheckpointStoreError("BAD_INPUT", "checkpoint.timestamp must be a valid Date");
    const wanted = options?.parentId === undefined ? undefined : requireString(options.parentId, "options.parentId");
    let body: Buffer;
    try {
      body = serialize(checkpoint.state);
    } catch (error) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `the state cannot be serialized: ${(error as Error).message}`);
    }
    const id = randomUUID();
    this.db
      .transaction(() => {
        let parent: string | null;
        if (wanted !== undefined) {
          if (this.stmt.byId.get(taskId, wanted) === undefined) throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${taskId} has no checkpoint ${wanted}`);
          parent = wanted;
        } else {
          const head = this.stmt.head.get(taskId) as HistoryRow | undefined;
          if (head?.next_node === END) throw new CheckpointStoreError("FINISHED", `task ${taskId} already ended; resume it from an earlier checkpoint with { parentId }`);
          parent = head?.checkpoint_id ?? null;
        }
        this.stmt.insert.run(id, taskId, parent, checkpoint.currentNode, time, body);
        this.stmt.moveHead.run(taskId, id);
      })
      .immediate();
    return id;
  }

  async load(taskId: string, checkpointId?: string) {
    requireString(taskId, "taskId");
    const row = checkpointId === undefined ? this.stmt.head.get(taskId) : this.stmt.byId.get(taskId, requireString(checkpointId, "checkpointId"));
    return this.view(row as HistoryRow | undefined);
  }

  async list(taskId: string, options: { limit?: number } = {}) {
    requireString(taskId, "taskId");
    if (options?.limit !== undefined && (!Number.isInteger(options.limit) || options.limit <= 0)) throw new CheckpointStoreError("BAD_INPUT", "options.limit must be a positive integer");
    return (this.stmt.history.all(taskId, options?.limit ?? -1) as HistoryRow[]).map((row) => this.view(row)!);
  }

  async delete(taskId: string): Promise<void> {
    requireString(taskId, "taskId");
    this.db.transaction(() => {
      this.stmt.dropHead.run(taskId);
      this.stmt.dropHistory.run(taskId);
    })();
  }

  close(): void {
    this.db.close();
  }
}
