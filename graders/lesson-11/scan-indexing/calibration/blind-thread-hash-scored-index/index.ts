/**
 * Lesson 11 / scan-indexing: a Redis checkpoint saver that never blocks Redis.
 *
 * Design: one hash per (thread, namespace) holds every checkpoint of it (a field
 * per checkpoint id), one hash per checkpoint holds its pending writes (a field
 * per task and index, so HSETNX / HSET give the two write rules), and sorted sets
 * scored by the millisecond in the UUIDv7 id index them. Members with the same
 * score are ordered by the member itself, which is the id, so (score, member)
 * is exactly id order, and a page is resumed from the last (score, member) seen.
 * Components are base64url, and the thread sits in a hash tag, so no glob
 * character or separator can appear in a key and a thread's keys share a slot.
 *
 *   ck:{<t>}:<ns>:data                  hash   <id> -> JSON { type, body, meta, parent, ts }
 *   ck:{<t>}:<ns>:w:<id>                hash   JSON [task, idx] -> JSON { channel, type, value }
 *   ck:{<t>}:<ns>:blob                  hash   JSON [channel, version] -> JSON { type, value }
 *   ck:{<t>}:<ns>:z                     zset   ids, scored by the id's millisecond
 *   ck:{<t>}:<ns>:z:stage:<json value>  zset   ids whose metadata.stage is that value
 *   ck:{<t>}:<ns>:z:userId:<json value> zset   the same for metadata.userId
 *   ck:{<t>}:z                          zset   "<id>\0<ns>": every namespace of the thread
 *   ck:all                              zset   "<id>\0<json [thread, ns]>": every thread
 */
import type { ChainableCommander, Redis } from "ioredis";
import {
  blobRefs,
  isSpecialChannel,
  joinChannels,
  matchesFilter,
  parseListOptions,
  splitChannels,
  writeIndex,
  InvalidArgumentError,
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
import { JsonSerializer } from "#runtime";

export class RedisSaverError extends Error {
  override name = "RedisSaverError";
}

/** The filter keys list() answers; any other key is refused with a RedisSaverError naming it. */
export const SUPPORTED_FILTER_KEYS = ["stage", "userId", "source", "step", "createdAfter", "createdBefore"] as const;

export interface RedisSaverOptions {
  /** When set, every key the saver writes (checkpoint, writes, index) expires after this many seconds. */
  ttlSeconds?: number;
}

const GLOBAL_INDEX = "ck:all";
const PAGE = 100;
const SCAN_COUNT = 500;
const INDEXED_FIELDS = ["stage", "userId"] as const;
const UUID_V7 = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

type Scope = { threadId?: string; checkpointNs?: string; checkpointId?: string };
type Located = { threadId: string; checkpointNs: string; checkpointId: string };

const enc = (part: string) => Buffer.from(part, "utf8").toString("base64url");

const threadPrefix = (t: string) => `ck:{${enc(t)}}:`;
const nsPrefix = (t: string, ns: string) => `${threadPrefix(t)}${enc(ns)}:`;
const dataKey = (t: string, ns: string) => `${nsPrefix(t, ns)}data`;
const writesKey = (t: string, ns: string, id: string) => `${nsPrefix(t, ns)}w:${enc(id)}`;
const blobKey = (t: string, ns: string) => `${nsPrefix(t, ns)}blob`;
const indexKey = (t: string, ns: string) => `${nsPrefix(t, ns)}z`;
const fieldIndexKey = (t: string, ns: string, field: string, value: unknown) => `${nsPrefix(t, ns)}z:${field}:${enc(JSON.stringify(value))}`;
const threadIndexKey = (t: string) => `${threadPrefix(t)}z`;
const globalMember = (t: string, ns: string, id: string) => `${id}\u0000${JSON.stringify([t, ns])}`;
const blobField = (channel: string, version: string | number) => JSON.stringify([channel, String(version)]);

/**
 * The index score of an id: the Unix millisecond a UUIDv7 starts with (48 bits, exact in a double).
 * Checkpoints of one millisecond share a score and Redis orders them by member, i.e. by id,
 * so the order is the ids' string order either way. Ids that are not UUIDv7 all score 0 and
 * are ordered by the member alone.
 */
function scoreOf(id: string): number {
  const m = UUID_V7.exec(id);
  return m ? Number.parseInt(m[1]! + m[2]!, 16) : 0;
}

/** The thread a key of this saver belongs to, read back from its hash tag. */
function threadOfKey(key: string): string | undefined {
  const m = /^ck:\{([A-Za-z0-9_-]*)\}:/.exec(key);
  return m ? Buffer.from(m[1]!, "base64url").toString("utf8") : undefined;
}

function requireString(value: unknown, what: string, call: string, allowEmpty = false): string {
  if (typeof value !== "string" || (!allowEmpty && value.length === 0)) {
    throw new InvalidArgumentError(`${call} needs ${what} as a ${allowEmpty ? "" : "non-empty "}string, got ${JSON.stringify(value) ?? String(value)}.`);
  }
  return value;
}

function resolveConfig(config: RunnableConfig, call: string): { threadId: string; checkpointNs: string; checkpointId?: string } {
  if (typeof config !== "object" || config === null) throw new InvalidArgumentError(`${call} needs a config like { threadId: "thread-1" }.`);
  const threadId = requireString(config.threadId, "config.threadId", call);
  const checkpointNs = config.checkpointNs === undefined ? "" : requireString(config.checkpointNs, "config.checkpointNs", call, true);
  const checkpointId = config.checkpointId === undefined ? undefined : requireString(config.checkpointId, "config.checkpointId", call);
  return checkpointId === undefined ? { threadId, checkpointNs } : { threadId, checkpointNs, checkpointId };
}

function resolveScope(config: ListConfig | undefined): Scope {
  const c = config ?? {};
  const scope: Scope = {};
  if (c.threadId !== undefined) scope.threadId = requireString(c.threadId, "config.threadId", "list()");
  if (c.checkpointNs !== null) scope.checkpointNs = c.checkpointNs === undefined ? "" : requireString(c.checkpointNs, "config.checkpointNs", "list()", true);
  if (c.checkpointId !== undefined) scope.checkpointId = requireString(c.checkpointId, "config.checkpointId", "list()");
  return scope;
}

/** ISO-8601 or epoch milliseconds (a number or a string of digits) to epoch milliseconds. */
function toMillis(key: string, value: unknown): number {
  let ms = Number.NaN;
  if (typeof value === "number") ms = value;
  else if (typeof value === "string") ms = /^-?\d+$/.test(value.trim()) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new RedisSaverError(`list({ filter: { ${key} } }) needs an ISO-8601 date or epoch milliseconds, got ${JSON.stringify(value)}.`);
  }
  return ms;
}

interface StoredCheckpoint {
  type: string;
  body: string;
  meta: string;
  parent?: string;
  ts: string;
}

interface StoredValue {
  channel?: string;
  type: string;
  value: string;
}

export class RedisSaver implements CheckpointSaver {
  private readonly serde: SerializerProtocol = new JsonSerializer();

  constructor(
    protected readonly client: Redis,
    protected readonly options: RedisSaverOptions = {},
  ) {
    const ttl = options.ttlSeconds;
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
      throw new RedisSaverError(`ttlSeconds must be a positive integer, got ${String(ttl)}.`);
    }
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId: t, checkpointNs: ns, checkpointId: parentId } = resolveConfig(config, "put()");
    const id = requireString(checkpoint?.id, "checkpoint.id", "put()");
    const meta = metadata ?? {};
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const [type, bytes] = this.serde.dumpsTyped(body);
    const record: StoredCheckpoint = { type, body: Buffer.from(bytes).toString("base64"), meta: JSON.stringify(meta), ts: String(checkpoint.ts ?? "") };
    if (parentId !== undefined) record.parent = parentId;
    const blobFields: Record<string, string> = {};
    for (const { channel, version, value } of blobs) {
      const [blobType, blobBytes] = this.serde.dumpsTyped(value);
      blobFields[blobField(channel, version)] = JSON.stringify({ type: blobType, value: Buffer.from(blobBytes).toString("base64") });
    }

    const score = scoreOf(id);
    const tx = this.client.multi();
    const touched = [dataKey(t, ns)];
    tx.hset(dataKey(t, ns), id, JSON.stringify(record));
    if (blobs.length > 0) {
      tx.hset(blobKey(t, ns), blobFields);
      touched.push(blobKey(t, ns));
    }
    const indexes = [indexKey(t, ns)];
    for (const field of INDEXED_FIELDS) if (Object.hasOwn(meta, field)) indexes.push(fieldIndexKey(t, ns, field, meta[field]));
    for (const key of indexes) tx.zadd(key, score, id);
    tx.zadd(threadIndexKey(t), score, `${id}\u0000${ns}`);
    tx.zadd(GLOBAL_INDEX, score, globalMember(t, ns, id));
    touched.push(...indexes, threadIndexKey(t), GLOBAL_INDEX);
    this.expire(tx, touched);
    await this.exec(tx, "put()");
    return { threadId: t, checkpointNs: ns, checkpointId: id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId: t, checkpointNs: ns, checkpointId: id } = resolveConfig(config, "putWrites()");
    if (id === undefined) throw new InvalidArgumentError("putWrites() needs config.checkpointId: pass the config put() returned.");
    requireString(taskId, "taskId", "putWrites()");
    if (writes.length === 0) return;
    const rows = writes.map(([channel, value], position) => {
      const [type, bytes] = this.serde.dumpsTyped(value);
      const stored: StoredValue = { channel, type, value: Buffer.from(bytes).toString("base64") };
      return { field: JSON.stringify([taskId, writeIndex(channel, position)]), json: JSON.stringify(stored), special: isSpecialChannel(channel) };
    });
    const key = writesKey(t, ns, id);
    const tx = this.client.multi();
    for (const row of rows) {
      // Special channels: the newest write takes the slot. Regular: the first completed attempt stays.
      if (row.special) tx.hset(key, row.field, row.json);
      else tx.hsetnx(key, row.field, row.json);
    }
    this.expire(tx, [key]);
    await this.exec(tx, "putWrites()");
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (typeof config === "object" && config !== null && config.threadId === undefined) return undefined;
    const { threadId, checkpointNs, checkpointId } = resolveConfig(config, "getTuple()");
    if (checkpointId !== undefined) {
      const [tuple] = await this.load([{ threadId, checkpointNs, checkpointId }]);
      return tuple;
    }
    for await (const tuple of this.list({ threadId, checkpointNs }, { limit: 1 })) return tuple;
    return undefined;
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const rawFilter = options?.filter;
    if (rawFilter !== undefined && rawFilter !== null && typeof rawFilter === "object" && !Array.isArray(rawFilter)) {
      const unknown = Object.keys(rawFilter).filter((key) => !(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key));
      if (unknown.length > 0) {
        throw new RedisSaverError(`list() cannot filter on ${unknown.map((k) => `"${k}"`).join(", ")}: supported filter keys are ${SUPPORTED_FILTER_KEYS.join(", ")}.`);
      }
    }
    const scope = resolveScope(config);
    const { beforeId, limit, filter } = parseListOptions(options);
    const exact = filter.filter(([key]) => key !== "createdAfter" && key !== "createdBefore");
    const after = filter.find(([key]) => key === "createdAfter");
    const before = filter.find(([key]) => key === "createdBefore");
    const afterMs = after && toMillis("createdAfter", after[1]);
    const beforeMs = before && toMillis("createdBefore", before[1]);
    const keep = (tuple: CheckpointTuple): boolean => {
      if (!matchesFilter(tuple.metadata, exact)) return false;
      if (afterMs === undefined && beforeMs === undefined) return true;
      const ts = Date.parse(tuple.checkpoint.ts);
      return Number.isFinite(ts) && (afterMs === undefined || ts >= afterMs) && (beforeMs === undefined || ts < beforeMs);
    };

    if (scope.threadId !== undefined && scope.checkpointNs !== undefined && scope.checkpointId !== undefined) {
      if (beforeId !== undefined && !(scope.checkpointId < beforeId)) return;
      const [tuple] = await this.load([{ threadId: scope.threadId, checkpointNs: scope.checkpointNs, checkpointId: scope.checkpointId }]);
      if (tuple && keep(tuple)) yield tuple;
      return;
    }

    const { key, decode } = this.chooseIndex(scope, exact);
    const pageSize = filter.length === 0 && limit !== undefined ? Math.min(limit, PAGE) : PAGE;
    // Walk position: everything strictly below (score, member) in index order is still to come.
    let cursor: { score: number; member: string } | undefined = beforeId === undefined ? undefined : { score: scoreOf(beforeId), member: beforeId };
    let yielded = 0;
    for (;;) {
      const members = await this.page(key, cursor, pageSize);
      if (members.length === 0) return;
      cursor = members[members.length - 1]!;
      const located = members
        .map(({ member }) => decode(member))
        .filter((c): c is Located => c !== undefined)
        .filter(
          (c) =>
            (scope.threadId === undefined || c.threadId === scope.threadId) &&
            (scope.checkpointNs === undefined || c.checkpointNs === scope.checkpointNs) &&
            (scope.checkpointId === undefined || c.checkpointId === scope.checkpointId) &&
            (beforeId === undefined || c.checkpointId < beforeId),
        );
      for (const tuple of await this.load(located)) {
        if (tuple === undefined || !keep(tuple)) continue;
        yield tuple;
        if (limit !== undefined && ++yielded >= limit) return;
      }
      if (members.length < pageSize) return;
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    const t = requireString(threadId, "threadId", "deleteThread()");
    // ck:all carries no hash tag of the thread: take the thread's entries out of it before the walk.
    let cursor: { score: number; member: string } | undefined;
    for (;;) {
      const members = await this.page(threadIndexKey(t), cursor, SCAN_COUNT);
      if (members.length === 0) break;
      cursor = members[members.length - 1]!;
      await this.client.zrem(
        GLOBAL_INDEX,
        ...members.map(({ member }) => {
          const cut = member.indexOf("\u0000");
          return globalMember(t, member.slice(cut + 1), member.slice(0, cut));
        }),
      );
      if (members.length < SCAN_COUNT) break;
    }
    // base64url has no glob character, and the closing brace ends the thread's component.
    const pattern = `${threadPrefix(t)}*`;
    let scan = "0";
    do {
      const [next, keys] = await this.client.scan(scan, "MATCH", pattern, "COUNT", SCAN_COUNT);
      scan = next;
      const doomed = [...new Set(keys)].filter((key) => threadOfKey(key) === t);
      if (doomed.length > 0) await this.client.unlink(...doomed);
    } while (scan !== "0");
  }

  /**
   * The next `count` members strictly below `cursor` in (score, member) order, newest first, in one
   * round trip: the rest of the cursor's own millisecond (few members) and the page below it.
   */
  private async page(key: string, cursor: { score: number; member: string } | undefined, count: number): Promise<Array<{ score: number; member: string }>> {
    if (cursor === undefined) {
      return pairs(await this.client.zrange(key, "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 0, count, "WITHSCORES"));
    }
    const replies = (await this.client
      .pipeline()
      .zrange(key, cursor.score, cursor.score, "BYSCORE", "REV")
      .zrange(key, `(${cursor.score}`, "-inf", "BYSCORE", "REV", "LIMIT", 0, count, "WITHSCORES")
      .exec()) ?? [];
    const [sameErr, same] = replies[0] ?? [];
    const [belowErr, below] = replies[1] ?? [];
    if (sameErr) throw sameErr;
    if (belowErr) throw belowErr;
    const tied = ((same as string[] | undefined) ?? []).filter((m) => m < cursor.member).map((member) => ({ score: cursor.score, member }));
    return [...tied, ...pairs((below as string[] | undefined) ?? [])].slice(0, count);
  }

  private chooseIndex(scope: Scope, exact: Array<[string, unknown]>): { key: string; decode: (member: string) => Located | undefined } {
    const { threadId: t, checkpointNs: ns } = scope;
    if (t !== undefined && ns !== undefined) {
      const field = INDEXED_FIELDS.map((f) => exact.find(([key]) => key === f)).find((entry) => entry !== undefined);
      const key = field ? fieldIndexKey(t, ns, field[0], field[1]) : indexKey(t, ns);
      return { key, decode: (member) => ({ threadId: t, checkpointNs: ns, checkpointId: member }) };
    }
    if (t !== undefined) {
      return {
        key: threadIndexKey(t),
        decode: (member) => {
          const cut = member.indexOf("\u0000");
          return cut < 0 ? undefined : { threadId: t, checkpointNs: member.slice(cut + 1), checkpointId: member.slice(0, cut) };
        },
      };
    }
    return {
      key: GLOBAL_INDEX,
      decode: (member) => {
        const cut = member.indexOf("\u0000");
        if (cut < 0) return undefined;
        try {
          const [threadId, checkpointNs] = JSON.parse(member.slice(cut + 1)) as [string, string];
          return { threadId, checkpointNs, checkpointId: member.slice(0, cut) };
        } catch {
          return undefined;
        }
      },
    };
  }

  /**
   * Two round trips for any number of checkpoints: one pipeline of HMGET (bodies, per thread hash)
   * and HGETALL (writes), then one pipeline of HMGET on the blob hashes the bodies name.
   */
  private async load(located: Located[]): Promise<Array<CheckpointTuple | undefined>> {
    if (located.length === 0) return [];
    const groups = new Map<string, { t: string; ns: string; ids: string[] }>();
    for (const { threadId, checkpointNs, checkpointId } of located) {
      const k = dataKey(threadId, checkpointNs);
      const group = groups.get(k) ?? { t: threadId, ns: checkpointNs, ids: [] };
      group.ids.push(checkpointId);
      groups.set(k, group);
    }
    const pipe = this.client.pipeline();
    for (const [k, group] of groups) pipe.hmget(k, ...group.ids);
    for (const { threadId, checkpointNs, checkpointId } of located) pipe.hgetall(writesKey(threadId, checkpointNs, checkpointId));
    const replies = (await pipe.exec()) ?? [];
    for (const [error] of replies) if (error) throw error;
    const records = new Map<string, string | null>();
    [...groups.entries()].forEach(([k, group], g) => {
      const values = (replies[g]?.[1] as Array<string | null> | undefined) ?? [];
      group.ids.forEach((id, i) => records.set(`${k}\u0000${id}`, values[i] ?? null));
    });
    const staged = located.map((loc, i) => {
      const raw = records.get(`${dataKey(loc.threadId, loc.checkpointNs)}\u0000${loc.checkpointId}`);
      if (!raw) return undefined;
      const record = JSON.parse(raw) as StoredCheckpoint;
      const body = this.serde.loadsTyped(record.type, Buffer.from(record.body, "base64")) as Checkpoint;
      const writes = (replies[groups.size + i]?.[1] as Record<string, string> | undefined) ?? {};
      return { loc, record, body, refs: blobRefs(body), writes };
    });

    const blobPipe = this.client.pipeline();
    const blobAsks: Array<{ at: number }> = [];
    staged.forEach((s, at) => {
      if (s && s.refs.length > 0) {
        blobPipe.hmget(blobKey(s.loc.threadId, s.loc.checkpointNs), ...s.refs.map(([channel, version]) => blobField(channel, version)));
        blobAsks.push({ at });
      }
    });
    const blobValues = new Map<number, Array<string | null>>();
    if (blobAsks.length > 0) {
      const blobReplies = (await blobPipe.exec()) ?? [];
      blobAsks.forEach(({ at }, i) => {
        const [error, values] = blobReplies[i] ?? [];
        if (error) throw error;
        blobValues.set(at, (values as Array<string | null>) ?? []);
      });
    }

    return staged.map((s, at) => {
      if (!s) return undefined;
      const { loc, record, body } = s;
      const found = s.refs.map((_, i) => {
        const raw = blobValues.get(at)?.[i];
        if (!raw) return undefined;
        const blob = JSON.parse(raw) as StoredValue;
        return { value: this.serde.loadsTyped(blob.type, Buffer.from(blob.value, "base64")) };
      });
      const writes = Object.entries(s.writes)
        .map(([field, raw]) => {
          const [task, idx] = JSON.parse(field) as [string, number];
          return { task, idx, ...(JSON.parse(raw) as StoredValue) };
        })
        .sort((a, b) => (a.task < b.task ? -1 : a.task > b.task ? 1 : a.idx - b.idx));
      const tuple: CheckpointTuple = {
        config: { threadId: loc.threadId, checkpointNs: loc.checkpointNs, checkpointId: loc.checkpointId },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(record.meta) as CheckpointMetadata,
        pendingWrites: writes.map((w): PendingWrite => [w.task, w.channel ?? "", this.serde.loadsTyped(w.type, Buffer.from(w.value, "base64"))]),
      };
      if (record.parent !== undefined) tuple.parentConfig = { threadId: loc.threadId, checkpointNs: loc.checkpointNs, checkpointId: record.parent };
      return tuple;
    });
  }

  private expire(tx: ChainableCommander, keys: string[]): void {
    const ttl = this.options.ttlSeconds;
    if (ttl === undefined) return;
    for (const key of new Set(keys)) tx.expire(key, ttl);
  }

  private async exec(tx: ChainableCommander, call: string): Promise<void> {
    const results = await tx.exec();
    if (results === null) throw new RedisSaverError(`${call}: the transaction was aborted.`);
    for (const [error] of results) if (error) throw new RedisSaverError(`${call} failed: ${error.message}`);
  }
}

/** ZRANGE ... WITHSCORES replies alternate member and score. */
function pairs(flat: string[]): Array<{ score: number; member: string }> {
  const out: Array<{ score: number; member: string }> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) });
  return out;
}
