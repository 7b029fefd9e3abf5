/**
 * RedisSaver: a checkpoint saver on Redis (ioredis API) that never issues KEYS.
 *
 * - Reads go through indexes (sorted sets whose members are time-sortable
 *   checkpoint ids), so `list({ limit: 10 })` costs a few round trips however
 *   many keys the server holds.
 * - Bodies are fetched in batches: one pipeline of HGETALL/SMEMBERS, one MGET.
 * - deleteThread walks the keyspace with SCAN MATCH COUNT and UNLINKs each page,
 *   so it also removes keys an index lost track of.
 * - Ids are encoded (keys.ts): `$` and glob characters never reach a key.
 */
import type { Redis } from "ioredis";
import { z } from "zod";
import {
  JsonSerializer,
  isSpecialChannel,
  parseListOptions,
  writeIndex,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListOptions,
  type PendingWrite,
  type RunnableConfig,
  type SerializerProtocol,
} from "#runtime";
import { parseCheckpointConfig, parseConfig } from "#runtime/config.ts";
import { INDEXED_FIELDS, decodeComponent, keys, threadOfKey, type IndexedField } from "./keys.ts";

export class RedisSaverError extends Error {
  override name = "RedisSaverError";
}

/**
 * Filter keys this saver answers. stage and userId have indexes; source and step
 * are checked on the fetched metadata; createdAfter (inclusive) and createdBefore
 * (exclusive) bound the checkpoint's `ts` (ISO-8601 or epoch milliseconds).
 */
export const SUPPORTED_FILTER_KEYS = ["stage", "userId", "source", "step", "createdAfter", "createdBefore"] as const;

const optionsSchema = z
  .object({
    ttlSeconds: z.number().int().positive().optional(),
    serde: z.custom<SerializerProtocol>((v) => typeof v === "object" && v !== null && "dumpsTyped" in v && "loadsTyped" in v).optional(),
  })
  .strict();

export type RedisSaverOptions = z.input<typeof optionsSchema>;

/** Keys a SCAN page asks for: a hint to Redis, large enough to keep round trips few, small enough not to stall it. */
const SCAN_COUNT = 500;
/** Ids read from an index per round trip when a filter must be checked on the fetched metadata. */
const FILTERED_PAGE = 100;

interface StoredWrite {
  channel: string;
  type: string;
  value: string; // base64
}

export type Scope = { threadId: string; checkpointNs: string };

export class RedisSaver implements CheckpointSaver {
  protected readonly serde: SerializerProtocol;
  protected readonly ttlSeconds: number | undefined;

  constructor(
    protected readonly client: Redis,
    options: RedisSaverOptions = {},
  ) {
    if (typeof client !== "object" || client === null || typeof (client as { multi?: unknown }).multi !== "function") {
      throw new RedisSaverError("RedisSaver needs an ioredis client (new Redis(url)) as its first argument.");
    }
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new RedisSaverError(`RedisSaver options are invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "options"}: ${i.message}`).join("; ")}. Expected { ttlSeconds?: positive integer }.`);
    }
    this.serde = parsed.data.serde ?? new JsonSerializer();
    this.ttlSeconds = parsed.data.ttlSeconds;
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    if (typeof checkpoint?.id !== "string" || checkpoint.id === "") {
      throw new RedisSaverError("put() needs a checkpoint with a non-empty string id (a UUIDv7 from newCheckpointId()).");
    }
    const [type, body] = this.serde.dumpsTyped(checkpoint);
    const checkpointKey = keys.checkpoint(threadId, checkpointNs, checkpoint.id);
    const indexKeys = [keys.index(threadId, checkpointNs), ...this.fieldIndexKeys({ threadId, checkpointNs }, metadata)];
    const tx = this.client.multi();
    tx.hset(checkpointKey, {
      type,
      body: Buffer.from(body).toString("base64"),
      metadata: JSON.stringify(metadata), // plain JSON: readable and filterable without the serializer
      parent: parentId ?? "",
      ts: checkpoint.ts,
    });
    // Score 0 everywhere: members then sort by id, and ids sort by creation time.
    for (const indexKey of indexKeys) tx.zadd(indexKey, 0, checkpoint.id);
    this.expire(tx, [checkpointKey, ...indexKeys]);
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
      const [type, bytes] = this.serde.dumpsTyped(value);
      const stored: StoredWrite = { channel, type, value: Buffer.from(bytes).toString("base64") };
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
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "getTuple()");
    const id = checkpointId ?? (await this.client.zrevrangebylex(keys.index(threadId, checkpointNs), "+", "-", "LIMIT", 0, 1))[0];
    if (id === undefined) return undefined;
    const [tuple] = await this.loadTuples({ threadId, checkpointNs }, [id]);
    return tuple;
  }

  async *list(config: RunnableConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "list()");
    const { beforeId, limit, filter } = parseListOptions(options);
    const plan = planFilter(filter);
    const scope = { threadId, checkpointNs };
    if (checkpointId !== undefined) {
      if (beforeId !== undefined && checkpointId >= beforeId) return;
      const [tuple] = await this.loadTuples(scope, [checkpointId]);
      if (tuple && plan.accepts(tuple)) yield tuple;
      return;
    }
    // The narrowest index answers; what no index covers is checked on the fetched metadata.
    const indexKey = plan.indexed ? keys.fieldIndex(threadId, checkpointNs, plan.indexed[0], plan.indexed[1]) : keys.index(threadId, checkpointNs);
    const everyIdMatches = plan.residual.length === 0;
    let upper = beforeId === undefined ? "+" : `(${beforeId}`;
    let yielded = 0;
    for (;;) {
      const wanted = limit === undefined ? FILTERED_PAGE : everyIdMatches ? limit - yielded : Math.max(FILTERED_PAGE, limit - yielded);
      const ids = await this.client.zrevrangebylex(indexKey, upper, "-", "LIMIT", 0, wanted);
      if (ids.length === 0) return;
      for (const tuple of await this.loadTuples(scope, ids)) {
        if (!plan.accepts(tuple)) continue;
        yield tuple;
        if (limit !== undefined && ++yielded >= limit) return;
      }
      if (ids.length < wanted) return;
      upper = `(${ids[ids.length - 1]!}`;
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    if (typeof threadId !== "string" || threadId === "") throw new RedisSaverError("deleteThread() needs a non-empty thread id.");
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", keys.threadPattern(threadId), "COUNT", SCAN_COUNT);
      cursor = next;
      // MATCH narrows; parsing confirms (a namespace equal to the thread id also matches the pattern).
      const doomed = [...new Set(page)].filter((key) => threadOfKey(key) === threadId);
      if (doomed.length > 0) await this.client.unlink(...doomed); // UNLINK frees memory off the main thread
    } while (cursor !== "0");
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

  /** Two round trips for any number of checkpoints: a pipeline of HGETALL + SMEMBERS, then one MGET of the writes. */
  protected async loadTuples(scope: Scope, ids: string[]): Promise<CheckpointTuple[]> {
    const { threadId, checkpointNs } = scope;
    const pipeline = this.client.pipeline();
    for (const id of ids) {
      pipeline.hgetall(keys.checkpoint(threadId, checkpointNs, id));
      pipeline.smembers(keys.writeSet(threadId, checkpointNs, id));
    }
    const replies = (await pipeline.exec()) ?? [];
    const rows = ids.map((id, i) => {
      const [hashError, hash] = replies[2 * i] ?? [];
      const [setError, writeKeys] = replies[2 * i + 1] ?? [];
      if (hashError || setError) throw new RedisSaverError(`Reading checkpoint ${id} failed: ${(hashError ?? setError)!.message}`);
      return { id, hash: hash as Record<string, string>, writeKeys: (writeKeys as string[]).sort() };
    });
    const allWriteKeys = rows.flatMap((row) => row.writeKeys);
    const writeValues = allWriteKeys.length > 0 ? await this.client.mget(...allWriteKeys) : [];
    const writesByKey = new Map(allWriteKeys.map((key, i) => [key, writeValues[i]] as const));

    const tuples: CheckpointTuple[] = [];
    for (const { id, hash, writeKeys } of rows) {
      // An index entry whose checkpoint expired or was deleted: skip it rather than fail the listing.
      if (!hash || hash.body === undefined) continue;
      const pendingWrites = writeKeys
        .flatMap((key) => {
          const raw = writesByKey.get(key);
          if (raw == null) return [];
          const [, , , , taskPart, idxPart] = key.split("$");
          return [{ taskId: decodeComponent(taskPart!), idx: Number(idxPart), stored: JSON.parse(raw) as StoredWrite }];
        })
        .sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : a.idx - b.idx))
        .map(({ taskId, stored }): PendingWrite => [taskId, stored.channel, this.serde.loadsTyped(stored.type, Buffer.from(stored.value, "base64"))]);
      tuples.push({
        config: { threadId, checkpointNs, checkpointId: id },
        checkpoint: this.serde.loadsTyped(hash.type!, Buffer.from(hash.body, "base64")) as Checkpoint,
        metadata: JSON.parse(hash.metadata!) as CheckpointMetadata,
        ...(hash.parent ? { parentConfig: { threadId, checkpointNs, checkpointId: hash.parent } } : {}),
        pendingWrites,
      });
    }
    return tuples;
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
  const unsupported = filter.map(([key]) => key).filter((key) => !(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key));
  if (unsupported.length > 0) {
    throw new RedisSaverError(
      `list({ filter }) cannot filter on ${unsupported.map((k) => `"${k}"`).join(", ")}: RedisSaver supports ${SUPPORTED_FILTER_KEYS.join(", ")}. ` +
        "Remove the key or filter the results yourself; an unknown key is refused rather than ignored.",
    );
  }
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
  const ms = typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    throw new RedisSaverError(`list({ filter: { ${key} } }) needs an ISO-8601 time or epoch milliseconds, got ${JSON.stringify(value)}.`);
  }
  return ms;
}
