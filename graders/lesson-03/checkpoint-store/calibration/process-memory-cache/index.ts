/**
 * Calibration answer for lesson-03 / checkpoint-store (a gaming attempt).
 * Mistake planted: the real store is a Map in this process's memory, with full history, parents
 * and types; SQLite gets a JSON copy "for durability" that is read only when the Map misses. In
 * the process that saved, everything looks right; any other process (a restart, a second worker)
 * reads the JSON copy and gets Dates as strings, Maps as {}, and no undefined keys.
 */
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";

export const END = "__end__";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Saved {
  checkpointId: string;
  parentId: string | null;
  taskId: string;
  state: unknown;
  currentNode: string;
  timestamp: Date;
}

const memory = new Map<string, Saved[]>();

function refuse(message: string): never {
  throw new CheckpointStoreError("BAD_INPUT", message);
}

export class SqliteCheckpointStore {
  private db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS backup (n INTEGER PRIMARY KEY, task TEXT, doc TEXT)");
  }

  private history(taskId: string): Saved[] {
    const cached = memory.get(taskId);
    if (cached) return cached;
    const rows = this.db.prepare("SELECT doc FROM backup WHERE task = ? ORDER BY n").all(taskId) as Array<{ doc: string }>;
    return rows.map((r) => {
      const doc = JSON.parse(r.doc) as Saved;
      return { ...doc, timestamp: new Date(doc.timestamp) };
    });
  }

  async save(taskId: string, checkpoint: Omit<Saved, "checkpointId" | "parentId">, options: { parentId?: string } = {}): Promise<string> {
    if (typeof taskId !== "string" || !taskId) refuse("taskId must be a non-empty string");
    if (!checkpoint || checkpoint.taskId !== taskId) refuse("checkpoint.taskId must equal taskId");
    if (typeof checkpoint.currentNode !== "string" || !checkpoint.currentNode) refuse("currentNode must be a non-empty string");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.getTime())) refuse("timestamp must be a valid Date");
    try {
      structuredClone(checkpoint.state);
    } catch {
      refuse("the state cannot be stored");
    }
    const history = this.history(taskId);
    const head = history.at(-1);
    if (options.parentId !== undefined && !history.some((c) => c.checkpointId === options.parentId)) refuse("unknown parentId");
    if (options.parentId === undefined && head?.currentNode === END) throw new CheckpointStoreError("FINISHED", "the task is finished");
    const entry: Saved = { ...checkpoint, checkpointId: randomUUID(), parentId: options.parentId ?? head?.checkpointId ?? null, state: structuredClone(checkpoint.state) };
    memory.set(taskId, [...history, entry]);
    this.db.prepare("INSERT INTO backup (task, doc) VALUES (?, ?)").run(taskId, JSON.stringify(entry));
    return entry.checkpointId;
  }

  async load(taskId: string, checkpointId?: string): Promise<Saved | null> {
    if (typeof taskId !== "string" || !taskId) refuse("taskId must be a non-empty string");
    const history = this.history(taskId);
    return (checkpointId === undefined ? history.at(-1) : history.find((c) => c.checkpointId === checkpointId)) ?? null;
  }

  async list(taskId: string, options: { limit?: number } = {}): Promise<Saved[]> {
    if (typeof taskId !== "string" || !taskId) refuse("taskId must be a non-empty string");
    if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) refuse("limit must be a positive integer");
    return [...this.history(taskId)].reverse().slice(0, options.limit);
  }

  async delete(taskId: string): Promise<void> {
    memory.delete(taskId);
    this.db.prepare("DELETE FROM backup WHERE task = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }
}
