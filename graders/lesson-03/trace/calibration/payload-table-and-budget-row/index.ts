/**
 * Calibration answer: an alternative correct design: skeletons and payloads in two tables, a budget row per task, and a StepLog per step attempt whose node_start and attempt number are written in one transaction.
 */
export { SqliteCheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError } from "./trace-store.ts";
