/**
 * Your trace store: the seed's TraceEntry log on SQLite (see the contract in index.ts).
 * The method names below are the ones the grader calls (constructor, entries, close); how the
 * graph hands entries over (append, and anything else) is yours to design.
 */
import Database from "better-sqlite3";

export type TraceType = "node_start" | "node_end" | "tool_call" | "tool_result";

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

export class SqliteTraceStore {
  private readonly db: Database.Database;

  constructor(dbPath: string, options: TraceStoreOptions = {}) {
    // TODO: validate options.maxDataBytes; WAL and a busy timeout; create your table(s).
    void options;
    this.db = new Database(dbPath);
  }

  /** TODO: append one entry, durably (committed before the promise resolves), within the task's budget. */
  async append(entry: Omit<TraceEntry, "seq" | "dropped">): Promise<void> {
    void entry;
    throw new TraceStoreError("BAD_INPUT", "TODO: implement append()");
  }

  /** TODO: the task's entries in append order; with a filter, only that node's and/or that type's. */
  async entries(taskId: string, filter: TraceFilter = {}): Promise<TraceEntry[]> {
    void taskId;
    void filter;
    throw new TraceStoreError("BAD_INPUT", "TODO: implement entries()");
  }

  close(): void {
    this.db.close();
  }
}
