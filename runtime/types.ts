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

/**
 * Which checkpoints a list() call walks. Unlike the other calls, a missing
 * `threadId` means every thread (LangGraph's list does the same), and
 * `checkpointNs: null` means every namespace; a missing `checkpointNs` is
 * still the root namespace "", as everywhere else in the kit.
 */
export interface ListConfig {
  threadId?: string;
  checkpointNs?: string | null;
  checkpointId?: string;
}

/** A channel's version: LangGraph counts up with integers by default; a saver only compares them for equality. */
export type ChannelVersion = number | string;
export type ChannelVersions = Record<string, ChannelVersion>;

/** A snapshot of one thread after a super-step. Field for field LangGraph's checkpoint, plus the kit's routing. */
export interface Checkpoint<S = Record<string, unknown>> {
  /**
   * Format version of this record (not of the user's state). The runtime writes 1;
   * LangGraph writes 4, and reads < 4 as its legacy pending-sends format.
   */
  v: number;
  /** Time-sortable id (UUIDv7): string order is creation order, so `before` is a string comparison. */
  id: string;
  /** ISO-8601 creation time. */
  ts: string;
  /** The graph state (LangGraph's channel values). */
  channelValues: S;
  /**
   * LangGraph's `channel_versions`: the version of each channel's value. A saver
   * stores a versioned channel once per (channel, version), so a big value that
   * did not change is not written again with every checkpoint. So a version must
   * never repeat within a thread, not even on two branches forked from one
   * checkpoint (the LangGraph bridge issues unique ones). The runtime's own
   * graph does not version channels: its checkpoints carry their whole state.
   */
  channelVersions?: ChannelVersions;
  /** LangGraph's `versions_seen`: per node, the channel versions it last ran on (how LangGraph picks the next nodes). */
  versionsSeen?: Record<string, ChannelVersions>;
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
  /** Only checkpoints strictly older than this one (exclusive): only its `checkpointId` counts. */
  before?: ListConfig;
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

/**
 * How a saver splits a checkpoint for storage: a versioned channel's value goes
 * to a blob keyed (thread, namespace, channel, version), written only when the
 * channel is in `newVersions` (or `newVersions` is absent); every other channel
 * stays in the body. One rule, used by every saver (see joinChannels).
 */
export function splitChannels(
  checkpoint: Checkpoint,
  newVersions: ChannelVersions | undefined,
): { body: Checkpoint; blobs: Array<{ channel: string; version: ChannelVersion; value: unknown }> } {
  const inline: Record<string, unknown> = {};
  const blobs: Array<{ channel: string; version: ChannelVersion; value: unknown }> = [];
  for (const [channel, value] of Object.entries(checkpoint.channelValues)) {
    const version = checkpoint.channelVersions?.[channel];
    if (version === undefined) inline[channel] = value;
    else if (newVersions === undefined || Object.hasOwn(newVersions, channel)) blobs.push({ channel, version, value });
    // else: unchanged since the parent, whose put already stored this (channel, version).
  }
  return { body: { ...checkpoint, channelValues: inline }, blobs };
}

/** The (channel, version) blobs a stored body needs to become the whole checkpoint again. */
export function blobRefs(body: Checkpoint): Array<[channel: string, version: ChannelVersion]> {
  return Object.entries(body.channelVersions ?? {}).filter(([channel]) => !Object.hasOwn(body.channelValues, channel));
}

/**
 * Puts the blobs back into a stored body. `found[i]` answers `blobRefs(body)[i]`;
 * a version with no blob is a channel without a value (LangGraph keeps versions
 * of channels that are empty), so it stays absent.
 */
export function joinChannels(body: Checkpoint, found: Array<{ value: unknown } | undefined>): Checkpoint {
  const channelValues = { ...body.channelValues };
  blobRefs(body).forEach(([channel], i) => {
    if (found[i] !== undefined) channelValues[channel] = found[i].value;
  });
  return { ...body, channelValues };
}

/** Turns values into bytes and back, with a tag naming the encoding. */
export interface SerializerProtocol {
  dumpsTyped(value: unknown): [type: string, bytes: Uint8Array];
  loadsTyped(type: string, bytes: Uint8Array): unknown;
}

/** The interface every checkpoint saver implements (LangGraph's BaseCheckpointSaver). */
export interface CheckpointSaver {
  /** That checkpoint, or the thread's latest without `checkpointId`; undefined when there is none (or no `threadId`). */
  getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined>;
  /** Newest first; see ListConfig for what an absent thread or a null namespace widens to. */
  list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple>;
  /**
   * Stores a checkpoint whose parent is `config.checkpointId` (if any); returns its config.
   * `newVersions` (LangGraph's argument of the same name) names the versioned channels
   * that changed since the parent: only their values need storing. Absent: all did.
   */
  put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig>;
  /** Idempotent per (checkpoint, taskId, index): see WRITES_IDX_MAP. */
  putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void>;
  deleteThread(threadId: string): Promise<void>;
}
