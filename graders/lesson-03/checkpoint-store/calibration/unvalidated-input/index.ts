/**
 * Calibration answer for lesson-03 / checkpoint-store.
 * Mistake planted: nothing is validated: an empty or mismatched task id, an empty node, a string or invalid timestamp are stored as given, and a function in the state escapes as a raw DataCloneError instead of CheckpointStoreError.
 */
import { randomUUID } from "node:crypto";
import v8 from "node:v8";
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
export interface SaveOptions {
  parentId?: string;
}
export interface ListOptions {
  limit?: number;
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

type Row = { seq: number; id: string; task: string; parent: string | null; node: string; at: number; body: Buffer };

function bad(message: string): never {
  throw new CheckpointStoreError("BAD_INPUT", message);
}

function checkTask(taskId: unknown): asserts taskId is string {
  if (typeof taskId !== "string" || taskId === "") bad(`taskId must be a non-empty string, got ${String(taskId)}`);
}

export class SqliteCheckpointStore<S = unknown> {
  private db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS cp (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, task TEXT NOT NULL, parent TEXT, node TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL);" +
        "CREATE INDEX IF NOT EXISTS cp_task ON cp (task, seq);",
    );
  }

  private latest(taskId: string): Row | undefined {
    return this.db.prepare("SELECT * FROM cp WHERE task = ? ORDER BY seq DESC LIMIT 1").get(taskId) as Row | undefined;
  }

  private one(taskId: string, id: string): Row | undefined {
    return this.db.prepare("SELECT * FROM cp WHERE task = ? AND id = ?").get(taskId, id) as Row | undefined;
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    // Trusts its caller: the runtime builds every checkpoint itself.
    const body = v8.serialize(checkpoint.state);
    const parentWanted = options?.parentId;
    const id = randomUUID();
    this.db
      .transaction(() => {
        let parent: string | null;
        if (parentWanted !== undefined) {
          if (!this.one(taskId, parentWanted)) throw new CheckpointStoreError("UNKNOWN_PARENT", `no checkpoint ${parentWanted} in task ${taskId}`);
          parent = parentWanted;
        } else {
          const head = this.latest(taskId);
          if (head?.node === END) throw new CheckpointStoreError("FINISHED", `task ${taskId} has finished; pass parentId to resume from an earlier checkpoint`);
          parent = head?.id ?? null;
        }
        this.db.prepare("INSERT INTO cp (id, task, parent, node, at, body) VALUES (?, ?, ?, ?, ?, ?)").run(id, taskId, parent, checkpoint.currentNode, new Date(checkpoint.timestamp).getTime() || 0, body);
      })
      .immediate();
    return id;
  }

  private toStored(row: Row | undefined): StoredCheckpoint<S> | null {
    if (!row) return null;
    return { checkpointId: row.id, parentId: row.parent, taskId: row.task, currentNode: row.node, timestamp: new Date(row.at), state: v8.deserialize(row.body) as S };
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    if (checkpointId === undefined) return this.toStored(this.latest(taskId));
    if (typeof checkpointId !== "string") bad("checkpointId must be a string");
    return this.toStored(this.one(taskId, checkpointId));
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    const limit = options?.limit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) bad("limit must be a positive integer");
    const rows = this.db.prepare("SELECT * FROM cp WHERE task = ? ORDER BY seq DESC LIMIT ?").all(taskId, limit ?? -1) as Row[];
    return rows.map((row) => this.toStored(row)!);
  }

  async delete(taskId: string): Promise<void> {
    checkTask(taskId);
    this.db.prepare("DELETE FROM cp WHERE task = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }
}
