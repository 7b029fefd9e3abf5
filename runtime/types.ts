/**
 * Shared vocabulary of the runtime, named as in LangGraph so each lesson maps
 * onto LangGraph's documentation (checkpoint, thread, namespace, pending writes).
 */

/** Which checkpoint a call is about. `checkpointId` absent means "the latest". */
export interface RunnableConfig {
  threadId: string;
  /** Checkpoint namespace; "" is the root graph (LangGraph's default). */
  checkpointNs?: string;
  checkpointId?: string;
}

/** A snapshot of one thread after a super-step. */
export interface Checkpoint<S = Record<string, unknown>> {
  /** Format version of this record (not of the user's state). */
  v: 1;
  /** Time-sortable id (UUIDv7): string order is creation order, so `before` is a string comparison. */
  id: string;
  /** ISO-8601 creation time. */
  ts: string;
  /** The graph state (LangGraph's channel values). */
  channelValues: S;
  /** Routing position: the node(s) to run next, never the one just finished. Empty when the run is done. */
  next: string[];
  /** Version of the state schema that wrote this checkpoint; a mismatch must not resume silently. */
  stateSchemaVersion?: number;
}

export type CheckpointSource = "input" | "loop" | "update" | "fork";

/** Queryable facts about a checkpoint, stored apart from its body (plain JSON). */
export interface CheckpointMetadata {
  source: CheckpointSource;
  /** -1 for the input checkpoint, then 0, 1, 2 ... one per super-step. */
  step: number;
  /** The node(s) whose writes produced this checkpoint. */
  node?: string;
  /** Parent checkpoint ids keyed by namespace, as in LangGraph. */
  parents?: Record<string, string>;
  /** User fields: stage, userId, anything JSON. */
  [key: string]: unknown;
}

/** A write a task made before its super-step finished: [taskId, channel, value]. */
export type PendingWrite = [taskId: string, channel: string, value: unknown];

export interface CheckpointTuple<S = Record<string, unknown>> {
  config: Required<Pick<RunnableConfig, "threadId" | "checkpointNs" | "checkpointId">>;
  checkpoint: Checkpoint<S>;
  metadata: CheckpointMetadata;
  parentConfig?: Required<Pick<RunnableConfig, "threadId" | "checkpointNs" | "checkpointId">>;
  /** Ordered by task id, then by write index. */
  pendingWrites: PendingWrite[];
}

export interface ListOptions {
  /** Only checkpoints strictly older than this one (exclusive). */
  before?: RunnableConfig;
  limit?: number;
  /** Every key must match the metadata; a key a saver cannot filter on is refused, never ignored. */
  filter?: Record<string, unknown>;
}

/**
 * Special channels get fixed negative write indexes so a repeated special write
 * replaces the earlier one, while regular writes use their position (0, 1, 2...).
 */
export const WRITES_IDX_MAP: Readonly<Record<string, number>> = Object.freeze({
  __error__: -1,
  __scheduled__: -2,
  __interrupt__: -3,
  __resume__: -4,
});

export const ERROR = "__error__";
export const INTERRUPT = "__interrupt__";
export const RESUME = "__resume__";
/** Regular write saved by a task that returned no update, so a resume can still tell it finished (LangGraph's NO_WRITES). */
export const NO_WRITES = "__no_writes__";

/** Where a write goes: a special channel's fixed slot, or a regular write's position in its batch. */
export function writeIndex(channel: string, position: number): number {
  return isSpecialChannel(channel) ? WRITES_IDX_MAP[channel]! : position;
}

/** A special write replaces the earlier one at its slot; a regular write never overwrites. */
export function isSpecialChannel(channel: string): boolean {
  return Object.hasOwn(WRITES_IDX_MAP, channel); // not `in`: "toString" is not a channel
}

/** The virtual entry and exit nodes of every graph (LangGraph's names). */
export const START = "__start__";
export const END = "__end__";

/** Turns values into bytes and back, with a tag naming the encoding. */
export interface SerializerProtocol {
  dumpsTyped(value: unknown): [type: string, bytes: Uint8Array];
  loadsTyped(type: string, bytes: Uint8Array): unknown;
}

/** The interface every checkpoint saver implements (LangGraph's BaseCheckpointSaver). */
export interface CheckpointSaver {
  getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined>;
  list(config: RunnableConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple>;
  /** Stores a checkpoint whose parent is `config.checkpointId` (if any); returns its config. */
  put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig>;
  /** Idempotent per (checkpoint, taskId, index): see WRITES_IDX_MAP. */
  putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void>;
  deleteThread(threadId: string): Promise<void>;
}
