/**
 * RedisSaver: a checkpoint saver on Redis (ioredis API) that never issues KEYS.
 *
 * - Reads go through indexes (sorted sets whose members are time-sortable
 *   checkpoint ids), so `list({ limit: 10 })` costs a few round trips however
 *   many keys the server holds. Wider indexes answer list() without a namespace
 *   (`checkpointNs: null`) or without a thread, as LangGraph's list() does.
 * - Bodies are fetched in batches: one pipeline of HGETALL/SMEMBERS, one MGET
 *   of the writes and of the versioned channels' values (stored once per version).
 * - deleteThread walks the keyspace with SCAN MATCH COUNT and UNLINKs each page,
 *   so it also removes keys an index lost track of.
 * - Ids are encoded (keys.ts): `$` and glob characters never reach a key.
 */
import type { Redis } from "ioredis";
import { z } from "zod";
import {
  JsonSerializer,
  blobRefs,
  isSpecialChannel,
  joinChannels,
  parseListOptions,
  splitChannels,
  writeIndex,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListConfig,
  type ListOptions,
  type PendingWrite,
  type RunnableConfig,
  type SerializerProtocol,
} from "#runtime";
import { inListScope, parseCheckpointConfig, parseConfig, parseListConfig, parseLookupConfig, type ResolvedListConfig } from "#runtime/config.ts";
import { INDEXED_FIELDS, decodeComponent, encodeComponent, keys, members, type IndexedField } from "./keys.ts";

export class RedisSaverError extends Error {
  override name = "RedisSaverError";
}

/**
 * Filter keys this saver answers. stage and userId have indexes; source and step
 * are checked on the fetched metadata; createdAfter (inclusive) and createdBefore
 * (exclusive) bound the checkpoint's `ts` (ISO-8601 or epoch milliseconds).
 */
export const SUPPORTED_FILTER_KEYS = ["stage", "userId", "source", "step", "createdAfter", "createdBefore"] as const;

/** ttlSeconds, when given: EXPIRE takes whole seconds, and 0 or less would delete the key at once. */
const ttlSchema = z.number().int().positive().optional();

export interface RedisSaverOptions {
  /** When set, every key the saver writes (checkpoint, writes, index) expires after this many seconds. */
  ttlSeconds?: number;
}

/** Keys a SCAN page asks for: a hint to Redis, large enough to keep round trips few, small enough not to stall it. */
const SCAN_COUNT = 500;
/** Ids read from an index per round trip when a filter must be checked on the fetched metadata. */
const FILTERED_PAGE = 100;

/** A serialized value as stored in a writes key or a blob key. */
interface StoredValue {
  type: string;
  value: string; // base64
}

interface StoredWrite extends StoredValue {
  channel: string;
}

export type Scope = { threadId: string; checkpointNs: string };
/** Where one checkpoint lives. */
export type CheckpointRef = Scope & { id: string };

/** The index a list() call walks, and how its members name checkpoints. */
interface IndexWalk {
  key: string;
  ref(member: string): CheckpointRef;
  /** What members sort below when their checkpoint is older than `id`: `(bound` excludes `id` itself. */
  bound(id: string): string;
  /** Every member is an answer: no check is left for the fetched tuples, so a page of `limit` ids is enough. */
  exact: boolean;
}

export class RedisSaver implements CheckpointSaver {
  protected readonly serde: SerializerProtocol = new JsonSerializer();
  protected readonly ttlSeconds: number | undefined;

  constructor(
    protected readonly client: Redis,
    options: RedisSaverOptions = {},
  ) {
    const ttl = ttlSchema.safeParse(options.ttlSeconds);
    if (!ttl.success) throw new RedisSaverError(`RedisSaver's ttlSeconds must be a positive whole number of seconds, got ${JSON.stringify(options.ttlSeconds)}.`);
    this.ttlSeconds = ttl.data;
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    if (typeof checkpoint?.id !== "string" || checkpoint.id === "") {
      throw new RedisSaverError("put() needs a checkpoint with a non-empty string id (a UUIDv7 from newCheckpointId()).");
    }
    // Versioned channels that changed go to blob keys; the rest stays in the body (runtime's splitChannels).
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const [type, bytes] = this.serde.dumpsTyped(body);
    const checkpointKey = keys.checkpoint(threadId, checkpointNs, checkpoint.id);
    const indexKeys = [keys.index(threadId, checkpointNs), ...this.fieldIndexKeys({ threadId, checkpointNs }, metadata)];
    const tx = this.client.multi();
    tx.hset(checkpointKey, {
      type,
      body: Buffer.from(bytes).toString("base64"),
      metadata: JSON.stringify(metadata), // plain JSON: readable and filterable without the serializer
      parent: parentId ?? "",
      ts: checkpoint.ts,
    });
    const blobKeys = blobs.map(({ channel, version, value }) => {
      const key = keys.blob(threadId, checkpointNs, channel, version);
      tx.set(key, JSON.stringify(this.storedValue(value)));
      return key;
    });
    // Score 0 everywhere: members then sort by their text, which starts with the time-sortable id.
    for (const indexKey of indexKeys) tx.zadd(indexKey, 0, checkpoint.id);
    tx.zadd(keys.threadIndex(threadId), 0, members.ofThread(checkpoint.id, checkpointNs));
    tx.zadd(keys.allIndex(), 0, members.ofAll(checkpoint.id, threadId, checkpointNs));
    this.expire(tx, [checkpointKey, ...blobKeys, ...indexKeys, keys.threadIndex(threadId), keys.allIndex()]);
    await tx.exec();
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    if (typeof taskId !== "string" || taskId === "") throw new RedisSaverError("putWrites() needs a non-empty task id.");
    if (!Array.isArray(writes)) throw new RedisSaverError("putWrites() needs an array of [channel, value] pairs.");
    if (writes.length === 0) return;
    const setKey = keys.writeSet(threadId, checkpointNs, checkpointId);
    const tx = this.client.multi();
    const writeKeys: string[] = [];
    writes.forEach(([channel, value], position) => {
      // The slot is (task, index): a retry lands on the same keys, so it cannot duplicate.
      const key = keys.write(threadId, checkpointNs, checkpointId, taskId, writeIndex(channel, position));
      const stored: StoredWrite = { channel, ...this.storedValue(value) };
      // A special channel's fixed slot is replaced; a regular write already saved is kept (NX).
      if (isSpecialChannel(channel)) tx.set(key, JSON.stringify(stored));
      else tx.set(key, JSON.stringify(stored), "NX");
      writeKeys.push(key);
    });
    tx.sadd(setKey, ...writeKeys);
    this.expire(tx, [setKey, ...writeKeys]);
    await tx.exec();
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const resolved = parseLookupConfig(config, "getTuple()"); // no threadId: no checkpoint, as in LangGraph
    if (!resolved) return undefined;
    const { threadId, checkpointNs, checkpointId } = resolved;
    const id = checkpointId ?? (await this.client.zrevrangebylex(keys.index(threadId, checkpointNs), "+", "-", "LIMIT", 0, 1))[0];
    if (id === undefined) return undefined;
    const [tuple] = await this.loadTuples({ threadId, checkpointNs }, [id]);
    return tuple;
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const scope = parseListConfig(config);
    const { beforeId, limit, filter } = parseListOptions(options);
    const plan = planFilter(filter);
    const { threadId, checkpointNs, checkpointId } = scope;
    if (threadId !== undefined && checkpointNs !== undefined && checkpointId !== undefined) {
      if (beforeId !== undefined && checkpointId >= beforeId) return;
      const [tuple] = await this.loadTuples({ threadId, checkpointNs }, [checkpointId]);
      if (tuple && plan.accepts(tuple)) yield tuple;
      return;
    }
    const walk = this.indexWalk(scope, plan);
    let upper = beforeId === undefined ? "+" : `(${walk.bound(beforeId)}`;
    let yielded = 0;
    for (;;) {
      const wanted = limit === undefined ? FILTERED_PAGE : walk.exact ? limit - yielded : Math.max(FILTERED_PAGE, limit - yielded);
      const page = await this.client.zrevrangebylex(walk.key, upper, "-", "LIMIT", 0, wanted);
      const refs = page.map(walk.ref).filter((ref) => inListScope(scope, ref.threadId, ref.checkpointNs, ref.id));
      for (const tuple of await this.loadRefs(refs)) {
        if (!plan.accepts(tuple)) continue;
        yield tuple;
        if (++yielded === limit) return;
      }
      if (page.length < wanted) return; // an empty page too: the index has no older member
      upper = `(${page[page.length - 1]!}`;
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    if (typeof threadId !== "string" || threadId === "") throw new RedisSaverError("deleteThread() needs a non-empty thread id.");
    // The shared index is no key of the thread, so SCAN never finds it: remove the thread's members by name,
    // first, while the thread's own index still lists them.
    const own = await this.client.zrange(keys.threadIndex(threadId), 0, -1);
    for (let start = 0; start < own.length; start += SCAN_COUNT) {
      const doomed = own.slice(start, start + SCAN_COUNT).map((member) => {
        const { id, checkpointNs } = members.parse(member, threadId);
        return members.ofAll(id, threadId, checkpointNs);
      });
      await this.client.zrem(keys.allIndex(), ...doomed);
    }
    const thread = encodeComponent(threadId);
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", keys.threadPattern(threadId), "COUNT", SCAN_COUNT);
      cursor = next;
      // MATCH narrows; the key's own thread component confirms (a namespace equal to the thread id also matches).
      const doomed = [...new Set(page)].filter((key) => key.split("$")[1] === thread);
      if (doomed.length > 0) await this.client.unlink(...doomed); // UNLINK frees memory off the main thread
    } while (cursor !== "0");
  }

  /**
   * One namespace of one thread: its own index (or a field index when a filter names
   * stage or userId). Wider scopes walk the thread's or the shared index.
   */
  protected indexWalk(scope: ResolvedListConfig, plan: FilterPlan): IndexWalk {
    const { threadId, checkpointNs } = scope;
    if (threadId !== undefined && checkpointNs !== undefined) {
      const key = plan.indexed ? keys.fieldIndex(threadId, checkpointNs, plan.indexed[0], plan.indexed[1]) : keys.index(threadId, checkpointNs);
      return { key, ref: (id) => ({ threadId, checkpointNs, id }), bound: (id) => id, exact: plan.residual.length === 0 };
    }
    const key = threadId !== undefined ? keys.threadIndex(threadId) : keys.allIndex();
    // A member is `<id>$...`: every member of an older checkpoint sorts below the bare encoded id. Never exact:
    // the scope (a namespace, a checkpoint id) and every filter are checked on what the walk returns.
    return { key, ref: (member) => members.parse(member, threadId), bound: encodeComponent, exact: false };
  }

  protected storedValue(value: unknown): StoredValue {
    const [type, bytes] = this.serde.dumpsTyped(value);
    return { type, value: Buffer.from(bytes).toString("base64") };
  }

  protected loadValue(stored: StoredValue): unknown {
    return this.serde.loadsTyped(stored.type, Buffer.from(stored.value, "base64"));
  }

  protected fieldIndexKeys(scope: Scope, metadata: CheckpointMetadata): string[] {
    return INDEXED_FIELDS.filter((field) => Object.hasOwn(metadata ?? {}, field)).map((field) =>
      keys.fieldIndex(scope.threadId, scope.checkpointNs, field, metadata[field]),
    );
  }

  protected expire(tx: ReturnType<Redis["multi"]>, keyList: string[]): void {
    if (this.ttlSeconds === undefined) return;
    for (const key of keyList) tx.expire(key, this.ttlSeconds);
  }

  /** The checkpoints `ids` of one namespace (see loadRefs). */
  protected async loadTuples(scope: Scope, ids: string[]): Promise<CheckpointTuple[]> {
    return this.loadRefs(ids.map((id) => ({ ...scope, id })));
  }

  /**
   * Two round trips for any number of checkpoints: a pipeline of HGETALL + SMEMBERS,
   * then one MGET of their writes and of the channel values their bodies refer to.
   */
  protected async loadRefs(refs: CheckpointRef[]): Promise<CheckpointTuple[]> {
    const pipeline = this.client.pipeline();
    for (const { threadId, checkpointNs, id } of refs) {
      pipeline.hgetall(keys.checkpoint(threadId, checkpointNs, id));
      pipeline.smembers(keys.writeSet(threadId, checkpointNs, id));
    }
    const replies = (await pipeline.exec()) ?? [];
    const rows = refs.flatMap((ref, i) => {
      const [hashError, hash] = replies[2 * i] ?? [];
      const [setError, writeKeys] = replies[2 * i + 1] ?? [];
      if (hashError || setError) throw new RedisSaverError(`Reading checkpoint ${ref.id} failed: ${(hashError ?? setError)!.message}`);
      const fields = hash as Record<string, string>;
      // An index entry whose checkpoint expired or was deleted: skip it rather than fail the listing.
      if (!fields || fields.body === undefined) return [];
      const body = this.serde.loadsTyped(fields.type!, Buffer.from(fields.body, "base64")) as Checkpoint;
      const blobKeys = blobRefs(body).map(([channel, version]) => keys.blob(ref.threadId, ref.checkpointNs, channel, version));
      return [{ ref, fields, body, blobKeys, writeKeys: writeKeys as string[] }];
    });
    const wanted = rows.flatMap((row) => [...row.writeKeys, ...row.blobKeys]);
    const values = wanted.length > 0 ? await this.client.mget(...wanted) : [];
    const byKey = new Map(wanted.map((key, i) => [key, values[i]] as const));

    return rows.map(({ ref, fields, body, blobKeys, writeKeys }): CheckpointTuple => {
      const { threadId, checkpointNs, id } = ref;
      const pendingWrites = writeKeys
        .flatMap((key) => {
          const raw = byKey.get(key);
          if (raw == null) return [];
          const [, , , , taskPart, idxPart] = key.split("$");
          return [{ taskId: decodeComponent(taskPart!), idx: Number(idxPart), stored: JSON.parse(raw) as StoredWrite }];
        })
        .sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : a.idx - b.idx))
        .map(({ taskId, stored }): PendingWrite => [taskId, stored.channel, this.loadValue(stored)]);
      const found = blobKeys.map((key) => {
        const raw = byKey.get(key);
        return raw == null ? undefined : { value: this.loadValue(JSON.parse(raw) as StoredValue) };
      });
      return {
        config: { threadId, checkpointNs, checkpointId: id },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(fields.metadata!) as CheckpointMetadata,
        ...(fields.parent ? { parentConfig: { threadId, checkpointNs, checkpointId: fields.parent } } : {}),
        pendingWrites,
      };
    });
  }
}

export interface FilterPlan {
  /** The equality the index walk answers, if any. */
  indexed: [IndexedField, unknown] | undefined;
  /** Checks no index answers: pages must be read until enough tuples pass them. */
  residual: Array<(tuple: CheckpointTuple) => boolean>;
  /** Every filter key, checked on a fetched tuple. */
  accepts(tuple: CheckpointTuple): boolean;
}

/** Validates a parsed filter and splits it into the index to walk and the checks left for fetched tuples. */
export function planFilter(filter: Array<[string, string | number | boolean | null]>): FilterPlan {
  const unsupported = filter.find(([key]) => !(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key));
  // Refused rather than ignored: a filter dropped silently returns checkpoints the caller asked to exclude.
  if (unsupported) throw new RedisSaverError(`list({ filter }) cannot filter on "${unsupported[0]}": RedisSaver answers ${SUPPORTED_FILTER_KEYS.join(", ")}.`);
  let indexed: FilterPlan["indexed"];
  const residual: FilterPlan["residual"] = [];
  for (const [key, value] of filter) {
    if (key === "createdAfter" || key === "createdBefore") {
      const bound = parseTime(key, value);
      residual.push(key === "createdAfter" ? (t) => Date.parse(t.checkpoint.ts) >= bound : (t) => Date.parse(t.checkpoint.ts) < bound);
    } else if (indexed === undefined && (INDEXED_FIELDS as readonly string[]).includes(key)) {
      indexed = [key as IndexedField, value];
    } else {
      residual.push((t) => Object.hasOwn(t.metadata, key) && t.metadata[key] === value);
    }
  }
  // The indexed equality is checked again on the fetched metadata: cheap, and a stale index entry cannot leak through.
  const checks = indexed ? [...residual, (t: CheckpointTuple) => Object.hasOwn(t.metadata, indexed[0]) && t.metadata[indexed[0]] === indexed[1]] : residual;
  return { indexed, residual, accepts: (tuple) => checks.every((check) => check(tuple)) };
}

function parseTime(key: string, value: unknown): number {
  const ms = typeof value === "number" ? value : Date.parse(String(value));
  if (!Number.isFinite(ms)) {
    throw new RedisSaverError(`list({ filter: { ${key} } }) needs an ISO-8601 time or epoch milliseconds, got ${JSON.stringify(value)}.`);
  }
  return ms;
}
