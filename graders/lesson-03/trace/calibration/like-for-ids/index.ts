/**
 * Calibration answer: task and node ids are matched with LIKE, so matching ignores ASCII case and '_' or '%' in an id are wildcards: task 'a1b' sees 'A1B', 'a1b_' sees 'a1b1'.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
