/**
 * Calibration answer: nothing is validated: maxDataBytes 0, -5, 1.5 or "1000" is taken as given and entries("") or a bad filter quietly returns [].
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
