/**
 * Entries and their payloads in two tables; a budget row per task holds the bytes it keeps.
 * Dropping a payload deletes its row in `payloads` and lowers the budget, in the same
 * transaction as the append that needed the room.
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
  constructor(
    readonly code: "BAD_INPUT",
    message: string,
  ) {
    super(message);
  }
}

export interface StepLog {
  readonly attempt: number;
  record(type: Exclude<TraceType, "node_start">, data: unknown): Promise<void>;
}

const TYPES = ["node_start", "node_end", "tool_call", "tool_result"];

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly cap: number;

  constructor(file: string, options: { maxDataBytes?: number } = {}) {
    const cap = options.maxDataBytes ?? 1_000_000;
    if (!Number.isSafeInteger(cap) || (cap as number) <= 0) throw new TraceStoreError("BAD_INPUT", `maxDataBytes: expected a positive integer, got ${JSON.stringify(cap) ?? String(cap)}`);
    this.cap = cap;
    this.db = new Database(file, { timeout: 15_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, node TEXT NOT NULL,
        type TEXT NOT NULL, step INTEGER NOT NULL, attempt INTEGER NOT NULL, ts INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS events_task_node ON events (task, node, seq);
      CREATE TABLE IF NOT EXISTS payloads (seq INTEGER PRIMARY KEY, task TEXT NOT NULL, json TEXT NOT NULL, bytes INTEGER NOT NULL, result INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS payloads_task ON payloads (task, result, seq);
      CREATE TABLE IF NOT EXISTS budget (task TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
    `);
  }

  /** Records node_start of a step's next attempt and returns the log for the rest of that attempt. */
  async beginStep(taskId: string, nodeId: string, step: number, state: unknown): Promise<StepLog> {
    const attempt = this.db.transaction(() => {
      const earlier = this.db.prepare("SELECT COUNT(*) FROM events WHERE task = ? AND step = ? AND type = 'node_start'").pluck().get(taskId, step) as number;
      this.insert(taskId, nodeId, "node_start", step, earlier + 1, state);
      return earlier + 1;
    }).immediate();
    return {
      attempt,
      record: async (type, data) => {
        this.db.transaction(() => this.insert(taskId, nodeId, type, step, attempt, data)).immediate();
      },
    };
  }

  private insert(task: string, node: string, type: TraceType, step: number, attempt: number, data: unknown): void {
    const json = JSON.stringify(data ?? null);
    const bytes = Buffer.from(json, "utf8").length;
    const seq = Number(this.db.prepare("INSERT INTO events (task, node, type, step, attempt, ts) VALUES (?, ?, ?, ?, ?, ?)").run(task, node, type, step, attempt, Date.now()).lastInsertRowid);
    if (bytes > this.cap) return; // larger than the whole budget: never stored
    let kept = (this.db.prepare("SELECT bytes FROM budget WHERE task = ?").pluck().get(task) as number | undefined) ?? 0;
    while (kept + bytes > this.cap) {
      const oldest = this.db.prepare("SELECT seq, bytes FROM payloads WHERE task = ? ORDER BY result DESC, seq LIMIT 1").get(task) as { seq: number; bytes: number };
      this.db.prepare("DELETE FROM payloads WHERE seq = ?").run(oldest.seq);
      kept -= oldest.bytes;
    }
    this.db.prepare("INSERT INTO payloads (seq, task, json, bytes, result) VALUES (?, ?, ?, ?, ?)").run(seq, task, json, bytes, type === "tool_result" ? 1 : 0);
    this.db.prepare("INSERT INTO budget (task, bytes) VALUES (?, ?) ON CONFLICT (task) DO UPDATE SET bytes = excluded.bytes").run(task, kept + bytes);
  }

  async entries(taskId: string, filter: { nodeId?: string; type?: TraceType } = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || !taskId) throw new TraceStoreError("BAD_INPUT", "entries(taskId): taskId must be a non-empty string");
    const { nodeId, type } = filter;
    if (nodeId !== undefined && (typeof nodeId !== "string" || !nodeId)) throw new TraceStoreError("BAD_INPUT", "entries(): filter.nodeId must be a non-empty string");
    if (type !== undefined && !TYPES.includes(type)) throw new TraceStoreError("BAD_INPUT", `entries(): filter.type must be one of ${TYPES.join(" / ")}`);
    const where = ["e.task = ?"];
    const args: string[] = [taskId];
    if (nodeId !== undefined) where.push("e.node = ?"), args.push(nodeId);
    if (type !== undefined) where.push("e.type = ?"), args.push(type);
    const rows = this.db
      .prepare(`SELECT e.seq, e.task, e.node, e.type, e.step, e.attempt, e.ts, p.json FROM events e LEFT JOIN payloads p ON p.seq = e.seq WHERE ${where.join(" AND ")} ORDER BY e.seq`)
      .all(...args) as Array<{ seq: number; task: string; node: string; type: TraceType; step: number; attempt: number; ts: number; json: string | null }>;
    return rows.map((r) => ({ seq: r.seq, taskId: r.task, nodeId: r.node, type: r.type, step: r.step, attempt: r.attempt, data: r.json === null ? null : JSON.parse(r.json), dropped: r.json === null, timestamp: new Date(r.ts) }));
  }

  close(): void {
    this.db.close();
  }
}
