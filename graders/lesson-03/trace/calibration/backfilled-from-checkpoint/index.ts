/**
 * Calibration answer: tries to pass without solving (gaming): the trace is written only when a run ends, and a resumed run back-fills node_start / node_end entries for the steps its checkpoint counts, made up from the checkpoint's state, so a finished trace has roughly the right length but nothing survives a crash and the back-filled entries are invented.
 */
export { SqliteCheckpointStore } from "./checkpoint-store.ts";
export { END, StateGraph } from "./graph.ts";
export { SqliteTraceStore, TraceStoreError } from "./trace-store.ts";
