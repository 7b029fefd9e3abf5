/**
 * lesson-03 / trace, reference solution: the tool-call trace of a task, on SQLite, complete and
 * ordered across a crash and a resume, queryable by task and node, bounded per task.
 * The graph and the checkpoint store are the starter's given code; the trace store is
 * trace-store.ts, and its wiring is StateGraph.invoke in graph.ts.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { DEFAULT_MAX_DATA_BYTES, SqliteTraceStore, TraceStoreError, type NewTraceEntry, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
