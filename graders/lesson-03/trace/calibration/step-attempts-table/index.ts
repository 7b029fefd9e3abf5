/**
 * Calibration answer: an alternative correct design: a table of step attempts bumped with an UPSERT ... RETURNING when a step starts, the budget enforced in JavaScript over the kept rows inside the append transaction, and filters applied in JavaScript.
 */
export { SqliteCheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError } from "./trace-store.ts";
