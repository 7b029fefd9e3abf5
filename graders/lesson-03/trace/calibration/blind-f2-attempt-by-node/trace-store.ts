/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: one table, one row per entry, with the payload's UTF-8 byte size stored beside it
 * (0 once dropped). The budget is enforced by one set-based UPDATE inside the append's
 * BEGIN IMMEDIATE transaction: the task's kept payloads are ranked in drop order (tool_result
 * first, then the rest, oldest first within each) and a window SUM picks the shortest prefix of
 * that ranking whose bytes make room for the new payload. The graph asks the store for a node's
 * attempt (how many times the node has started in the task + 1) before it writes the node_start.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

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

const TYPES: readonly TraceType[] = ["node_start", "node_end", "tool_call", "tool_result"];

interface Row {
  seq: number;
  task_id: string;
  node_id: string;
  type: TraceType;
  step: number;
  attempt: number;
  at: string;
  dropped: number;
  data: string | null;
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly max: number;
  private readonly appendTx: (e: Omit<TraceEntry, "seq" | "dropped">, json: string, bytes: number) => void;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    if ("maxDataBytes" in options && options.maxDataBytes !== undefined) {
      const m: unknown = options.maxDataBytes;
      if (typeof m !== "number" || !Number.isInteger(m) || m <= 0 || !Number.isFinite(m)) {
        throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer (got ${JSON.stringify(m)})`);
      }
    }
    this.max = options.maxDataBytes ?? 1_000_000;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS trace (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('node_start','node_end','tool_call','tool_result')),
        step INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        data TEXT,
        bytes INTEGER NOT NULL,
        dropped INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS trace_by_task ON trace (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_by_node ON trace (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_by_step ON trace (task_id, step, type);`);
    const kept = this.db.prepare("SELECT COALESCE(SUM(bytes), 0) FROM trace WHERE task_id = ? AND dropped = 0").pluck();
    // Rank the kept payloads in drop order; drop each one whose predecessors in that order
    // have not yet freed `need` bytes (the shortest prefix that frees at least `need`).
    const drop = this.db.prepare(`
      UPDATE trace SET data = NULL, bytes = 0, dropped = 1
      WHERE seq IN (
        SELECT seq FROM (
          SELECT seq, SUM(bytes) OVER (ORDER BY (type = 'tool_result') DESC, seq ROWS UNBOUNDED PRECEDING) - bytes AS freed_before
          FROM trace WHERE task_id = @task AND dropped = 0)
        WHERE freed_before < @need)`);
    const insert = this.db.prepare(`INSERT INTO trace (task_id, node_id, type, step, attempt, at, data, bytes, dropped)
      VALUES (@taskId, @nodeId, @type, @step, @attempt, @at, @data, @bytes, @dropped)`);
    const tx = this.db.transaction((e: Omit<TraceEntry, "seq" | "dropped">, json: string, bytes: number) => {
      const row = { taskId: e.taskId, nodeId: e.nodeId, type: e.type, step: e.step, attempt: e.attempt, at: e.timestamp.toISOString() };
      if (bytes > this.max) {
        insert.run({ ...row, data: null, bytes: 0, dropped: 1 });
        return;
      }
      const need = (kept.get(e.taskId) as number) + bytes - this.max;
      if (need > 0) drop.run({ task: e.taskId, need });
      insert.run({ ...row, data: json, bytes, dropped: 0 });
    });
    this.appendTx = (e, json, bytes) => tx.immediate(e, json, bytes);
  }

  /** The attempt a node that starts now has: 1 + how many times this node has started in this task. */
  async nextAttempt(taskId: string, nodeId: string): Promise<number> {
    const started = this.db
      .prepare("SELECT COUNT(*) FROM trace WHERE task_id = ? AND node_id = ? AND type = 'node_start'")
      .pluck()
      .get(taskId, nodeId) as number;
    return started + 1;
  }

  /** Appends one entry; the row is committed (and the budget kept) before the promise resolves. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", `unknown entry type ${String(entry.type)}`);
    const json = JSON.stringify(entry.data === undefined ? null : entry.data);
    this.appendTx(entry, json, Buffer.byteLength(json, "utf8"));
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId.length === 0) throw new TraceStoreError("BAD_INPUT", "entries() needs a non-empty task id");
    const f = (filter ?? {}) as { nodeId?: unknown; type?: unknown };
    let sql = "SELECT seq, task_id, node_id, type, step, attempt, at, dropped, data FROM trace WHERE task_id = @taskId";
    const params: Record<string, unknown> = { taskId };
    if (f.nodeId !== undefined) {
      if (typeof f.nodeId !== "string" || f.nodeId.length === 0) throw new TraceStoreError("BAD_INPUT", "nodeId filter must be a non-empty string");
      sql += " AND node_id = @nodeId";
      params.nodeId = f.nodeId;
    }
    if (f.type !== undefined) {
      if (typeof f.type !== "string" || !TYPES.includes(f.type as TraceType)) throw new TraceStoreError("BAD_INPUT", `type filter must be one of ${TYPES.join(", ")}`);
      sql += " AND type = @type";
      params.type = f.type;
    }
    const rows = this.db.prepare(sql + " ORDER BY seq").all(params) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.data === null ? null : JSON.parse(r.data),
      dropped: r.dropped !== 0,
      timestamp: new Date(r.at),
    }));
  }

  close(): void {
    this.db.close();
  }
}
