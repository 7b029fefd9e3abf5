/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: the skeleton of every entry lives in `trace_entries` and is never touched again except
 * for its `dropped` flag; payloads live apart in `trace_payloads` (one row per kept payload), and a
 * per-task running total of kept payload bytes lives in `trace_budgets`. Dropping a payload is
 * deleting its payload row, flagging its entry and lowering the total, all inside the same
 * BEGIN IMMEDIATE transaction as the insert, so the cap holds across processes and crashes.
 * The attempt of a step is assigned by the store itself when the step's node_start is written
 * (beginStep), in the same transaction that counts the step's earlier node_start entries.
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
  ts_ms: number;
  dropped: number;
  json: string | null;
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly insertTx: (entry: Omit<TraceEntry, "seq" | "dropped">) => void;
  private readonly beginTx: (entry: Omit<TraceEntry, "seq" | "dropped" | "type" | "attempt">) => number;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options.maxDataBytes ?? 1_000_000;
    if (typeof max !== "number" || !Number.isSafeInteger(max) || max <= 0) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, got ${String(options.maxDataBytes)}`);
    }
    this.maxDataBytes = max;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL, node_id TEXT NOT NULL, type TEXT NOT NULL,
        step INTEGER NOT NULL, attempt INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
        dropped INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX IF NOT EXISTS trace_entries_task ON trace_entries (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_node ON trace_entries (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_step ON trace_entries (task_id, step, type);
      CREATE TABLE IF NOT EXISTS trace_payloads (
        seq INTEGER PRIMARY KEY REFERENCES trace_entries (seq),
        task_id TEXT NOT NULL, is_result INTEGER NOT NULL, bytes INTEGER NOT NULL, json TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS trace_payloads_victims ON trace_payloads (task_id, is_result, seq);
      CREATE TABLE IF NOT EXISTS trace_budgets (task_id TEXT PRIMARY KEY, kept_bytes INTEGER NOT NULL);
    `);

    const insEntry = this.db.prepare(
      "INSERT INTO trace_entries (task_id, node_id, type, step, attempt, ts_ms, dropped) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    const insPayload = this.db.prepare("INSERT INTO trace_payloads (seq, task_id, is_result, bytes, json) VALUES (?, ?, ?, ?, ?)");
    const getBudget = this.db.prepare("SELECT kept_bytes FROM trace_budgets WHERE task_id = ?").pluck();
    const setBudget = this.db.prepare(
      "INSERT INTO trace_budgets (task_id, kept_bytes) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET kept_bytes = excluded.kept_bytes",
    );
    const oldestResult = this.db.prepare(
      "SELECT seq, bytes FROM trace_payloads WHERE task_id = ? AND is_result = 1 ORDER BY seq LIMIT 1",
    );
    const oldestAny = this.db.prepare("SELECT seq, bytes FROM trace_payloads WHERE task_id = ? ORDER BY seq LIMIT 1");
    const delPayload = this.db.prepare("DELETE FROM trace_payloads WHERE seq = ?");
    const flagDropped = this.db.prepare("UPDATE trace_entries SET dropped = 1 WHERE seq = ?");
    const countStarts = this.db
      .prepare("SELECT COUNT(*) FROM trace_entries WHERE task_id = ? AND step = ? AND type = 'node_start'")
      .pluck();

    const insert = (entry: Omit<TraceEntry, "seq" | "dropped">): void => {
      const json = JSON.stringify(entry.data) ?? "null";
      const bytes = Buffer.byteLength(json, "utf8");
      let kept = (getBudget.get(entry.taskId) as number | undefined) ?? 0;
      const fits = bytes <= this.maxDataBytes;
      if (fits) {
        while (kept + bytes > this.maxDataBytes) {
          const victim = (oldestResult.get(entry.taskId) ?? oldestAny.get(entry.taskId)) as { seq: number; bytes: number } | undefined;
          if (!victim) break;
          delPayload.run(victim.seq);
          flagDropped.run(victim.seq);
          kept -= victim.bytes;
        }
      }
      const info = insEntry.run(entry.taskId, entry.nodeId, entry.type, entry.step, entry.attempt, entry.timestamp.getTime(), fits ? 0 : 1);
      if (fits) {
        insPayload.run(Number(info.lastInsertRowid), entry.taskId, entry.type === "tool_result" ? 1 : 0, bytes, json);
        kept += bytes;
      }
      setBudget.run(entry.taskId, kept);
    };
    const txInsert = this.db.transaction(insert);
    this.insertTx = (entry) => txInsert.immediate(entry);
    const txBegin = this.db.transaction((entry: Omit<TraceEntry, "seq" | "dropped" | "type" | "attempt">): number => {
      const attempt = (countStarts.get(entry.taskId, entry.step) as number) + 1;
      insert({ ...entry, type: "node_start", attempt });
      return attempt;
    });
    this.beginTx = (entry) => txBegin.immediate(entry);
  }

  /** Append one entry, committed before the promise resolves, within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    this.checkEntry(entry);
    this.insertTx(entry);
  }

  /**
   * Records the node_start of a step and returns its attempt: 1 + the node_start entries this
   * task already has for the step, counted and written in one transaction.
   */
  async beginStep(entry: Omit<TraceEntry, "seq" | "dropped" | "type" | "attempt">): Promise<number> {
    this.checkEntry({ ...entry, type: "node_start", attempt: 1 });
    return this.beginTx(entry);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (filter === null || typeof filter !== "object") throw new TraceStoreError("BAD_INPUT", "filter must be an object");
    const where = ["e.task_id = ?"];
    const params: unknown[] = [taskId];
    if (filter.nodeId !== undefined) {
      if (typeof filter.nodeId !== "string" || filter.nodeId === "") {
        throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
      }
      where.push("e.node_id = ?");
      params.push(filter.nodeId);
    }
    if (filter.type !== undefined) {
      if (!TYPES.includes(filter.type)) throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${TYPES.join(", ")}`);
      where.push("e.type = ?");
      params.push(filter.type);
    }
    const rows = this.db
      .prepare(
        `SELECT e.seq, e.task_id, e.node_id, e.type, e.step, e.attempt, e.ts_ms, e.dropped, p.json
         FROM trace_entries e LEFT JOIN trace_payloads p ON p.seq = e.seq
         WHERE ${where.join(" AND ")} ORDER BY e.seq`,
      )
      .all(...params) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.json === null ? null : JSON.parse(r.json),
      dropped: r.dropped === 1,
      timestamp: new Date(r.ts_ms),
    }));
  }

  close(): void {
    this.db.close();
  }

  private checkEntry(entry: Omit<TraceEntry, "seq" | "dropped">): void {
    if (typeof entry.taskId !== "string" || entry.taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (typeof entry.nodeId !== "string" || entry.nodeId === "") throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", "unknown entry type");
    if (!(entry.timestamp instanceof Date) || Number.isNaN(entry.timestamp.getTime())) {
      throw new TraceStoreError("BAD_INPUT", "timestamp must be a valid Date");
    }
  }
}
