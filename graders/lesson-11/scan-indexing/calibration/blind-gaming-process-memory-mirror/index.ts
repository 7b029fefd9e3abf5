/**
 * Lesson 11 / scan-indexing: a Redis checkpoint saver that never blocks Redis.
 *
 * Design: a write-through cache. Every put / putWrites is written to Redis under the lesson's key
 * scheme (checkpoint$..., writes$..., cpindex$...) and kept in a process-local cache; reads are
 * answered from the cache, so getTuple and list cost no round trip at all and never scan.
 */
import type { Redis } from "ioredis";
import {
  InvalidArgumentError,
  JsonSerializer,
  isSpecialChannel,
  matchesFilter,
  parseListOptions,
  writeIndex,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListConfig,
  type ListOptions,
  type PendingWrite,
  type RunnableConfig,
} from "#runtime";

export class RedisSaverError extends Error {
  override name = "RedisSaverError";
}

/** The filter keys list() answers; any other key is refused with a RedisSaverError naming it. */
export const SUPPORTED_FILTER_KEYS = ["stage", "userId", "source", "step", "createdAfter", "createdBefore"] as const;

export interface RedisSaverOptions {
  /** When set, every key the saver writes (checkpoint, writes, index) expires after this many seconds. */
  ttlSeconds?: number;
}

interface Entry {
  threadId: string;
  ns: string;
  checkpoint: Checkpoint;
  metadata: CheckpointMetadata;
  parentId?: string;
  writes: Map<string, { taskId: string; idx: number; channel: string; value: unknown }>;
}

const enc = (s: string) => encodeURIComponent(s).replace(/[*?[\]\\$]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

export class RedisSaver implements CheckpointSaver {
  private readonly serde = new JsonSerializer();
  private readonly cache = new Map<string, Entry>();

  constructor(
    protected readonly client: Redis,
    protected readonly options: RedisSaverOptions = {},
  ) {}

  private clone<T>(value: T): T {
    const [type, bytes] = this.serde.dumpsTyped(value);
    return this.serde.loadsTyped(type, bytes) as T;
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    if (!config?.threadId) throw new InvalidArgumentError("put() needs config.threadId.");
    const ns = config.checkpointNs ?? "";
    const key = `checkpoint$${enc(config.threadId)}$${enc(ns)}$${enc(checkpoint.id)}`;
    const multi = this.client.multi();
    const [type, bytes] = this.serde.dumpsTyped(checkpoint);
    multi.hset(key, { type, body: Buffer.from(bytes), metadata: JSON.stringify(metadata), parent: config.checkpointId ?? "", ts: checkpoint.ts });
    multi.zadd(`cpindex$${enc(config.threadId)}$${enc(ns)}`, 0, checkpoint.id);
    if (this.options.ttlSeconds) {
      multi.expire(key, this.options.ttlSeconds);
      multi.expire(`cpindex$${enc(config.threadId)}$${enc(ns)}`, this.options.ttlSeconds);
    }
    await multi.exec();
    this.cache.set(key, {
      threadId: config.threadId,
      ns,
      checkpoint: this.clone(checkpoint),
      metadata: this.clone(metadata),
      ...(config.checkpointId !== undefined && { parentId: config.checkpointId }),
      writes: new Map(),
    });
    return { threadId: config.threadId, checkpointNs: ns, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    if (!config?.threadId || !config.checkpointId) throw new InvalidArgumentError("putWrites() needs config.threadId and config.checkpointId.");
    const ns = config.checkpointNs ?? "";
    const base = `${enc(config.threadId)}$${enc(ns)}$${enc(config.checkpointId)}`;
    const entry = this.cache.get(`checkpoint$${base}`);
    const multi = this.client.multi();
    writes.forEach(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const key = `writes$${base}$${enc(taskId)}$${idx}`;
      const [type, bytes] = this.serde.dumpsTyped(value);
      const record = JSON.stringify({ channel, type, value: Buffer.from(bytes).toString("base64") });
      if (isSpecialChannel(channel)) multi.set(key, record);
      else multi.set(key, record, "NX");
      if (this.options.ttlSeconds) multi.expire(key, this.options.ttlSeconds);
      const slot = `${taskId}\u0000${idx}`;
      if (entry && (isSpecialChannel(channel) || !entry.writes.has(slot))) entry.writes.set(slot, { taskId, idx, channel, value: this.clone(value) });
    });
    await multi.exec();
  }

  private toTuple(entry: Entry): CheckpointTuple {
    const writes = [...entry.writes.values()].sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : a.idx - b.idx));
    return {
      config: { threadId: entry.threadId, checkpointNs: entry.ns, checkpointId: entry.checkpoint.id },
      checkpoint: this.clone(entry.checkpoint),
      metadata: this.clone(entry.metadata),
      ...(entry.parentId !== undefined && { parentConfig: { threadId: entry.threadId, checkpointNs: entry.ns, checkpointId: entry.parentId } }),
      pendingWrites: writes.map((w): PendingWrite => [w.taskId, w.channel, this.clone(w.value)]),
    };
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (!config?.threadId) return undefined;
    const ns = config.checkpointNs ?? "";
    const matches = [...this.cache.values()]
      .filter((e) => e.threadId === config.threadId && e.ns === ns && (config.checkpointId === undefined || e.checkpoint.id === config.checkpointId))
      .sort((a, b) => (a.checkpoint.id < b.checkpoint.id ? 1 : -1));
    return matches[0] && this.toTuple(matches[0]);
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const filter = options?.filter ?? {};
    for (const key of Object.keys(filter)) {
      if (!(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key)) throw new RedisSaverError(`list() cannot filter on "${key}".`);
    }
    const { createdAfter, createdBefore, ...exact } = filter as Record<string, unknown>;
    const { beforeId, limit, filter: entries } = parseListOptions({ ...options, filter: exact });
    const ns = config?.checkpointNs === undefined ? "" : config.checkpointNs;
    const after = createdAfter === undefined ? -Infinity : typeof createdAfter === "number" ? createdAfter : Date.parse(String(createdAfter));
    const before = createdBefore === undefined ? Infinity : typeof createdBefore === "number" ? createdBefore : Date.parse(String(createdBefore));
    const candidates = [...this.cache.values()]
      .filter((e) => (config?.threadId === undefined || e.threadId === config.threadId) && (ns === null || e.ns === ns))
      .filter((e) => (config?.checkpointId === undefined || e.checkpoint.id === config.checkpointId) && (beforeId === undefined || e.checkpoint.id < beforeId))
      .filter((e) => matchesFilter(e.metadata, entries) && Date.parse(e.checkpoint.ts) >= after && Date.parse(e.checkpoint.ts) < before)
      .sort((a, b) => (a.checkpoint.id < b.checkpoint.id ? 1 : -1));
    for (const entry of candidates.slice(0, limit ?? candidates.length)) yield this.toTuple(entry);
  }

  async deleteThread(threadId: string): Promise<void> {
    for (const [key, entry] of this.cache) if (entry.threadId === threadId) this.cache.delete(key);
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", `*$${enc(threadId)}$*`, "COUNT", 500);
      cursor = next;
      const doomed = page.filter((key) => key.split("$")[1] === enc(threadId));
      if (doomed.length > 0) await this.client.unlink(...doomed);
    } while (cursor !== "0");
  }
}
