// The public API: exercises import it as `#runtime`.
export * from "./types.ts";
export * from "./errors.ts";
export { newCheckpointId, taskIdFor } from "./ids.ts";
export { JsonSerializer } from "./json-serde.ts";
export { MemorySaver } from "./memory-saver.ts";
export { SqliteSaver } from "./sqlite-saver.ts";
export { StateGraph, type Channel, type Channels, type NodeContext, type NodeFn, type Reducer, type Router, type Write } from "./graph.ts";
export {
  CompiledStateGraph,
  type CheckpointConfig,
  type CompileOptions,
  type GraphInput,
  type InvokeOptions,
  type StateSnapshot,
  type StreamEvent,
} from "./pregel.ts";
export { Command, GraphInterrupt, interrupt, type Interrupt } from "./interrupt.ts";
export { matchesFilter, parseListOptions } from "./config.ts";
