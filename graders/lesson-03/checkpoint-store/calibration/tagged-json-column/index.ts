/**
 * Calibration answer for lesson-03 / checkpoint-store: a correct alternative design.
 * The state is tagged JSON in a TEXT column checked by SQLite's JSON1 (`json_valid`), so an
 * operator can read it with json_extract; every value JSON cannot hold is written as an array
 * whose first element names its kind, and every plain array as ["a", ...], so user data can
 * never pass for a tag. Save order is the rowid of an INTEGER PRIMARY KEY.
 */
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";

export const END = "__end__";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    readonly code: "BAD_INPUT" | "UNKNOWN_PARENT" | "FINISHED" | "UNSERIALIZABLE" | "CORRUPT",
    message: string,
  ) {
    super(message);
  }
}

type Tagged = null | boolean | number | string | Tagged[] | { [key: string]: Tagged };

/** value -> JSON tree. Arrays are always tagged; objects stay objects (null-free of tags). */
function encode(value: unknown, path: Set<object> = new Set()): Tagged {
  switch (typeof value) {
    case "undefined":
      return ["u"];
    case "boolean":
    case "string":
      return value;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0) ? value : ["n", String(value)];
    case "bigint":
      return ["b", value.toString()];
    case "function":
    case "symbol":
      throw new CheckpointStoreError("UNSERIALIZABLE", `a ${typeof value} cannot be stored in a checkpoint state`);
  }
  if (value === null) return null;
  const object = value as object;
  if (path.has(object)) throw new CheckpointStoreError("UNSERIALIZABLE", "the state contains a cycle");
  path.add(object);
  try {
    if (object instanceof Date) return ["d", String(object.getTime())];
    if (object instanceof Uint8Array) return ["y", Buffer.from(object).toString("base64")];
    if (object instanceof Map) return ["m", ...[...object].map(([k, v]) => [encode(k, path), encode(v, path)] as Tagged)];
    if (object instanceof Set) return ["s", ...[...object].map((v) => encode(v, path))];
    if (Array.isArray(object)) return ["a", ...Array.from(object, (v) => encode(v, path))];
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) throw new CheckpointStoreError("UNSERIALIZABLE", `an instance of ${proto?.constructor?.name ?? "a class"} cannot be stored; keep the state plain data`);
    const out: { [key: string]: Tagged } = {};
    for (const [k, v] of Object.entries(object)) Object.defineProperty(out, k, { value: encode(v, path), enumerable: true, writable: true, configurable: true });
    return out;
  } finally {
    path.delete(object);
  }
}

function decode(tree: Tagged): unknown {
  if (tree === null || typeof tree !== "object") return tree;
  if (!Array.isArray(tree)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(tree)) Object.defineProperty(out, k, { value: decode(v), enumerable: true, writable: true, configurable: true });
    return out;
  }
  const [kind, ...rest] = tree;
  switch (kind) {
    case "u":
      return undefined;
    case "n":
      return Number(rest[0]);
    case "b":
      return BigInt(rest[0] as string);
    case "d":
      return new Date(Number(rest[0]));
    case "y":
      return new Uint8Array(Buffer.from(rest[0] as string, "base64"));
    case "m":
      return new Map((rest as Tagged[][]).map(([k, v]) => [decode(k!), decode(v!)]));
    case "s":
      return new Set(rest.map(decode));
    case "a":
      return rest.map(decode);
  }
  throw new CheckpointStoreError("CORRUPT", `unknown tag ${JSON.stringify(kind)} in a stored state`);
}

const nonEmpty = (value: unknown, what: string): string => {
  if (typeof value !== "string" || value === "") throw new CheckpointStoreError("BAD_INPUT", `${what} must be a non-empty string`);
  return value;
};

interface Row {
  id: string;
  task: string;
  parent: string | null;
  node: string;
  at_ms: number;
  state: string;
}

export class SqliteCheckpointStore<S = unknown> {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS task_checkpoint (
      pos INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      task TEXT NOT NULL,
      parent TEXT,
      node TEXT NOT NULL,
      at_ms INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (json_valid(state))
    );
    CREATE INDEX IF NOT EXISTS task_checkpoint_task ON task_checkpoint (task, pos DESC);`);
  }

  private out(row: Row | undefined) {
    if (!row) return null;
    return { checkpointId: row.id, parentId: row.parent, taskId: row.task, currentNode: row.node, timestamp: new Date(row.at_ms), state: decode(JSON.parse(row.state) as Tagged) as S };
  }

  async save(taskId: string, checkpoint: { taskId: string; state: S; currentNode: string; timestamp: Date }, options?: { parentId?: string }): Promise<string> {
    nonEmpty(taskId, "taskId");
    if (typeof checkpoint !== "object" || checkpoint === null) throw new CheckpointStoreError("BAD_INPUT", "checkpoint must be an object");
    if (checkpoint.taskId !== taskId) throw new CheckpointStoreError("BAD_INPUT", "checkpoint.taskId must be the taskId it is saved under");
    nonEmpty(checkpoint.currentNode, "checkpoint.currentNode");
    if (!(checkpoint.timestamp instanceof Date) || Number.isNaN(checkpoint.timestamp.getTime())) throw new CheckpointStoreError("BAD_INPUT", "checkpoint.timestamp must be a valid Date");
    const parentId = options?.parentId === undefined ? undefined : nonEmpty(options.parentId, "options.parentId");
    const state = JSON.stringify(encode(checkpoint.state));
    const id = randomUUID();
    const write = this.db.transaction(() => {
      let parent: string | null;
      if (parentId !== undefined) {
        const found = this.db.prepare("SELECT 1 FROM task_checkpoint WHERE task = ? AND id = ?").get(taskId, parentId);
        if (!found) throw new CheckpointStoreError("UNKNOWN_PARENT", `task ${taskId} has no checkpoint ${parentId}`);
        parent = parentId;
      } else {
        const head = this.db.prepare("SELECT id, node FROM task_checkpoint WHERE task = ? ORDER BY pos DESC LIMIT 1").get(taskId) as { id: string; node: string } | undefined;
        if (head?.node === END) throw new CheckpointStoreError("FINISHED", `task ${taskId} is finished; give parentId to resume it from an earlier checkpoint`);
        parent = head?.id ?? null;
      }
      this.db.prepare("INSERT INTO task_checkpoint (id, task, parent, node, at_ms, state) VALUES (?, ?, ?, ?, ?, ?)").run(id, taskId, parent, checkpoint.currentNode, checkpoint.timestamp.getTime(), state);
    });
    write.immediate();
    return id;
  }

  async load(taskId: string, checkpointId?: string) {
    nonEmpty(taskId, "taskId");
    if (checkpointId === undefined) return this.out(this.db.prepare("SELECT * FROM task_checkpoint WHERE task = ? ORDER BY pos DESC LIMIT 1").get(taskId) as Row | undefined);
    return this.out(this.db.prepare("SELECT * FROM task_checkpoint WHERE task = ? AND id = ?").get(taskId, nonEmpty(checkpointId, "checkpointId")) as Row | undefined);
  }

  async list(taskId: string, options?: { limit?: number }) {
    nonEmpty(taskId, "taskId");
    const limit = options?.limit;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new CheckpointStoreError("BAD_INPUT", "limit must be a positive integer");
    const rows = this.db.prepare("SELECT * FROM task_checkpoint WHERE task = ? ORDER BY pos DESC LIMIT ?").all(taskId, limit ?? -1) as Row[];
    return rows.map((row) => this.out(row)!);
  }

  async delete(taskId: string): Promise<void> {
    this.db.prepare("DELETE FROM task_checkpoint WHERE task = ?").run(nonEmpty(taskId, "taskId"));
  }

  close(): void {
    this.db.close();
  }
}
