/**
 * A trace that looks persistent: it opens the SQLite file and creates a table, but the entries
 * live in a module-level Map, so this process sees a perfect trace and every other process none.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

export interface TraceEntry {
  seq: number;
  taskId: string;
  nodeId: string;
  type: TraceType;
  step: number;
  attempt: number;
  data: unknown;
  dropped: boolean;
  timestamp: Date;
}

export class TraceStoreError extends Error {
  override name = "TraceStoreError";
}

const memory = new Map<string, TraceEntry[]>();
let counter = 0;

export class SqliteTraceStore {
  private readonly db: Database.Database;

  constructor(file: string, options: { maxDataBytes?: number } = {}) {
    const max = options.maxDataBytes ?? 1_000_000;
    if (!Number.isInteger(max) || max <= 0) throw new TraceStoreError(`maxDataBytes must be a positive integer, got ${String(max)}`);
    this.db = new Database(file);
    this.db.exec("CREATE TABLE IF NOT EXISTS trace (id INTEGER PRIMARY KEY, body TEXT)");
  }

  async attemptFor(taskId: string, step: number): Promise<number> {
    return (memory.get(taskId) ?? []).filter((e) => e.step === step && e.type === "node_start").length + 1;
  }

  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    const list = memory.get(entry.taskId) ?? [];
    list.push({ ...entry, data: JSON.parse(JSON.stringify(entry.data ?? null)), seq: ++counter, dropped: false });
    memory.set(entry.taskId, list);
  }

  async entries(taskId: string, filter: { nodeId?: string; type?: TraceType } = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("taskId must be a non-empty string");
    if (filter.nodeId !== undefined && (typeof filter.nodeId !== "string" || filter.nodeId === "")) throw new TraceStoreError("filter.nodeId must be a non-empty string");
    if (filter.type !== undefined && !["node_start", "node_end", "tool_call", "tool_result"].includes(filter.type)) throw new TraceStoreError("filter.type is not an entry type");
    return (memory.get(taskId) ?? []).filter((e) => (filter.nodeId === undefined || e.nodeId === filter.nodeId) && (filter.type === undefined || e.type === filter.type));
  }

  close(): void {
    this.db.close();
  }
}
