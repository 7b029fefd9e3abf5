/**
 * Calibration answer: attempt 2 is given to the first step of every resumed invoke(), also when the crash came right after a checkpoint (nothing was redone), and a second crash in the same step still gives 2.
 */
export { SqliteCheckpointStore, type Checkpoint, type CheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph, type NodeContext, type NodeFn, type Router, type State, type ToolFn } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError, type TraceEntry, type TraceFilter, type TraceStoreOptions, type TraceType } from "./trace-store.ts";
