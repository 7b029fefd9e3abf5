/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 * The method names below are the ones the grader calls (constructor, entries, close); how the
 * graph hands entries over (append, and anything else) is yours to design.
 *
 * Design: the store, not the graph, owns every number of an entry that depends on the file.
 * - seq: INTEGER PRIMARY KEY AUTOINCREMENT, assigned by the insert.
 * - attempt: computed by the INSERT ... SELECT itself. A node_start gets 1 + the node_start
 *   entries already in the file for its (task, step); any other entry gets the attempt of its
 *   step's latest node_start. The graph hands over no attempt, so no process can get it wrong.
 * - the payload is stored as a BLOB of the UTF-8 bytes of JSON.stringify(data), so SQLite's
 *   length() is the contract's byte size and the budget is SUM(length(data)) over the task's
 *   rows; a dropped payload is a NULL blob (the space is freed, the row stays).
 * Each append is one BEGIN IMMEDIATE transaction: read the budget, drop what must go, insert.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

const TYPES: readonly string[] = ["node_start", "node_end", "tool_call", "tool_result"];

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

/** What the graph hands over: the store assigns seq, attempt and dropped. */
export type NewTraceEntry = Omit<TraceEntry, "seq" | "dropped" | "attempt">;

interface Row {
  seq: number;
  task_id: string;
  node_id: string;
  type: TraceType;
  step: number;
  attempt: number;
  data: Buffer | null;
  ts_ms: number;
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly appendTx: Database.Transaction<(entry: NewTraceEntry) => number>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const { maxDataBytes = 1_000_000 } = options;
    if (!Number.isSafeInteger(maxDataBytes) || maxDataBytes <= 0) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, not ${String(maxDataBytes)}`);
    }
    this.maxDataBytes = maxDataBytes;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        type TEXT NOT NULL,
        step INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        data BLOB,
        ts_ms INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS trace_log_task ON trace_log (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_log_task_node ON trace_log (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_log_task_step ON trace_log (task_id, step, type, attempt);
    `);

    const used = this.db.prepare("SELECT COALESCE(SUM(length(data)), 0) AS used FROM trace_log WHERE task_id = ?").pluck();
    const candidates = this.db
      .prepare(
        `SELECT seq, length(data) AS bytes FROM trace_log WHERE task_id = ? AND data IS NOT NULL
         ORDER BY type <> 'tool_result', seq`,
      )
      .raw();
    const dropAll = this.db.prepare("UPDATE trace_log SET data = NULL WHERE seq IN (SELECT value FROM json_each(?))");
    const insert = this.db.prepare(
      `INSERT INTO trace_log (task_id, node_id, type, step, attempt, data, ts_ms)
       SELECT :task, :node, :type, :step,
         CASE WHEN :type = 'node_start'
           THEN 1 + (SELECT COUNT(*) FROM trace_log WHERE task_id = :task AND step = :step AND type = 'node_start')
           ELSE COALESCE((SELECT MAX(attempt) FROM trace_log WHERE task_id = :task AND step = :step AND type = 'node_start'), 1)
         END,
         :data, :ts
       RETURNING attempt`,
    );

    this.appendTx = this.db.transaction((entry: NewTraceEntry): number => {
      const bytes = Buffer.from(JSON.stringify(entry.data) ?? "null", "utf8");
      let keep: Buffer | null = bytes;
      if (bytes.length > this.maxDataBytes) {
        keep = null; // larger than the whole cap: dropping everything older would not make it fit
      } else {
        let over = (used.get(entry.taskId) as number) + bytes.length - this.maxDataBytes;
        if (over > 0) {
          const victims: number[] = [];
          for (const [seq, size] of candidates.iterate(entry.taskId) as IterableIterator<[number, number]>) {
            victims.push(seq);
            over -= size;
            if (over <= 0) break;
          }
          dropAll.run(JSON.stringify(victims));
        }
      }
      const row = insert.get({
        task: entry.taskId,
        node: entry.nodeId,
        type: entry.type,
        step: entry.step,
        data: keep,
        ts: entry.timestamp.getTime(),
      }) as { attempt: number };
      return row.attempt;
    });
  }

  /** Appends one entry, committed before the promise resolves; resolves with the attempt it was given. */
  async append(entry: NewTraceEntry): Promise<number> {
    return this.appendTx.immediate(entry);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "entries() needs a non-empty task id");
    const { nodeId, type } = filter ?? {};
    if (nodeId !== undefined && (typeof nodeId !== "string" || nodeId === "")) {
      throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
    }
    if (type !== undefined && !TYPES.includes(type)) {
      throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${TYPES.join(", ")}`);
    }
    // NULL parameters mean "no filter"; every comparison is =, never LIKE.
    const rows = this.db
      .prepare(
        `SELECT seq, task_id, node_id, type, step, attempt, data, ts_ms FROM trace_log
         WHERE task_id = :task AND (:node IS NULL OR node_id = :node) AND (:type IS NULL OR type = :type)
         ORDER BY seq`,
      )
      .all({ task: taskId, node: nodeId ?? null, type: type ?? null }) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.data === null ? null : (JSON.parse(r.data.toString("utf8")) as unknown),
      dropped: r.data === null,
      timestamp: new Date(r.ts_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
