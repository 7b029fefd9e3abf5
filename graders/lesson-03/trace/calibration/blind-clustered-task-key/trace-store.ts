/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: the entries table is a WITHOUT ROWID table clustered on (task_id, seq), so one task's
 * trace sits together in the B-tree and entries(taskId) is a single range scan in append order.
 * seq is global, not per task: a one-row counter (`trace_seq`) is bumped with UPDATE ... RETURNING
 * inside the same BEGIN IMMEDIATE transaction as the insert, so it grows with every append in every
 * process and never depends on a clock. A dropped payload is a NULL `data` (a kept JSON null is
 * the text 'null'), and the task's kept bytes are a SUM over a partial index of kept rows, read in
 * the write transaction.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

const TYPES = new Set<string>(["node_start", "node_end", "tool_call", "tool_result"]);

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
}

const bad = (message: string) => new TraceStoreError("BAD_INPUT", message);

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly cap: number;
  private readonly write: Database.Transaction<(e: Omit<TraceEntry, "seq" | "dropped">, text: string, bytes: number) => number>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const { maxDataBytes = 1_000_000 } = options ?? {};
    if (typeof maxDataBytes !== "number" || !Number.isInteger(maxDataBytes) || maxDataBytes <= 0) {
      throw bad(`maxDataBytes must be a positive integer (got ${String(maxDataBytes)})`);
    }
    this.cap = maxDataBytes;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_seq (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
      INSERT OR IGNORE INTO trace_seq (id, last) VALUES (1, 0);
      CREATE TABLE IF NOT EXISTS trace (
        task_id TEXT    NOT NULL,
        seq     INTEGER NOT NULL,
        node_id TEXT    NOT NULL,
        type    TEXT    NOT NULL CHECK (type IN ('node_start', 'node_end', 'tool_call', 'tool_result')),
        step    INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        ts_ms   INTEGER NOT NULL,
        bytes   INTEGER NOT NULL,
        data    TEXT,              -- JSON text; NULL = payload dropped
        PRIMARY KEY (task_id, seq)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS trace_by_node ON trace (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_by_step ON trace (task_id, step) WHERE type = 'node_start';
      CREATE INDEX IF NOT EXISTS trace_kept_results ON trace (task_id, seq) WHERE data IS NOT NULL AND type = 'tool_result';
      CREATE INDEX IF NOT EXISTS trace_kept ON trace (task_id, seq) WHERE data IS NOT NULL;
    `);

    const nextSeq = this.db.prepare("UPDATE trace_seq SET last = last + 1 WHERE id = 1 RETURNING last");
    const used = this.db.prepare("SELECT COALESCE(SUM(bytes), 0) AS n FROM trace WHERE task_id = ? AND data IS NOT NULL");
    const oldestResult = this.db.prepare(
      "SELECT seq, bytes FROM trace WHERE task_id = ? AND data IS NOT NULL AND type = 'tool_result' ORDER BY seq LIMIT 1",
    );
    const oldestAny = this.db.prepare("SELECT seq, bytes FROM trace WHERE task_id = ? AND data IS NOT NULL ORDER BY seq LIMIT 1");
    const drop = this.db.prepare("UPDATE trace SET data = NULL WHERE task_id = ? AND seq = ?");
    const insert = this.db.prepare(
      "INSERT INTO trace (task_id, seq, node_id, type, step, attempt, ts_ms, bytes, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );

    this.write = this.db.transaction((e: Omit<TraceEntry, "seq" | "dropped">, text: string, bytes: number): number => {
      let keep = bytes <= this.cap; // a payload larger than the cap on its own is dropped on arrival
      if (keep) {
        let over = (used.get(e.taskId) as { n: number }).n + bytes - this.cap;
        while (over > 0) {
          const victim = (oldestResult.get(e.taskId) ?? oldestAny.get(e.taskId)) as { seq: number; bytes: number } | undefined;
          if (!victim) {
            keep = false;
            break;
          }
          drop.run(e.taskId, victim.seq);
          over -= victim.bytes;
        }
      }
      const { last } = nextSeq.get() as { last: number };
      insert.run(e.taskId, last, e.nodeId, e.type, e.step, e.attempt, e.timestamp.getTime(), bytes, keep ? text : null);
      return last;
    });
  }

  /** How many node_start entries the file holds for this step of the task (0 for a step never started). */
  async startsOfStep(taskId: string, step: number): Promise<number> {
    const row = this.db.prepare("SELECT COUNT(*) AS n FROM trace WHERE task_id = ? AND step = ? AND type = 'node_start'").get(taskId, step) as { n: number };
    return row.n;
  }

  /** Appends one entry and resolves with its seq once the transaction has committed. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<number> {
    if (typeof entry.taskId !== "string" || entry.taskId.length === 0) throw bad("taskId must be a non-empty string");
    if (typeof entry.nodeId !== "string" || entry.nodeId.length === 0) throw bad("nodeId must be a non-empty string");
    if (!TYPES.has(entry.type)) throw bad(`type must be one of ${[...TYPES].join(", ")}`);
    if (!(entry.timestamp instanceof Date)) throw bad("timestamp must be a Date");
    const text = JSON.stringify(entry.data) ?? "null";
    return this.write.immediate(entry, text, Buffer.byteLength(text, "utf8"));
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId.length === 0) throw bad("taskId must be a non-empty string");
    const { nodeId, type } = filter ?? {};
    if (nodeId !== undefined && (typeof nodeId !== "string" || nodeId.length === 0)) throw bad("filter.nodeId must be a non-empty string");
    if (type !== undefined && !TYPES.has(type)) throw bad(`filter.type must be one of ${[...TYPES].join(", ")}`);
    const where = ["task_id = ?"];
    const args: unknown[] = [taskId];
    if (nodeId !== undefined) {
      where.push("node_id = ?");
      args.push(nodeId);
    }
    if (type !== undefined) {
      where.push("type = ?");
      args.push(type);
    }
    const rows = this.db
      .prepare(`SELECT seq, task_id, node_id, type, step, attempt, ts_ms, data FROM trace WHERE ${where.join(" AND ")} ORDER BY seq`)
      .all(...args) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.data === null ? null : JSON.parse(r.data),
      dropped: r.data === null,
      timestamp: new Date(r.ts_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
