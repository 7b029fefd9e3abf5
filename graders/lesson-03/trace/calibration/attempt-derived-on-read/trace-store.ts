/**
 * A plain append-only log without an attempt column: the attempt of an entry is derived when the
 * trace is read, from the order of the task's rows (each node_start of a step opens that step's
 * next attempt). Writes use explicit BEGIN IMMEDIATE / COMMIT; a per-task byte total lives in its
 * own table and changes in the same transaction as the rows it counts.
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
  override readonly name = "TraceStoreError";
  readonly code = "BAD_INPUT" as const;
}

const nonEmpty = (value: unknown): value is string => typeof value === "string" && value !== "";

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly budget: number;

  constructor(file: string, { maxDataBytes = 1_000_000 }: { maxDataBytes?: number } = {}) {
    if (typeof maxDataBytes !== "number" || !Number.isInteger(maxDataBytes) || maxDataBytes <= 0) {
      throw new TraceStoreError(`maxDataBytes has to be a positive integer (bytes per task), not ${JSON.stringify(maxDataBytes) ?? String(maxDataBytes)}`);
    }
    this.budget = maxDataBytes;
    this.db = new Database(file, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,
        step INTEGER NOT NULL, doc TEXT, doc_size INTEGER NOT NULL, at TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS rows_task ON rows (task, n);
      CREATE TABLE IF NOT EXISTS totals (task TEXT PRIMARY KEY, kept INTEGER NOT NULL DEFAULT 0);`);
  }

  async add(taskId: string, nodeId: string, step: number, kind: TraceType, data: unknown): Promise<void> {
    const doc = JSON.stringify(data ?? null);
    const size = Buffer.byteLength(doc);
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const fits = size <= this.budget;
      if (fits) {
        this.db.prepare("INSERT OR IGNORE INTO totals (task, kept) VALUES (?, 0)").run(taskId);
        let kept = this.db.prepare("SELECT kept FROM totals WHERE task = ?").pluck().get(taskId) as number;
        while (kept + size > this.budget) {
          const victim =
            (this.db.prepare("SELECT n, doc_size FROM rows WHERE task = ? AND doc IS NOT NULL AND kind = 'tool_result' ORDER BY n LIMIT 1").get(taskId) as { n: number; doc_size: number } | undefined) ??
            (this.db.prepare("SELECT n, doc_size FROM rows WHERE task = ? AND doc IS NOT NULL ORDER BY n LIMIT 1").get(taskId) as { n: number; doc_size: number });
          this.db.prepare("UPDATE rows SET doc = NULL WHERE n = ?").run(victim.n);
          kept -= victim.doc_size;
        }
        this.db.prepare("UPDATE totals SET kept = ? WHERE task = ?").run(kept + size, taskId);
      }
      this.db.prepare("INSERT INTO rows (task, node, kind, step, doc, doc_size, at) VALUES (?, ?, ?, ?, ?, ?, ?)").run(taskId, nodeId, kind, step, fits ? doc : null, size, new Date().toISOString());
      this.db.exec("COMMIT");
    } catch (error) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw error;
    }
  }

  async entries(taskId: string, filter: { nodeId?: string; type?: TraceType } = {}): Promise<TraceEntry[]> {
    if (!nonEmpty(taskId)) throw new TraceStoreError("entries(): the task id must be a non-empty string");
    if (filter.nodeId !== undefined && !nonEmpty(filter.nodeId)) throw new TraceStoreError("entries(): filter.nodeId must be a non-empty string");
    if (filter.type !== undefined && !["node_start", "node_end", "tool_call", "tool_result"].includes(filter.type)) throw new TraceStoreError(`entries(): no entry type called ${String(filter.type)}`);
    const rows = this.db.prepare("SELECT n, node, kind, step, doc, at FROM rows WHERE task = ? ORDER BY n").all(taskId) as Array<{ n: number; node: string; kind: TraceType; step: number; doc: string | null; at: string }>;
    const started = new Map<number, number>();
    const all: TraceEntry[] = [];
    for (const row of rows) {
      if (row.kind === "node_start") started.set(row.step, (started.get(row.step) ?? 0) + 1);
      all.push({ seq: row.n, taskId, nodeId: row.node, type: row.kind, step: row.step, attempt: started.get(row.step) ?? 1, data: row.doc === null ? null : JSON.parse(row.doc), dropped: row.doc === null, timestamp: new Date(row.at) });
    }
    return all.filter((e) => (filter.nodeId === undefined || e.nodeId === filter.nodeId) && (filter.type === undefined || e.type === filter.type));
  }

  close(): void {
    this.db.close();
  }
}
