/**
 * A trace log plus a table of step attempts: starting a step bumps its counter with an UPSERT
 * (RETURNING the new count), so the attempt number is whatever the file says. The budget is
 * enforced in JavaScript over the task's kept payload rows, inside the append's transaction.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";
const ALLOWED: ReadonlySet<string> = new Set(["node_start", "node_end", "tool_call", "tool_result"]);

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
  readonly code = "BAD_INPUT";
}

type Row = { seq: number; task_id: string; node_id: string; type: TraceType; step: number; attempt: number; body: string | null; created: number };

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxBytes: number;

  constructor(path: string, options?: { maxDataBytes?: number }) {
    const max = options?.maxDataBytes;
    if (max !== undefined && !(typeof max === "number" && Number.isInteger(max) && max > 0)) throw new TraceStoreError(`maxDataBytes must be a positive whole number of bytes; got ${typeof max} ${String(max)}`);
    this.maxBytes = max ?? 1_000_000;
    this.db = new Database(path, { timeout: 25_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, node_id TEXT NOT NULL, type TEXT NOT NULL,
        step INTEGER NOT NULL, attempt INTEGER NOT NULL, body TEXT, body_bytes INTEGER NOT NULL, created INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS log_task ON log (task_id, seq);
      CREATE TABLE IF NOT EXISTS step_attempts (task_id TEXT NOT NULL, step INTEGER NOT NULL, attempts INTEGER NOT NULL, PRIMARY KEY (task_id, step));
    `);
  }

  async startAttempt(taskId: string, step: number): Promise<number> {
    const row = this.db
      .prepare("INSERT INTO step_attempts (task_id, step, attempts) VALUES (?, ?, 1) ON CONFLICT (task_id, step) DO UPDATE SET attempts = attempts + 1 RETURNING attempts")
      .get(taskId, step) as { attempts: number };
    return row.attempts;
  }

  async write(entry: { taskId: string; nodeId: string; type: TraceType; step: number; attempt: number; data: unknown }): Promise<void> {
    const body = JSON.stringify(entry.data === undefined ? null : entry.data);
    const bytes = new TextEncoder().encode(body).length;
    this.db
      .transaction(() => {
        let stored: string | null = null;
        if (bytes <= this.maxBytes) {
          const kept = this.db.prepare("SELECT seq, type, body_bytes FROM log WHERE task_id = ? AND body IS NOT NULL ORDER BY seq").all(entry.taskId) as Array<{ seq: number; type: string; body_bytes: number }>;
          let total = kept.reduce((sum, k) => sum + k.body_bytes, 0);
          const order = [...kept.filter((k) => k.type === "tool_result"), ...kept.filter((k) => k.type !== "tool_result")];
          const clear = this.db.prepare("UPDATE log SET body = NULL WHERE seq = ?");
          for (const victim of order) {
            if (total + bytes <= this.maxBytes) break;
            clear.run(victim.seq);
            total -= victim.body_bytes;
          }
          stored = body;
        }
        this.db
          .prepare("INSERT INTO log (task_id, node_id, type, step, attempt, body, body_bytes, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
          .run(entry.taskId, entry.nodeId, entry.type, entry.step, entry.attempt, stored, bytes, Date.now());
      })
      .immediate();
  }

  async entries(taskId: string, filter: { nodeId?: string; type?: TraceType } = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId.length === 0) throw new TraceStoreError(`entries() needs a task id (a non-empty string); got ${String(taskId)}`);
    if ("nodeId" in filter && filter.nodeId !== undefined && (typeof filter.nodeId !== "string" || filter.nodeId.length === 0)) throw new TraceStoreError("the nodeId filter must be a non-empty string");
    if (filter.type !== undefined && !ALLOWED.has(filter.type)) throw new TraceStoreError(`unknown entry type ${String(filter.type)} in the filter`);
    const rows = (this.db.prepare("SELECT seq, task_id, node_id, type, step, attempt, body, created FROM log WHERE task_id = ? ORDER BY seq").all(taskId) as Row[]).filter(
      (r) => (filter.nodeId === undefined || r.node_id === filter.nodeId) && (filter.type === undefined || r.type === filter.type),
    );
    return rows.map((r) => ({ seq: r.seq, taskId: r.task_id, nodeId: r.node_id, type: r.type, step: r.step, attempt: r.attempt, data: r.body === null ? null : JSON.parse(r.body), dropped: r.body === null, timestamp: new Date(r.created) }));
  }

  close(): void {
    this.db.close();
  }
}
