/**
 * Trace store: one row per entry, payload as JSON text, a per-task byte budget enforced when
 * appending.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";
const KINDS = new Set<string>(["node_start", "node_end", "tool_call", "tool_result"]);

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

export interface TraceStoreOptions {
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

interface EntryRow {
  id: number;
  task: string;
  node: string;
  kind: TraceType;
  step: number;
  attempt: number;
  payload: string | null;
  at_ms: number;
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly limit: number;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const limit = options.maxDataBytes === undefined ? 1_000_000 : options.maxDataBytes;
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer number of bytes, not ${String(limit)}`);
    }
    this.limit = limit;
    this.db = new Database(dbPath, { timeout: 20_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS entries (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      task TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,
      step INTEGER NOT NULL, attempt INTEGER NOT NULL,
      payload TEXT, size INTEGER NOT NULL DEFAULT 0, at_ms INTEGER NOT NULL)`);
    this.db.exec("CREATE INDEX IF NOT EXISTS entries_task ON entries (task, id)");
  }

  /** 1 + how many times the step has already started in the file. */
  async attemptFor(taskId: string, step: number): Promise<number> {
    const row = this.db.prepare("SELECT COUNT(*) AS n FROM entries WHERE task = ? AND step = ? AND kind = 'node_start'").get(taskId, step) as { n: number };
    return row.n + 1;
  }

  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    const json = JSON.stringify(entry.data === undefined ? null : entry.data);
    const size = Buffer.byteLength(json, "utf8");
    const write = this.db.transaction(() => {
      const keep = size <= this.limit;
      if (keep) {
        let used = (this.db.prepare("SELECT COALESCE(SUM(size), 0) AS used FROM entries WHERE task = ? AND payload IS NOT NULL").get(entry.taskId) as { used: number }).used;
        while (used + size > this.limit) {
          const victim = (this.db.prepare("SELECT id, size FROM entries WHERE task = ? AND payload IS NOT NULL AND kind = 'tool_result' ORDER BY id LIMIT 1").get(entry.taskId) ??
            this.db.prepare("SELECT id, size FROM entries WHERE task = ? AND payload IS NOT NULL ORDER BY id LIMIT 1").get(entry.taskId)) as { id: number; size: number };
          this.db.prepare("UPDATE entries SET payload = NULL WHERE id = ?").run(victim.id);
          used -= victim.size;
        }
      }
      this.db
        .prepare("INSERT INTO entries (task, node, kind, step, attempt, payload, size, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .run(entry.taskId, entry.nodeId, entry.type, entry.step, entry.attempt, keep ? json : null, size, entry.timestamp.getTime());
    });
    write.immediate();
  }

  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (filter.nodeId !== undefined && (typeof filter.nodeId !== "string" || filter.nodeId === "")) throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
    if (filter.type !== undefined && !KINDS.has(filter.type)) throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${[...KINDS].join(", ")}`);
    let sql = "SELECT id, task, node, kind, step, attempt, payload, at_ms FROM entries WHERE task = ?";
    const params: unknown[] = [taskId];
    if (filter.nodeId !== undefined) {
      sql += " AND node = ?";
      params.push(filter.nodeId);
    }
    if (filter.type !== undefined) {
      sql += " AND kind = ?";
      params.push(filter.type);
    }
    const rows = this.db.prepare(`${sql} ORDER BY id`).all(...params) as EntryRow[];
    return rows.map((r) => ({
      seq: r.id,
      taskId: r.task,
      nodeId: r.node,
      type: r.kind,
      step: r.step,
      attempt: r.attempt,
      data: r.payload === null ? null : JSON.parse(r.payload),
      dropped: r.payload === null,
      timestamp: new Date(r.at_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
