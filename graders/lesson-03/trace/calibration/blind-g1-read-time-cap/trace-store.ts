/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: a plain append-only table; append() is a single committed INSERT, so writes stay as
 * cheap as possible. The cap is applied in entries(): the task's appends are replayed in seq
 * order and payloads are dropped exactly as the append-time policy would (tool_result first,
 * oldest first, oversize on arrival), so every reader sees the same bounded trace. The graph side (TraceRun in graph.ts) owns step and
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
    const insert = this.db.prepare(
      "INSERT INTO trace_entry (task, node, kind, step, attempt, at_ms, dropped, data) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
    );
    const tx = this.db.transaction((e: Omit<TraceEntry, "seq" | "dropped">) => {
      insert.run(e.taskId, e.nodeId, e.type, e.step, e.attempt, e.timestamp.getTime(), JSON.stringify(e.data) ?? "null");
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
    // The budget is applied when the trace is read: replay the task's appends in seq order and
    // drop payloads exactly as an append-time cap would have, then filter.
    const rows = this.db
      .prepare("SELECT seq, task, node, kind, step, attempt, at_ms, data FROM trace_entry WHERE task = ? ORDER BY seq")
      .all(taskId) as { seq: number; task: string; node: string; kind: TraceType; step: number; attempt: number; at_ms: number; data: string }[];
    const kept = new Map<number, number>(); // seq -> bytes, in seq order
    const dropped = new Set<number>();
    let total = 0;
    for (const r of rows) {
      const size = Buffer.byteLength(r.data, "utf8");
      if (size > this.maxDataBytes) {
        dropped.add(r.seq);
        continue;
      }
      while (total + size > this.maxDataBytes && kept.size > 0) {
        let victim: number | undefined;
        for (const [seq] of kept) {
          if (rows.find((x) => x.seq === seq)?.kind === "tool_result") { victim = seq; break; }
        }
        victim ??= kept.keys().next().value as number;
        total -= kept.get(victim)!;
        kept.delete(victim);
        dropped.add(victim);
      }
      kept.set(r.seq, size);
      total += size;
    }
    return rows
      .filter((r) => (nodeId === undefined || r.node === nodeId) && (type === undefined || r.kind === type))
      .map((r) => ({
        seq: r.seq, taskId: r.task, nodeId: r.node, type: r.kind, step: r.step, attempt: r.attempt,
        data: dropped.has(r.seq) ? null : JSON.parse(r.data), dropped: dropped.has(r.seq), timestamp: new Date(r.at_ms),
      }));
  }

  close(): void {
    this.db.close();
  }
}
