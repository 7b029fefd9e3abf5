/**
 * Calibration answer: over the cap the new payload is dropped and the old ones kept: the trace stays bounded and keeps every entry, but the payloads nearest the crash are the ones lost.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
