/**
 * The bridge from the kit's savers to LangGraph: `toLangGraphSaver(saver)` turns
 * any kit `CheckpointSaver` (runtime/types.ts) into a LangGraph
 * `BaseCheckpointSaver`, so a `@langchain/langgraph` graph can run on it and
 * LangGraph's own conformance suite can check it.
 *
 * It only renames: LangGraph's `{ configurable: { thread_id, checkpoint_ns,
 * checkpoint_id } }` is the kit's `{ threadId, checkpointNs, checkpointId }`,
 * `channel_values` is `channelValues`, and so on. What the two APIs mean
 * differently is settled here, each in one place:
 *
 * - list() without `checkpoint_ns` spans every namespace in LangGraph; in the kit
 *   an absent namespace is the root "", and `checkpointNs: null` spans them all.
 * - LangGraph chooses the next nodes from `versions_seen`; the kit's `next` is
 *   the runtime's own routing, so a checkpoint coming from LangGraph has none.
 * - The kit's savers store a versioned channel once per (channel, version), so
 *   versions must never repeat within a thread. LangGraph's default counter
 *   does repeat across forks (both branches from checkpoint n write n + 1), so
 *   the bridge issues versions that are a counter plus a random fraction, as
 *   LangGraph's own Postgres saver does.
 * - Checkpoints of format v < 4 (LangGraph's pre-2025 format) kept pending
 *   `Send`s as writes on the parent; LangGraph's savers move them into the
 *   `__pregel_tasks` channel when reading, and so does this bridge.
 */
import type { RunnableConfig as LangGraphConfig } from "@langchain/core/runnables";
import {
  BaseCheckpointSaver,
  TASKS,
  getCheckpointId,
  maxChannelVersion,
  type ChannelVersions,
  type Checkpoint as LangGraphCheckpoint,
  type CheckpointListOptions,
  type CheckpointMetadata as LangGraphMetadata,
  type CheckpointTuple as LangGraphTuple,
  type PendingWrite as LangGraphWrite,
} from "@langchain/langgraph-checkpoint";
import { randomInt } from "node:crypto";
import { z } from "zod";
import type { Checkpoint, CheckpointMetadata, CheckpointSaver, CheckpointTuple, ListConfig, ListOptions, RunnableConfig } from "#runtime";

/** LangGraph's configurable carries much more (callbacks, internal `__pregel_*` keys): only these three are the saver's. */
const configurableSchema = z.looseObject({
  thread_id: z.union([z.string(), z.number()]).transform(String).optional(),
  checkpoint_ns: z.string().optional(),
  checkpoint_id: z.string().optional(),
});

const metadataSchema = z.looseObject({ source: z.enum(["input", "loop", "update", "fork"]), step: z.number() });

/** A kit config as LangGraph's: exactly thread_id, checkpoint_ns and checkpoint_id. */
export function toLangGraphConfig(config: RunnableConfig): LangGraphConfig {
  return { configurable: { thread_id: config.threadId, checkpoint_ns: config.checkpointNs ?? "", checkpoint_id: config.checkpointId } };
}

/**
 * A LangGraph config as the kit's. Fields LangGraph leaves out stay out, so the
 * kit's own validation answers for them (a put without a thread is refused).
 */
export function toKitConfig(config: LangGraphConfig | undefined): Partial<RunnableConfig> {
  const configurable = (config?.configurable ?? {}) as Record<string, unknown>;
  // Every saver call passes through here, so the well-formed case is checked by hand (a few typeofs);
  // zod runs only on a config that fails them, to word the error.
  if (!isWellFormedConfigurable(configurable)) {
    const parsed = configurableSchema.safeParse(configurable);
    const issues = parsed.success ? "not an object" : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new TypeError(`A LangGraph config needs { configurable: { thread_id: string, checkpoint_ns?: string, checkpoint_id?: string } }: ${issues}.`);
  }
  const { thread_id, checkpoint_ns } = configurable;
  const checkpointId = config ? getCheckpointId(config) : undefined; // also reads LangGraph's legacy `thread_ts`
  return {
    ...(thread_id !== undefined && { threadId: String(thread_id) }),
    ...(checkpoint_ns !== undefined && { checkpointNs: checkpoint_ns }),
    ...(checkpointId && { checkpointId }),
  };
}

/** What configurableSchema accepts, as plain checks. */
function isWellFormedConfigurable(c: Record<string, unknown>): c is { thread_id?: string | number; checkpoint_ns?: string; checkpoint_id?: string } {
  return (
    typeof c === "object" &&
    c !== null &&
    (c.thread_id === undefined || typeof c.thread_id === "string" || typeof c.thread_id === "number") &&
    (c.checkpoint_ns === undefined || typeof c.checkpoint_ns === "string") &&
    (c.checkpoint_id === undefined || typeof c.checkpoint_id === "string")
  );
}

const SOURCES = new Set(metadataSchema.shape.source.options);

export function toKitCheckpoint(checkpoint: LangGraphCheckpoint): Checkpoint {
  return {
    v: checkpoint.v,
    id: checkpoint.id,
    ts: checkpoint.ts,
    channelValues: checkpoint.channel_values,
    channelVersions: checkpoint.channel_versions,
    versionsSeen: checkpoint.versions_seen,
    next: [], // LangGraph routes by versions_seen, not by a stored list
  };
}

export function toLangGraphCheckpoint(checkpoint: Checkpoint): LangGraphCheckpoint {
  return {
    v: checkpoint.v,
    id: checkpoint.id,
    ts: checkpoint.ts,
    channel_values: checkpoint.channelValues,
    channel_versions: checkpoint.channelVersions ?? {},
    versions_seen: checkpoint.versionsSeen ?? {},
  };
}

class KitSaverBridge extends BaseCheckpointSaver<string> {
  constructor(readonly saver: CheckpointSaver) {
    super();
  }

  /** "<counter, 32 digits>.<random>": string order is counter order, and two branches never share a version. */
  override getNextVersion(current: string | number | undefined): string {
    const counter = current === undefined ? 0 : Number.parseInt(String(current).split(".")[0]!, 10);
    return `${String(counter + 1).padStart(32, "0")}.${String(randomInt(1e9)).padStart(9, "0")}`;
  }

  async getTuple(config: LangGraphConfig): Promise<LangGraphTuple | undefined> {
    const tuple = await this.saver.getTuple(toKitConfig(config) as RunnableConfig);
    return tuple && this.toLangGraphTuple(tuple);
  }

  async *list(config: LangGraphConfig, options: CheckpointListOptions = {}): AsyncGenerator<LangGraphTuple> {
    const { threadId, checkpointNs, checkpointId } = toKitConfig(config);
    const scope: ListConfig = { ...(threadId !== undefined && { threadId }), checkpointNs: checkpointNs ?? null, ...(checkpointId && { checkpointId }) };
    const kitOptions: ListOptions = {
      ...(options.limit !== undefined && { limit: options.limit }),
      ...(options.before !== undefined && { before: { checkpointId: toKitConfig(options.before).checkpointId } }),
      ...(options.filter !== undefined && { filter: options.filter }),
    };
    for await (const tuple of this.saver.list(scope, kitOptions)) yield this.toLangGraphTuple(tuple);
  }

  async put(config: LangGraphConfig, checkpoint: LangGraphCheckpoint, metadata: LangGraphMetadata, newVersions: ChannelVersions): Promise<LangGraphConfig> {
    // The same fast check first, zod only to word the error.
    if (!(SOURCES.has(metadata?.source as never) && typeof metadata.step === "number")) {
      const parsed = metadataSchema.safeParse(metadata);
      throw new TypeError(`put() needs LangGraph metadata with source and step: ${parsed.success ? "malformed" : parsed.error.issues.map((i) => i.message).join("; ")}.`);
    }
    const saved = await this.saver.put(toKitConfig(config) as RunnableConfig, toKitCheckpoint(checkpoint), metadata as CheckpointMetadata, newVersions);
    return toLangGraphConfig(saved);
  }

  /** `taskPath` is dropped: the kit orders a checkpoint's writes by task id, then index. */
  async putWrites(config: LangGraphConfig, writes: LangGraphWrite[], taskId: string): Promise<void> {
    await this.saver.putWrites(toKitConfig(config) as RunnableConfig, writes, taskId);
  }

  async deleteThread(threadId: string): Promise<void> {
    await this.saver.deleteThread(threadId);
  }

  /** Synchronous for today's checkpoints; a promise only when a legacy one needs its parent read (yield awaits it). */
  private toLangGraphTuple(tuple: CheckpointTuple): LangGraphTuple | Promise<LangGraphTuple> {
    const checkpoint = toLangGraphCheckpoint(tuple.checkpoint);
    const result: LangGraphTuple = {
      config: toLangGraphConfig(tuple.config),
      checkpoint,
      metadata: tuple.metadata as LangGraphMetadata,
      ...(tuple.parentConfig && { parentConfig: toLangGraphConfig(tuple.parentConfig) }),
      pendingWrites: tuple.pendingWrites,
    };
    // migratePendingSends rewrites `checkpoint` in place, so `result` carries the migrated channels.
    if (checkpoint.v < 4 && tuple.parentConfig) return this.migratePendingSends(checkpoint, tuple.parentConfig).then(() => result);
    return result;
  }

  /** LangGraph's legacy format: the parent's `__pregel_tasks` writes become this checkpoint's pending sends. */
  private async migratePendingSends(checkpoint: LangGraphCheckpoint, parentConfig: RunnableConfig): Promise<void> {
    const parent = await this.saver.getTuple(parentConfig);
    const sends = (parent?.pendingWrites ?? []).filter(([, channel]) => channel === TASKS).map(([, , value]) => value);
    if (sends.length === 0) return; // nothing to migrate (and the kit's own v1 checkpoints never have any)
    const versions = Object.values(checkpoint.channel_versions);
    checkpoint.channel_values = { ...checkpoint.channel_values, [TASKS]: sends };
    checkpoint.channel_versions = { ...checkpoint.channel_versions, [TASKS]: versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined) };
  }
}

/** Any kit saver as a LangGraph checkpointer: `graph.compile({ checkpointer: toLangGraphSaver(new SqliteSaver(file)) })`. */
export function toLangGraphSaver(saver: CheckpointSaver): BaseCheckpointSaver {
  // Typed as LangGraph's default saver (number versions) because graphs are: versions are opaque to them.
  return new KitSaverBridge(saver) as unknown as BaseCheckpointSaver;
}
