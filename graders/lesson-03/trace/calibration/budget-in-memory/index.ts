/**
 * Calibration answer: the budget is a per-task counter in process memory, so a resumed process starts from zero and the task ends over its cap.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
