/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: one row per entry, and the entry itself is a JSON document (`doc`), exactly what an
 * operator would read with `jq` or `json_extract`. The keys the queries need (task, node, type,
 * step, kept bytes) are VIRTUAL generated columns computed from the document, indexed, and always
 * compared with `=`. Order is the INTEGER PRIMARY KEY AUTOINCREMENT `seq`, assigned inside the
 * write transaction; the timestamp is only data. Dropping a payload rewrites the document with
 * json_set (data null, dropped true), so the bytes really leave the file.
 *
 * Budget: every append is one BEGIN IMMEDIATE transaction that reads the task's kept bytes
 * (SUM over the generated `kept_bytes` column) from the file, evicts what the policy says, and
 * inserts; it commits before append() resolves.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

const TYPES: readonly TraceType[] = ["node_start", "node_end", "tool_call", "tool_result"];
const DEFAULT_MAX_DATA_BYTES = 1_000_000;

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

/** The document stored per entry (seq lives in the row, not in the document). */
interface Doc {
  taskId: string;
  nodeId: string;
  type: TraceType;
  step: number;
  attempt: number;
  ts: number;
  bytes: number;
  dropped: boolean;
  data: unknown;
}

function payloadBytes(data: unknown): number {
  const text = JSON.stringify(data);
  return text === undefined ? 0 : Buffer.byteLength(text, "utf8");
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly appendTx: Database.Transaction<(doc: Doc) => void>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options.maxDataBytes;
    if (max !== undefined && !(typeof max === "number" && Number.isSafeInteger(max) && max > 0)) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, got ${JSON.stringify(max) ?? String(max)}`);
    }
    this.maxDataBytes = max ?? DEFAULT_MAX_DATA_BYTES;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_docs (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        doc        TEXT NOT NULL CHECK (json_valid(doc)),
        task_id    TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.taskId')) VIRTUAL,
        node_id    TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.nodeId')) VIRTUAL,
        type       TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.type')) VIRTUAL,
        step       INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.step')) VIRTUAL,
        kept_bytes INTEGER GENERATED ALWAYS AS (
          CASE WHEN json_extract(doc, '$.dropped') THEN 0 ELSE json_extract(doc, '$.bytes') END) VIRTUAL
      );
      CREATE INDEX IF NOT EXISTS trace_docs_task ON trace_docs (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_docs_node ON trace_docs (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_docs_step ON trace_docs (task_id, step, type);
    `);

    const used = this.db.prepare("SELECT COALESCE(SUM(kept_bytes), 0) AS used FROM trace_docs WHERE task_id = ?");
    // Drop candidates in policy order: tool_result payloads first, then any type; oldest (by seq) first.
    const victims = this.db.prepare(
      `SELECT seq, kept_bytes FROM trace_docs WHERE task_id = ? AND kept_bytes > 0
       ORDER BY (type <> 'tool_result'), seq LIMIT 64`,
    );
    const drop = this.db.prepare(
      `UPDATE trace_docs SET doc = json_set(doc, '$.data', json('null'), '$.dropped', json('true')) WHERE seq = ?`,
    );
    const insert = this.db.prepare("INSERT INTO trace_docs (doc) VALUES (?)");

    this.appendTx = this.db.transaction((doc: Doc) => {
      if (doc.bytes > this.maxDataBytes) {
        // Larger than the whole cap: dropped on arrival, nothing older is touched.
        doc.dropped = true;
        doc.data = null;
      } else {
        let need = (used.get(doc.taskId) as { used: number }).used + doc.bytes - this.maxDataBytes;
        while (need > 0) {
          const batch = victims.all(doc.taskId) as { seq: number; kept_bytes: number }[];
          if (batch.length === 0) break; // cannot happen: doc.bytes <= cap
          for (const v of batch) {
            drop.run(v.seq);
            need -= v.kept_bytes;
            if (need <= 0) break;
          }
        }
      }
      insert.run(JSON.stringify(doc));
    });
  }

  /** How many times this step of the task has started, plus one: the attempt of a step about to start. */
  async nextAttempt(taskId: string, step: number): Promise<number> {
    const row = this.db
      .prepare("SELECT COUNT(*) AS n FROM trace_docs WHERE task_id = ? AND step = ? AND type = 'node_start'")
      .get(taskId, step) as { n: number };
    return row.n + 1;
  }

  /** Appends one entry, committed (BEGIN IMMEDIATE ... COMMIT) before the promise resolves, within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    if (typeof entry.taskId !== "string" || entry.taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (typeof entry.nodeId !== "string" || entry.nodeId === "") throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", `unknown entry type ${String(entry.type)}`);
    const data = entry.data === undefined ? null : entry.data;
    const doc: Doc = {
      taskId: entry.taskId,
      nodeId: entry.nodeId,
      type: entry.type,
      step: entry.step,
      attempt: entry.attempt,
      ts: entry.timestamp.getTime(),
      bytes: payloadBytes(data),
      dropped: false,
      // Round-trip now so the stored value is the JSON of the moment, not a live reference.
      data: JSON.parse(JSON.stringify(data)),
    };
    this.appendTx.immediate(doc);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId === "") throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    const f = filter ?? {};
    if (typeof f !== "object") throw new TraceStoreError("BAD_INPUT", "filter must be an object");
    let sql = "SELECT seq, doc FROM trace_docs WHERE task_id = ?";
    const args: unknown[] = [taskId];
    if (f.nodeId !== undefined) {
      if (typeof f.nodeId !== "string" || f.nodeId === "") throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
      sql += " AND node_id = ?";
      args.push(f.nodeId);
    }
    if (f.type !== undefined) {
      if (!TYPES.includes(f.type)) throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${TYPES.join(", ")}`);
      sql += " AND type = ?";
      args.push(f.type);
    }
    sql += " ORDER BY seq";
    const rows = this.db.prepare(sql).all(...args) as { seq: number; doc: string }[];
    return rows.map(({ seq, doc }) => {
      const d = JSON.parse(doc) as Doc;
      return {
        seq,
        taskId: d.taskId,
        nodeId: d.nodeId,
        type: d.type,
        step: d.step,
        attempt: d.attempt,
        data: d.dropped ? null : d.data,
        dropped: d.dropped,
        timestamp: new Date(d.ts),
      };
    });
  }

  close(): void {
    this.db.close();
  }
}
