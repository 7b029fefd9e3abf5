/**
 * Calibration answer for lesson-03 / checkpoint-store: a correct alternative design.
 * A WITHOUT ROWID table keyed (task, step): each task counts its own checkpoints, and a save
 * takes step = max(step) + 1 inside an IMMEDIATE transaction (the primary key would refuse a
 * duplicate step anyway). The checkpoint id is random and opaque; the order is the step.
 * The state is a v8 structured-clone blob.
 */
import { randomBytes } from "node:crypto";
import * as v8 from "node:v8";
import Database from "better-sqlite3";

export const END = "__end__";

export class CheckpointStoreError extends Error {
  override readonly name = "CheckpointStoreError";
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface Checkpoint {
  taskId: string;
  state: unknown;
  currentNode: string;
  timestamp: Date;
}

interface Row {
  task: string;
  step: number;
  id: string;
  parent: string | null;
  node: string;
  millis: number;
  state: Buffer;
}

const problem = (message: string) => new CheckpointStoreError("BAD_INPUT", message);

function assertTask(taskId: unknown): string {
  if (typeof taskId !== "string" || taskId.length === 0) throw problem("a taskId is a non-empty string");
  return taskId;
}

export class SqliteCheckpointStore {
  readonly #db: Database.Database;

  constructor(file: string) {
    this.#db = new Database(file, { timeout: 20_000 });
    this.#db.pragma("journal_mode = WAL");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS steps (
      task TEXT NOT NULL,
      step INTEGER NOT NULL,
      id TEXT NOT NULL,
      parent TEXT,
      node TEXT NOT NULL,
      millis INTEGER NOT NULL,
      state BLOB NOT NULL,
      PRIMARY KEY (task, step)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX IF NOT EXISTS steps_id ON steps (task, id);`);
  }

  #present(row: Row | undefined) {
    return row ? { checkpointId: row.id, parentId: row.parent, taskId: row.task, currentNode: row.node, timestamp: new Date(row.millis), state: v8.deserialize(row.state) } : null;
  }

  #top(task: string): Row | undefined {
    return this.#db.prepare("SELECT * FROM steps WHERE task = ? ORDER BY step DESC LIMIT 1").get(task) as Row | undefined;
  }

  async save(taskId: string, checkpoint: Checkpoint, options?: { parentId?: string }): Promise<string> {
    const task = assertTask(taskId);
    if (checkpoint === null || typeof checkpoint !== "object") throw problem("checkpoint must be an object");
    if (checkpoint.taskId !== task) throw problem("checkpoint.taskId and taskId disagree");
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode.length === 0) throw problem("currentNode must name a node");
    if (!(checkpoint.timestamp instanceof Date) || !Number.isFinite(checkpoint.timestamp.getTime())) throw problem("timestamp must be a valid Date");
    const parentId = options?.parentId;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId.length === 0)) throw problem("parentId must be a checkpoint id");
    let state: Buffer;
    try {
      state = v8.serialize(checkpoint.state);
    } catch (error) {
      throw new CheckpointStoreError("UNSERIALIZABLE", `state is not storable: ${(error as Error).message}`);
    }
    const id = randomBytes(12).toString("base64url");
    this.#db
      .transaction(() => {
        const top = this.#top(task);
        let parent = top?.id ?? null;
        if (parentId !== undefined) {
          if (!this.#db.prepare("SELECT 1 FROM steps WHERE task = ? AND id = ?").get(task, parentId)) throw new CheckpointStoreError("UNKNOWN_PARENT", `no checkpoint ${parentId} in this task`);
          parent = parentId;
        } else if (top?.node === END) {
          throw new CheckpointStoreError("FINISHED", "this task has ended; pass { parentId } to go on from an earlier checkpoint");
        }
        this.#db.prepare("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)").run(task, (top?.step ?? 0) + 1, id, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
      })
      .immediate();
    return id;
  }

  async load(taskId: string, checkpointId?: string) {
    const task = assertTask(taskId);
    if (checkpointId === undefined) return this.#present(this.#top(task));
    if (typeof checkpointId !== "string") throw problem("checkpointId must be a string");
    return this.#present(this.#db.prepare("SELECT * FROM steps WHERE task = ? AND id = ?").get(task, checkpointId) as Row | undefined);
  }

  async list(taskId: string, options?: { limit?: number }) {
    const task = assertTask(taskId);
    const limit = options?.limit ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isInteger(limit) || limit < 1) throw problem("limit must be a positive integer");
    return (this.#db.prepare("SELECT * FROM steps WHERE task = ? ORDER BY step DESC LIMIT ?").all(task, limit) as Row[]).map((row) => this.#present(row)!);
  }

  async delete(taskId: string): Promise<void> {
    this.#db.prepare("DELETE FROM steps WHERE task = ?").run(assertTask(taskId));
  }

  close(): void {
    this.#db.close();
  }
}
