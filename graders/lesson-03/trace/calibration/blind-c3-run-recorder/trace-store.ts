/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: a plain append-only table; SQLite itself measures every payload
 * (length(CAST(data AS BLOB)) is the UTF-8 byte length of the stored JSON text), so no size
 * column can drift from what is in the file. append() runs in a BEGIN IMMEDIATE transaction:
 * it sums the task's kept payloads, drops victims one at a time (tool_result first, oldest first)
 * until the new payload fits, and inserts. The graph side (TraceRun in graph.ts) owns step and
 * attempt numbering and asks the store only once per invoke: how often the run's first step started.
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

const TYPES = new Set<string>(["node_start", "node_end", "tool_call", "tool_result"]);
const DEFAULT_MAX = 1_000_000;

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly write: (entry: Omit<TraceEntry, "seq" | "dropped">) => void;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max: unknown = options.maxDataBytes === undefined ? DEFAULT_MAX : options.maxDataBytes;
    if (!Number.isSafeInteger(max) || (max as number) < 1) {
      throw new TraceStoreError("BAD_INPUT", "maxDataBytes must be a positive integer");
    }
    this.maxDataBytes = max as number;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_entry (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,
        step INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,
        dropped INTEGER NOT NULL DEFAULT 0, data TEXT);
      CREATE INDEX IF NOT EXISTS trace_entry_task ON trace_entry (task, seq);
      CREATE INDEX IF NOT EXISTS trace_entry_node ON trace_entry (task, node, seq);`);
    const used = this.db.prepare(
      "SELECT COALESCE(SUM(length(CAST(data AS BLOB))), 0) FROM trace_entry WHERE task = ? AND dropped = 0",
    ).pluck();
    const victim = this.db.prepare(
      `SELECT seq, length(CAST(data AS BLOB)) AS size FROM trace_entry WHERE task = ? AND dropped = 0
       ORDER BY CASE kind WHEN 'tool_result' THEN 0 ELSE 1 END, seq LIMIT 1`,
    );
    const dropOne = this.db.prepare("UPDATE trace_entry SET dropped = 1, data = NULL WHERE seq = ?");
    const insert = this.db.prepare(
      "INSERT INTO trace_entry (task, node, kind, step, attempt, at_ms, dropped, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const tx = this.db.transaction((e: Omit<TraceEntry, "seq" | "dropped">) => {
      const json = JSON.stringify(e.data) ?? "null";
      const size = Buffer.byteLength(json, "utf8");
      const at = e.timestamp.getTime();
      if (size > this.maxDataBytes) {
        insert.run(e.taskId, e.nodeId, e.type, e.step, e.attempt, at, 1, null);
        return;
      }
      let total = used.get(e.taskId) as number;
      while (total + size > this.maxDataBytes) {
        const v = victim.get(e.taskId) as { seq: number; size: number } | undefined;
        if (!v) break;
        dropOne.run(v.seq);
        total -= v.size;
      }
      insert.run(e.taskId, e.nodeId, e.type, e.step, e.attempt, at, 0, json);
    });
    this.write = (e) => tx.immediate(e);
  }

  /** How many times this task's step has started (its node_start entries in the file). */
  async starts(taskId: string, step: number): Promise<number> {
    return this.db
      .prepare("SELECT COUNT(*) FROM trace_entry WHERE task = ? AND step = ? AND kind = 'node_start'")
      .pluck()
      .get(taskId, step) as number;
  }

  /** Appends one entry, committed before the promise resolves, within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    if (!TYPES.has(entry.type)) throw new TraceStoreError("BAD_INPUT", `unknown type ${String(entry.type)}`);
    this.write(entry);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || !taskId) throw new TraceStoreError("BAD_INPUT", "task id must be a non-empty string");
    const { nodeId, type } = filter as { nodeId?: unknown; type?: unknown };
    if (nodeId !== undefined && (typeof nodeId !== "string" || !nodeId)) throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (type !== undefined && (typeof type !== "string" || !TYPES.has(type))) throw new TraceStoreError("BAD_INPUT", "type must be one of the four entry types");
    const rows = this.db
      .prepare(
        `SELECT seq, task, node, kind, step, attempt, at_ms, dropped, data FROM trace_entry
         WHERE task = @task AND (@node IS NULL OR node = @node) AND (@kind IS NULL OR kind = @kind) ORDER BY seq`,
      )
      .all({ task: taskId, node: nodeId ?? null, kind: type ?? null }) as {
      seq: number; task: string; node: string; kind: TraceType; step: number; attempt: number; at_ms: number; dropped: number; data: string | null;
    }[];
    return rows.map((r) => ({
      seq: r.seq, taskId: r.task, nodeId: r.node, type: r.kind, step: r.step, attempt: r.attempt,
      data: r.dropped ? null : JSON.parse(r.data ?? "null"), dropped: r.dropped === 1, timestamp: new Date(r.at_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
