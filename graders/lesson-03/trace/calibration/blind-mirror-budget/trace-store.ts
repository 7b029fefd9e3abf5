/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: one row per entry, seq INTEGER PRIMARY KEY AUTOINCREMENT, indexes on (task_id, seq) and
 * (task_id, node_id, seq). Every entry is inserted in its own transaction, committed before
 * append() resolves.
 *
 * Budget: scanning a long task's kept payloads on every append is wasteful, so each task's
 * budget is mirrored in memory: the first append for a task in this process loads the task's kept
 * payloads (seq, bytes, type) from the file, so a resumed process starts from what the crashed one
 * kept, and the mirror is then updated with every insert and every drop this process makes.
 * Eviction picks its victims from the mirror in policy order (oldest tool_result first, then the
 * oldest of any type) and writes the drops in the same transaction as the insert.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

const TYPES: readonly string[] = ["node_start", "node_end", "tool_call", "tool_result"];

export interface TraceEntry {
  /** Append order (grows with every entry, across processes). */
  seq: number;
  taskId: string;
  nodeId: string;
  type: TraceType;
  /** The step (node execution) of the task: 1 for the first node run, +1 for each node after it. */
  step: number;
  /** 1 the first time the step runs; 2, 3... when a resume runs it again after a crash cut it short. */
  attempt: number;
  /** node_start: the state; node_end: the update; tool_call: { tool, input }; tool_result: { tool, output }. null once dropped. */
  data: unknown;
  /** True when the payload was dropped to keep the task under maxDataBytes. */
  dropped: boolean;
  timestamp: Date;
}

export interface TraceStoreOptions {
  /** The most payload bytes (UTF-8 bytes of JSON.stringify(data)) one task keeps. Default 1,000,000. */
  maxDataBytes?: number;
}

export interface TraceFilter {
  nodeId?: string;
  type?: TraceType;
}

export class TraceStoreError extends Error {
  override name = "TraceStoreError";
  constructor(
    readonly code: "BAD_INPUT",
    message: string,
  ) {
    super(message);
  }
}

interface Row {
  seq: number;
  task_id: string;
  node_id: string;
  type: TraceType;
  step: number;
  attempt: number;
  ts_ms: number;
  data: string | null;
  dropped: number;
}

interface Kept {
  seq: number;
  bytes: number;
  result: boolean;
}

interface Budget {
  used: number;
  /** Kept payloads in seq order. */
  kept: Kept[];
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly budgets = new Map<string, Budget>();
  private readonly loadKept: Database.Statement;
  private readonly tx: Database.Transaction<(e: Omit<TraceEntry, "seq" | "dropped">, text: string, bytes: number, keep: boolean, victims: Kept[]) => number>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options.maxDataBytes === undefined ? 1_000_000 : options.maxDataBytes;
    if (typeof max !== "number" || !Number.isInteger(max) || max <= 0) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, got ${String(max)}`);
    }
    this.maxDataBytes = max;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL, node_id TEXT NOT NULL, type TEXT NOT NULL,
        step    INTEGER NOT NULL, attempt INTEGER NOT NULL,
        ts_ms   INTEGER NOT NULL, bytes INTEGER NOT NULL,
        data    TEXT, dropped INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS trace_task ON trace (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_node ON trace (task_id, node_id, seq);
    `);
    this.loadKept = this.db.prepare("SELECT seq, bytes, type = 'tool_result' AS result FROM trace WHERE task_id = ? AND dropped = 0 ORDER BY seq");
    const drop = this.db.prepare("UPDATE trace SET data = NULL, dropped = 1 WHERE seq = ?");
    const insert = this.db.prepare(
      `INSERT INTO trace (task_id, node_id, type, step, attempt, ts_ms, bytes, data, dropped)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
    ).pluck();
    this.tx = this.db.transaction((e, text, bytes, keep, victims) => {
      for (const v of victims) drop.run(v.seq);
      return insert.get(e.taskId, e.nodeId, e.type, e.step, e.attempt, e.timestamp.getTime(), bytes, keep ? text : null, keep ? 0 : 1) as number;
    });
  }

  private budget(taskId: string): Budget {
    let b = this.budgets.get(taskId);
    if (!b) {
      const kept = (this.loadKept.all(taskId) as { seq: number; bytes: number; result: number }[]).map((r) => ({ seq: r.seq, bytes: r.bytes, result: r.result === 1 }));
      b = { used: kept.reduce((s, k) => s + k.bytes, 0), kept };
      this.budgets.set(taskId, b);
    }
    return b;
  }

  /** The attempt of a step about to start: its node_start entries in the file, plus one. */
  async nextAttempt(taskId: string, step: number): Promise<number> {
    const n = this.db.prepare("SELECT COUNT(*) FROM trace WHERE task_id = ? AND step = ? AND type = 'node_start'").pluck().get(taskId, step) as number;
    return n + 1;
  }

  /** Appends one entry, committed before the promise resolves, within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    if (typeof entry.taskId !== "string" || entry.taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (typeof entry.nodeId !== "string" || entry.nodeId === "") throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", `bad type ${String(entry.type)}`);
    const text = JSON.stringify(entry.data) ?? "null";
    const bytes = Buffer.byteLength(text, "utf8");
    const b = this.budget(entry.taskId);
    const keep = bytes <= this.maxDataBytes;
    const victims: Kept[] = [];
    if (keep) {
      let over = b.used + bytes - this.maxDataBytes;
      const order = [...b.kept.filter((k) => k.result), ...b.kept.filter((k) => !k.result)];
      for (const k of order) {
        if (over <= 0) break;
        victims.push(k);
        over -= k.bytes;
      }
    }
    const seq = this.tx.immediate(entry, text, bytes, keep, victims);
    // Only after the commit: the mirror follows the file.
    const gone = new Set(victims.map((v) => v.seq));
    b.kept = b.kept.filter((k) => !gone.has(k.seq));
    b.used -= victims.reduce((s, v) => s + v.bytes, 0);
    if (keep) {
      b.kept.push({ seq, bytes, result: entry.type === "tool_result" });
      b.used += bytes;
    }
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    let sql = "SELECT seq, task_id, node_id, type, step, attempt, ts_ms, data, dropped FROM trace WHERE task_id = ?";
    const args: unknown[] = [taskId];
    if (filter.nodeId !== undefined) {
      if (typeof filter.nodeId !== "string" || filter.nodeId === "") throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
      sql += " AND node_id = ?";
      args.push(filter.nodeId);
    }
    if (filter.type !== undefined) {
      if (!TYPES.includes(filter.type)) throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${TYPES.join(", ")}`);
      sql += " AND type = ?";
      args.push(filter.type);
    }
    const rows = this.db.prepare(sql + " ORDER BY seq").all(...args) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.dropped ? null : JSON.parse(r.data as string),
      dropped: r.dropped === 1,
      timestamp: new Date(r.ts_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
