/**
 * Calibration answer for lesson-03 / checkpoint-store.
 * Mistake planted: the state is tagged JSON that covers only the kinds the lesson names (Date, Map, Set, undefined); BigInt makes JSON.stringify throw a TypeError, NaN and Infinity come back as null, -0 as 0, and a Uint8Array as a plain object.
 */
import { randomUUID } from "node:crypto";
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

/** The kinds the lesson names (Date, Map, Set, undefined) get a tag; everything else is left to JSON. */
function wrap(value: unknown): unknown {
  if (value === undefined) return { $: "u" };
  if (typeof value === "function" || typeof value === "symbol") throw new CheckpointStoreError("UNSERIALIZABLE", `a ${typeof value} cannot be stored`);
  if (value instanceof Date) return { $: "d", v: value.getTime() };
  if (value instanceof Map) return { $: "m", v: [...value].map(([k, v]) => [wrap(k), wrap(v)]) };
  if (value instanceof Set) return { $: "s", v: [...value].map(wrap) };
  if (Array.isArray(value)) return value.map(wrap);
  if (value !== null && typeof value === "object") return { $: "o", v: Object.entries(value).map(([k, v]) => [k, wrap(v)]) };
  return value;
}

function unwrap(tree: unknown): unknown {
  if (Array.isArray(tree)) return tree.map(unwrap);
  if (tree === null || typeof tree !== "object") return tree;
  const { $, v } = tree as { $: string; v: unknown };
  if ($ === "u") return undefined;
  if ($ === "d") return new Date(v as number);
  if ($ === "m") return new Map((v as Array<[unknown, unknown]>).map(([k, x]) => [unwrap(k), unwrap(x)]));
  if ($ === "s") return new Set((v as unknown[]).map(unwrap));
  const out: Record<string, unknown> = {};
  for (const [k, x] of v as Array<[string, unknown]>) Object.defineProperty(out, k, { value: unwrap(x), enumerable: true, writable: true, configurable: true });
  return out;
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
    checkTask(taskId);
    if (!checkpoint || typeof checkpoint !== "object") bad("checkpoint must be an object");
    if (checkpoint.taskId !== taskId) bad(`checkpoint.taskId ${String(checkpoint.taskId)} differs from ${taskId}`);
    if (typeof checkpoint.currentNode !== "string" || !checkpoint.currentNode) bad("currentNode must be a non-empty string");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.valueOf())) bad("timestamp must be a valid Date");
    const body = Buffer.from(JSON.stringify(wrap(checkpoint.state)), "utf8");
    const parentWanted = options?.parentId;
    if (parentWanted !== undefined && (typeof parentWanted !== "string" || !parentWanted)) bad("parentId must be a checkpoint id");
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
        this.db.prepare("INSERT INTO cp (id, task, parent, node, at, body) VALUES (?, ?, ?, ?, ?, ?)").run(id, taskId, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), body);
      })
      .immediate();
    return id;
  }

  private toStored(row: Row | undefined): StoredCheckpoint<S> | null {
    if (!row) return null;
    return { checkpointId: row.id, parentId: row.parent, taskId: row.task, currentNode: row.node, timestamp: new Date(row.at), state: unwrap(JSON.parse(row.body.toString("utf8"))) as S };
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    checkTask(taskId);
    if (checkpointId === undefined) return this.toStored(this.latest(taskId));
    if (typeof checkpointId !== "string") bad("checkpointId must be a string");
    return this.toStored(this.one(taskId, checkpointId));
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    checkTask(taskId);
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
