/**
 * Calibration answer for lesson-03 / checkpoint-store (a gaming attempt).
 * Mistake planted: still one row per task (INSERT OR REPLACE), dressed up to look like a history:
 * the row remembers the id it replaced as "parent_id", so load() of the latest looks right, but
 * every earlier checkpoint is gone: list() has one entry and load(taskId, olderId) finds nothing.
 */
import { randomUUID } from "node:crypto";
import * as v8 from "node:v8";
import Database from "better-sqlite3";

export const END = "__end__";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

type Checkpoint = { taskId: string; state: unknown; currentNode: string; timestamp: Date };
type Row = { task_id: string; id: string; parent_id: string | null; node: string; ts: number; state: Buffer };

const fail = (message: string): never => {
  throw new CheckpointStoreError("BAD_INPUT", message);
};

export class SqliteCheckpointStore {
  readonly #db: Database.Database;

  constructor(file: string) {
    this.#db = new Database(file, { timeout: 20_000 });
    this.#db.pragma("journal_mode = WAL");
    this.#db.exec("CREATE TABLE IF NOT EXISTS latest_checkpoint (task_id TEXT PRIMARY KEY, id TEXT, parent_id TEXT, node TEXT, ts INTEGER, state BLOB)");
  }

  #row(taskId: string): Row | undefined {
    return this.#db.prepare("SELECT * FROM latest_checkpoint WHERE task_id = ?").get(taskId) as Row | undefined;
  }

  #out(row: Row | undefined) {
    return row ? { checkpointId: row.id, parentId: row.parent_id, taskId: row.task_id, currentNode: row.node, timestamp: new Date(row.ts), state: v8.deserialize(row.state) } : null;
  }

  async save(taskId: string, checkpoint: Checkpoint, options?: { parentId?: string }) {
    if (typeof taskId !== "string" || taskId.length === 0) fail("taskId must be a non-empty string");
    if (checkpoint?.taskId !== taskId) fail("checkpoint.taskId differs from taskId");
    if (typeof checkpoint.currentNode !== "string" || checkpoint.currentNode.length === 0) fail("currentNode must be a non-empty string");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(+checkpoint.timestamp)) fail("timestamp must be a valid Date");
    let state: Buffer;
    try {
      state = v8.serialize(checkpoint.state);
    } catch {
      return fail("state is not serializable");
    }
    const previous = this.#row(taskId);
    if (options?.parentId !== undefined && options.parentId !== previous?.id) fail(`task has no checkpoint ${options.parentId}`);
    if (options?.parentId === undefined && previous?.node === END) throw new CheckpointStoreError("FINISHED", "the task is finished");
    const id = randomUUID();
    this.#db.prepare("INSERT OR REPLACE INTO latest_checkpoint VALUES (?, ?, ?, ?, ?, ?)").run(taskId, id, previous?.id ?? null, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
    return id;
  }

  async load(taskId: string, checkpointId?: string) {
    if (typeof taskId !== "string" || taskId.length === 0) fail("taskId must be a non-empty string");
    const latest = this.#out(this.#row(taskId));
    return checkpointId === undefined || latest?.checkpointId === checkpointId ? latest : null;
  }

  async list(taskId: string, options?: { limit?: number }) {
    if (options?.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) fail("limit must be a positive integer");
    const latest = await this.load(taskId);
    return latest ? [latest] : [];
  }

  async delete(taskId: string) {
    if (typeof taskId !== "string" || taskId.length === 0) fail("taskId must be a non-empty string");
    this.#db.prepare("DELETE FROM latest_checkpoint WHERE task_id = ?").run(taskId);
  }

  close() {
    this.#db.close();
  }
}
