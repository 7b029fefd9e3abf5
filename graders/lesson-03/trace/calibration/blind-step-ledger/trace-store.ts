/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 *
 * Design: three tables, each answering one question in O(1) inside the write transaction.
 * - trace_entries: one row per entry; seq is INTEGER PRIMARY KEY AUTOINCREMENT (append order).
 * - trace_steps:   (task_id, step) -> how many times that step has started. startStep() upserts it
 *                  with ON CONFLICT ... DO UPDATE ... RETURNING and inserts node_start in the same
 *                  BEGIN IMMEDIATE transaction, so the attempt and its node_start commit together:
 *                  a crash leaves either both or neither.
 * - trace_tasks:   task_id -> payload bytes the task keeps in the file. Kept in step with every insert
 *                  and every drop in the same transaction, so a resumed or second process reads the
 *                  budget the crashed one left, not a counter in its own memory.
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

type NewEntry = Omit<TraceEntry, "seq" | "dropped">;

interface Row {
  seq: number;
  task_id: string;
  node_id: string;
  type: TraceType;
  step: number;
  attempt: number;
  ts_ms: number;
  payload: string | null;
  dropped: 0 | 1;
}

function isNonEmptyString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0;
}

export class SqliteTraceStore {
  private readonly db: Database.Database;
  private readonly maxDataBytes: number;
  private readonly insertTx: Database.Transaction<(entry: NewEntry) => void>;
  private readonly startTx: Database.Transaction<(entry: Omit<NewEntry, "type" | "attempt">) => number>;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options?.maxDataBytes === undefined ? 1_000_000 : options.maxDataBytes;
    if (typeof max !== "number" || !Number.isSafeInteger(max) || max < 1) {
      throw new TraceStoreError("BAD_INPUT", `maxDataBytes must be a positive integer, not ${typeof max === "string" ? JSON.stringify(max) : String(max)}`);
    }
    this.maxDataBytes = max;
    this.db = new Database(dbPath, { timeout: 30_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace_entries (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id  TEXT    NOT NULL,
        node_id  TEXT    NOT NULL,
        type     TEXT    NOT NULL,
        step     INTEGER NOT NULL,
        attempt  INTEGER NOT NULL,
        ts_ms    INTEGER NOT NULL,
        size     INTEGER NOT NULL,
        payload  TEXT,
        dropped  INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS trace_entries_task ON trace_entries (task_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_node ON trace_entries (task_id, node_id, seq);
      CREATE INDEX IF NOT EXISTS trace_entries_droppable ON trace_entries (task_id, (type <> 'tool_result'), seq) WHERE dropped = 0;
      CREATE TABLE IF NOT EXISTS trace_steps (
        task_id  TEXT    NOT NULL,
        step     INTEGER NOT NULL,
        starts   INTEGER NOT NULL,
        PRIMARY KEY (task_id, step)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS trace_tasks (
        task_id    TEXT    PRIMARY KEY,
        kept_bytes INTEGER NOT NULL CHECK (kept_bytes >= 0)
      ) WITHOUT ROWID;
    `);

    const budget = this.db.prepare("SELECT kept_bytes FROM trace_tasks WHERE task_id = ?").pluck();
    const setBudget = this.db.prepare(
      "INSERT INTO trace_tasks (task_id, kept_bytes) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET kept_bytes = excluded.kept_bytes",
    );
    const nextVictim = this.db.prepare(
      `SELECT seq, size FROM trace_entries WHERE task_id = ? AND dropped = 0
       ORDER BY (type <> 'tool_result'), seq LIMIT 1`,
    );
    const dropOne = this.db.prepare("UPDATE trace_entries SET payload = NULL, dropped = 1 WHERE seq = ?");
    const insert = this.db.prepare(
      `INSERT INTO trace_entries (task_id, node_id, type, step, attempt, ts_ms, size, payload, dropped)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const countStart = this.db.prepare(
      `INSERT INTO trace_steps (task_id, step, starts) VALUES (?, ?, 1)
       ON CONFLICT (task_id, step) DO UPDATE SET starts = starts + 1 RETURNING starts`,
    ).pluck();

    const insertWithinBudget = (e: NewEntry): void => {
      const text = JSON.stringify(e.data) ?? "null";
      const size = Buffer.byteLength(text, "utf8");
      let kept = ((budget.get(e.taskId) as number | undefined) ?? 0);
      let keep = size <= this.maxDataBytes;
      if (keep) {
        while (kept + size > this.maxDataBytes) {
          const v = nextVictim.get(e.taskId) as { seq: number; size: number } | undefined;
          if (!v) break; // unreachable while size <= cap: the task's kept bytes are all in droppable rows
          dropOne.run(v.seq);
          kept -= v.size;
        }
        kept += size;
      }
      insert.run(e.taskId, e.nodeId, e.type, e.step, e.attempt, e.timestamp.getTime(), size, keep ? text : null, keep ? 0 : 1);
      setBudget.run(e.taskId, kept);
    };

    this.insertTx = this.db.transaction(insertWithinBudget);
    this.startTx = this.db.transaction((e: Omit<NewEntry, "type" | "attempt">): number => {
      const attempt = countStart.get(e.taskId, e.step) as number;
      insertWithinBudget({ ...e, type: "node_start", attempt });
      return attempt;
    });
  }

  private validate(e: Partial<NewEntry>): void {
    if (!isNonEmptyString(e.taskId)) throw new TraceStoreError("BAD_INPUT", "taskId must be a non-empty string");
    if (!isNonEmptyString(e.nodeId)) throw new TraceStoreError("BAD_INPUT", "nodeId must be a non-empty string");
    if (!Number.isSafeInteger(e.step) || (e.step as number) < 1) throw new TraceStoreError("BAD_INPUT", "step must be a positive integer");
    if (!(e.timestamp instanceof Date)) throw new TraceStoreError("BAD_INPUT", "timestamp must be a Date");
  }

  /** Counts a start of this step and records its node_start, atomically; resolves with the attempt. */
  async startStep(entry: Omit<NewEntry, "type" | "attempt">): Promise<number> {
    this.validate(entry);
    return this.startTx.immediate(entry);
  }

  /** Appends one entry (tool_call, tool_result, node_end; or a node_start whose attempt the caller knows), committed before it resolves. */
  async append(entry: NewEntry): Promise<void> {
    this.validate(entry);
    if (!TYPES.includes(entry.type)) throw new TraceStoreError("BAD_INPUT", `type must be one of ${TYPES.join(", ")}`);
    this.insertTx.immediate(entry);
  }

  /** The task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (!isNonEmptyString(taskId)) throw new TraceStoreError("BAD_INPUT", "entries() needs a non-empty task id");
    const f = filter ?? {};
    const conds = ["task_id = ?"];
    const args: unknown[] = [taskId];
    if ("nodeId" in f && f.nodeId !== undefined) {
      if (!isNonEmptyString(f.nodeId)) throw new TraceStoreError("BAD_INPUT", "filter.nodeId must be a non-empty string");
      conds.push("node_id = ?");
      args.push(f.nodeId);
    }
    if ("type" in f && f.type !== undefined) {
      if (!TYPES.includes(f.type)) throw new TraceStoreError("BAD_INPUT", `filter.type must be one of ${TYPES.join(", ")}`);
      conds.push("type = ?");
      args.push(f.type);
    }
    const rows = this.db
      .prepare(`SELECT seq, task_id, node_id, type, step, attempt, ts_ms, payload, dropped FROM trace_entries WHERE ${conds.join(" AND ")} ORDER BY seq`)
      .all(...args) as Row[];
    return rows.map((r) => ({
      seq: r.seq,
      taskId: r.task_id,
      nodeId: r.node_id,
      type: r.type,
      step: r.step,
      attempt: r.attempt,
      data: r.dropped ? null : JSON.parse(r.payload as string),
      dropped: r.dropped === 1,
      timestamp: new Date(r.ts_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
