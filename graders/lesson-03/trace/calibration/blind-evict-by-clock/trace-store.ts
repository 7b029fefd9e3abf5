/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: one row per entry in `trace_entries`, seq INTEGER PRIMARY KEY AUTOINCREMENT for append
 * order, indexes on (task_id, seq) and (task_id, node_id, seq). Payload bytes are stored per row;
 * the task's budget is a SUM over its kept rows, read in the same BEGIN IMMEDIATE transaction as
 * the insert, so a resumed process counts what the crashed one kept.
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

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly tx: Database.Transaction<(e: Omit<TraceEntry, "seq" | "dropped">) => void>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options.maxDataBytes === undefined ? 1_000_000 : options.maxDataBytes;
    if (typeof max !== "number" || !Number.isInteger(max) || max <= 0) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, got ${String(max)}`);
    }
    this.maxDataBytes = max;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_entries (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL, node_id TEXT NOT NULL, type TEXT NOT NULL,
        step    INTEGER NOT NULL, attempt INTEGER NOT NULL,
        ts_ms   INTEGER NOT NULL, bytes INTEGER NOT NULL,
        data    TEXT, dropped INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS trace_entries_task ON trace_entries (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_node ON trace_entries (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_age ON trace_entries (task_id, dropped, ts_ms);
    `);
    const used = this.db.prepare("SELECT COALESCE(SUM(bytes), 0) FROM trace_entries WHERE task_id = ? AND dropped = 0").pluck();
    // The oldest kept payload, tool results first.
    const oldest = this.db.prepare(
      `SELECT seq, bytes FROM trace_entries WHERE task_id = ? AND dropped = 0
       ORDER BY (type <> 'tool_result'), ts_ms, seq LIMIT 1`,
    );
    const drop = this.db.prepare("UPDATE trace_entries SET data = NULL, dropped = 1 WHERE seq = ?");
    const insert = this.db.prepare(
      `INSERT INTO trace_entries (task_id, node_id, type, step, attempt, ts_ms, bytes, data, dropped)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.tx = this.db.transaction((e: Omit<TraceEntry, "seq" | "dropped">) => {
      const text = JSON.stringify(e.data) ?? "null";
      const bytes = Buffer.byteLength(text, "utf8");
      const keep = bytes <= this.maxDataBytes; // larger than the whole cap: dropped on arrival
      if (keep) {
        let over = (used.get(e.taskId) as number) + bytes - this.maxDataBytes;
        while (over > 0) {
          const v = oldest.get(e.taskId) as { seq: number; bytes: number } | undefined;
          if (!v) break;
          drop.run(v.seq);
          over -= v.bytes;
        }
      }
      insert.run(e.taskId, e.nodeId, e.type, e.step, e.attempt, e.timestamp.getTime(), bytes, keep ? text : null, keep ? 0 : 1);
    });
  }

  /** The attempt of a step about to start: its node_start entries in the file, plus one. */
  async nextAttempt(taskId: string, step: number): Promise<number> {
    const n = this.db
      .prepare("SELECT COUNT(*) FROM trace_entries WHERE task_id = ? AND step = ? AND type = 'node_start'")
      .pluck()
      .get(taskId, step) as number;
    return n + 1;
  }

  /** Appends one entry, committed before the promise resolves, within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    if (typeof entry.taskId !== "string" || entry.taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (typeof entry.nodeId !== "string" || entry.nodeId === "") throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", `bad type ${String(entry.type)}`);
    this.tx.immediate(entry);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    let sql = "SELECT seq, task_id, node_id, type, step, attempt, ts_ms, data, dropped FROM trace_entries WHERE task_id = ?";
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
