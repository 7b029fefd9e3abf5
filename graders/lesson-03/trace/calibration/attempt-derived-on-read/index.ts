/**
 * Calibration answer: an alternative correct design: no attempt column at all; entries() derives each entry's attempt from the order of the task's rows (each node_start of a step opens its next attempt), with explicit BEGIN IMMEDIATE / COMMIT and a per-task totals table.
 */
export { SqliteCheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError } from "./trace-store.ts";
