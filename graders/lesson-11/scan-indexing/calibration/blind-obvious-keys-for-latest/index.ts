/**
 * Lesson 11 / scan-indexing: a Redis checkpoint saver that never blocks Redis.
 *
 * Design:
 *   checkpoint$<t>$<ns>$<id>               hash: type, body (bytes), metadata (JSON), parent, ts, thread, ns
 *   writes$<t>$<ns>$<id>$<task>$<idx>      string: JSON { taskId, idx, channel, type, value (base64) }
 *   writeset$<t>$<ns>$<id>                 set: the writes keys of that checkpoint
 *   blob$<t>$<ns>$<channel>$<version>      hash: type, value (bytes): a versioned channel, once per version
 *   cpindex$<t>$<ns>                       sorted set, all scores 0: checkpoint ids (UUIDv7, so lex = time)
 *   cpindex$<t>$<ns>$stage$<json value>    sorted set: ids whose metadata.stage is that value
 *   cpindex$<t>$<ns>$userId$<json value>   sorted set: ids whose metadata.userId is that value
 *
 * Every component is percent-encoded (% $ * ? [ ] \ ^ become %XX), so a key has exactly one parse
 * and no glob character ever reaches a MATCH pattern. put and putWrites are one MULTI each, with
 * EXPIRE on every key when ttlSeconds is set. list walks an index newest first with
 * ZREVRANGEBYLEX (one round trip per page), fetches a page's hashes and write sets in one pipeline
 * and its writes and blobs in one MGET-style pipeline: list({ limit: 10 }) is 3 round trips.
 */
import type { Redis } from "ioredis";
import {
  InvalidArgumentError,
  JsonSerializer,
  blobRefs,
  isSpecialChannel,
  joinChannels,
  matchesFilter,
  parseListOptions,
  splitChannels,
  writeIndex,
  type Checkpoint,
  type ChannelVersions,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListConfig,
  type ListOptions,
  type PendingWrite,
  type RunnableConfig,
  type SerializerProtocol,
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

/** Metadata fields that get a sorted set of their own. */
const INDEXED_FIELDS = ["stage", "userId"] as const;
const SCAN_COUNT = 500;
const PAGE = 100;

/** % first, so encoding is reversible; $ is the separator; the rest are glob characters. */
export function encodeComponent(value: string): string {
  return value.replace(/[%$*?[\]\\^]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

type Scope = { threadId: string; ns: string };
type Located = Scope & { id: string };

interface StoredHash {
  type?: Buffer;
  body?: Buffer;
  metadata?: Buffer;
  parent?: Buffer;
  ts?: Buffer;
  thread?: Buffer;
  ns?: Buffer;
}

interface StoredWrite {
  taskId: string;
  idx: number;
  channel: string;
  type: string;
  value: string;
}

const k = {
  checkpoint: (s: Scope, id: string) => `checkpoint$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${encodeComponent(id)}`,
  writes: (s: Scope, id: string, taskId: string, idx: number) =>
    `writes$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${encodeComponent(id)}$${encodeComponent(taskId)}$${idx}`,
  writeset: (s: Scope, id: string) => `writeset$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${encodeComponent(id)}`,
  blob: (s: Scope, channel: string, version: string | number) =>
    `blob$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${encodeComponent(channel)}$${encodeComponent(JSON.stringify(version))}`,
  index: (s: Scope) => `cpindex$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}`,
  fieldIndex: (s: Scope, field: string, value: unknown) =>
    `cpindex$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${field}$${encodeComponent(JSON.stringify(value))}`,
};

function decodeComponent(value: string): string {
  return value.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function requireThread(config: RunnableConfig | undefined, call: string): Scope & { checkpointId?: string } {
  if (typeof config !== "object" || config === null) throw new InvalidArgumentError(`${call} needs a config like { threadId: "thread-1" }.`);
  const { threadId, checkpointNs = "", checkpointId } = config;
  if (typeof threadId !== "string" || threadId === "") throw new InvalidArgumentError(`${call} needs config.threadId, a non-empty string.`);
  if (typeof checkpointNs !== "string") throw new InvalidArgumentError(`${call}: config.checkpointNs must be a string.`);
  if (checkpointId !== undefined && (typeof checkpointId !== "string" || checkpointId === "")) throw new InvalidArgumentError(`${call}: config.checkpointId must be a non-empty string.`);
  return checkpointId === undefined ? { threadId, ns: checkpointNs } : { threadId, ns: checkpointNs, checkpointId };
}

function isIndexable(value: unknown): value is string | number | boolean | null {
  return value === null || typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
}

function parseTime(key: string, value: unknown): number {
  const ms = typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms)) throw new RedisSaverError(`list({ filter: { ${key} } }) needs an ISO-8601 string or epoch milliseconds, got ${JSON.stringify(value)}.`);
  return ms;
}

/** Newest-first walk of one sorted set, a page per round trip, strictly below `before`. */
class IndexCursor {
  private buffer: string[] = [];
  private max: string;
  private done = false;

  constructor(
    private readonly client: Redis,
    readonly key: string,
    readonly scope: Scope,
    before: string | undefined,
    private readonly pageSize: number,
  ) {
    this.max = before === undefined ? "+" : `(${before}`;
  }

  async peek(): Promise<string | undefined> {
    if (this.buffer.length === 0 && !this.done) {
      const page = await this.client.zrevrangebylex(this.key, this.max, "-", "LIMIT", 0, this.pageSize);
      if (page.length < this.pageSize) this.done = true;
      if (page.length > 0) this.max = `(${page[page.length - 1]!}`;
      this.buffer = page;
    }
    return this.buffer[0];
  }

  /** Up to n ids from the buffer (fetching one page if it is empty). */
  async take(n: number): Promise<string[]> {
    await this.peek();
    return this.buffer.splice(0, n);
  }

  shift(): string | undefined {
    return this.buffer.shift();
  }
}

export class RedisSaver implements CheckpointSaver {
  private readonly serde: SerializerProtocol = new JsonSerializer();

  constructor(
    protected readonly client: Redis,
    protected readonly options: RedisSaverOptions = {},
  ) {
    const ttl = options.ttlSeconds;
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
      throw new RedisSaverError(`ttlSeconds must be a positive integer number of seconds, got ${String(ttl)}.`);
    }
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, ns, checkpointId: parentId } = requireThread(config, "put()");
    if (typeof checkpoint?.id !== "string" || checkpoint.id === "") throw new InvalidArgumentError("put() needs a checkpoint with a string id.");
    const scope = { threadId, ns };
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const [type, bytes] = this.serde.dumpsTyped(body);
    const multi = this.client.multi();
    const touched: string[] = [];
    for (const blob of blobs) {
      const [blobType, blobBytes] = this.serde.dumpsTyped(blob.value);
      const key = k.blob(scope, blob.channel, blob.version);
      multi.hset(key, "type", blobType, "value", Buffer.from(blobBytes));
      touched.push(key);
    }
    const cpKey = k.checkpoint(scope, checkpoint.id);
    multi.hset(cpKey, {
      type,
      body: Buffer.from(bytes),
      metadata: JSON.stringify(metadata),
      parent: parentId ?? "",
      ts: checkpoint.ts,
      thread: threadId,
      ns,
    });
    touched.push(cpKey);
    const indexKeys = [k.index(scope)];
    for (const field of INDEXED_FIELDS) {
      const value = (metadata as Record<string, unknown>)[field];
      if (Object.hasOwn(metadata, field) && isIndexable(value)) indexKeys.push(k.fieldIndex(scope, field, value));
    }
    for (const key of indexKeys) multi.zadd(key, 0, checkpoint.id);
    touched.push(...indexKeys);
    this.expireAll(multi, touched);
    await multi.exec().then(check);
    return { threadId, checkpointNs: ns, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, ns, checkpointId } = requireThread(config, "putWrites()");
    if (checkpointId === undefined) throw new InvalidArgumentError("putWrites() needs config.checkpointId: writes belong to one checkpoint.");
    if (typeof taskId !== "string" || taskId === "") throw new InvalidArgumentError("putWrites() needs a non-empty taskId.");
    if (writes.length === 0) return;
    const scope = { threadId, ns };
    const setKey = k.writeset(scope, checkpointId);
    const multi = this.client.multi();
    const touched = [setKey];
    writes.forEach(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const key = k.writes(scope, checkpointId, taskId, idx);
      const [type, bytes] = this.serde.dumpsTyped(value);
      const record: StoredWrite = { taskId, idx, channel, type, value: Buffer.from(bytes).toString("base64") };
      // Special channels replace their fixed slot; a regular write never overwrites the first attempt.
      if (isSpecialChannel(channel)) multi.set(key, JSON.stringify(record));
      else multi.set(key, JSON.stringify(record), "NX");
      multi.sadd(setKey, key);
      touched.push(key);
    });
    this.expireAll(multi, touched);
    await multi.exec().then(check);
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (typeof config === "object" && config !== null && config.threadId === undefined) return undefined;
    const { threadId, ns, checkpointId } = requireThread(config, "getTuple()");
    const scope = { threadId, ns };
    if (checkpointId !== undefined) return (await this.load([{ ...scope, id: checkpointId }]))[0];
    // The latest checkpoint: the thread's checkpoint keys, newest id last (UUIDv7 sorts by time).
    const prefix = `checkpoint$${encodeComponent(threadId)}$${encodeComponent(ns)}$`;
    const keys = await this.client.keys(`${prefix}*`);
    const ids = keys.map((key) => decodeComponent(key.slice(prefix.length))).sort();
    const latest = ids[ids.length - 1];
    return latest === undefined ? undefined : (await this.load([{ ...scope, id: latest }]))[0];
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const filter = options?.filter ?? {};
    if (typeof filter === "object" && filter !== null && !Array.isArray(filter)) {
      for (const key of Object.keys(filter)) {
        if (!(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key)) {
          throw new RedisSaverError(`list() cannot filter on "${key}": supported filter keys are ${SUPPORTED_FILTER_KEYS.join(", ")}.`);
        }
      }
    }
    const { createdAfter, createdBefore, ...exact } = (filter ?? {}) as Record<string, unknown>;
    const after = createdAfter === undefined ? undefined : parseTime("createdAfter", createdAfter);
    const beforeTs = createdBefore === undefined ? undefined : parseTime("createdBefore", createdBefore);
    const parsed = parseListOptions({ ...options, filter: exact });
    const { beforeId, limit } = parsed;
    const scope = parseScope(config);

    // Pick the most selective index: a field index when the filter names one.
    const field = INDEXED_FIELDS.find((f) => Object.hasOwn(exact, f));
    const hasPostFilter = parsed.filter.length > (field ? 1 : 0) || after !== undefined || beforeTs !== undefined;
    const pageSize = limit !== undefined && !hasPostFilter ? Math.min(limit, PAGE) : PAGE;

    if (scope.checkpointId !== undefined) {
      // One checkpoint by id (in one thread, or every thread / namespace that has it).
      if (beforeId !== undefined && !(scope.checkpointId < beforeId)) return;
      const scopes = await this.scopes(scope);
      const tuples = await this.load(scopes.map((s) => ({ ...s, id: scope.checkpointId! })));
      let yielded = 0;
      for (const tuple of tuples.filter((t): t is CheckpointTuple => t !== undefined).sort(newestFirst)) {
        if (limit !== undefined && yielded >= limit) return;
        if (!this.matches(tuple, parsed.filter, after, beforeTs)) continue;
        yielded++;
        yield tuple;
      }
      return;
    }

    const scopes = await this.scopes(scope);
    const cursors = scopes.map(
      (s) => new IndexCursor(this.client, field ? k.fieldIndex(s, field, exact[field]) : k.index(s), s, beforeId, pageSize),
    );
    let yielded = 0;
    for (;;) {
      if (limit !== undefined && yielded >= limit) return;
      const batch = await nextBatch(cursors, pageSize);
      if (batch.length === 0) return;
      for (const tuple of await this.load(batch)) {
        if (tuple === undefined || !this.matches(tuple, parsed.filter, after, beforeTs)) continue;
        if (limit !== undefined && yielded >= limit) return;
        yielded++;
        yield tuple;
      }
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    if (typeof threadId !== "string" || threadId === "") throw new InvalidArgumentError("deleteThread() needs a non-empty thread id.");
    const encoded = encodeComponent(threadId); // no glob character and no separator can be in it
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", `*$${encoded}$*`, "COUNT", SCAN_COUNT);
      cursor = next;
      // `*$t$*` also matches a namespace or id equal to t: keep keys whose thread component is t.
      const doomed = [...new Set(page)].filter((key) => key.split("$")[1] === encoded && KEY_KINDS.has(key.split("$")[0]!));
      if (doomed.length > 0) await this.client.unlink(...doomed);
    } while (cursor !== "0");
  }

  // ------------------------------------------------------------ helpers

  private expireAll(multi: ReturnType<Redis["multi"]>, keys: string[]): void {
    const ttl = this.options.ttlSeconds;
    if (ttl === undefined) return;
    for (const key of new Set(keys)) multi.expire(key, ttl);
  }

  private matches(tuple: CheckpointTuple, exact: Array<[string, string | number | boolean | null]>, after: number | undefined, before: number | undefined): boolean {
    if (!matchesFilter(tuple.metadata, exact)) return false;
    if (after === undefined && before === undefined) return true;
    const ts = Date.parse(tuple.checkpoint.ts);
    if (!Number.isFinite(ts)) return false;
    return (after === undefined || ts >= after) && (before === undefined || ts < before);
  }

  /** The (thread, namespace) pairs a list() scope covers: one, or found by SCAN over index keys. */
  private async scopes(scope: { threadId?: string; checkpointNs?: string }): Promise<Scope[]> {
    if (scope.threadId !== undefined && scope.checkpointNs !== undefined) return [{ threadId: scope.threadId, ns: scope.checkpointNs }];
    const t = scope.threadId === undefined ? "*" : encodeComponent(scope.threadId);
    const n = scope.checkpointNs === undefined ? "*" : encodeComponent(scope.checkpointNs);
    const found = new Map<string, Scope>();
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", `cpindex$${t}$${n}`, "COUNT", SCAN_COUNT);
      cursor = next;
      for (const key of page) {
        const parts = key.split("$");
        if (parts.length !== 3 || parts[0] !== "cpindex") continue; // field indexes have more parts
        const s = { threadId: decodeComponent(parts[1]!), ns: decodeComponent(parts[2]!) };
        if ((scope.threadId !== undefined && s.threadId !== scope.threadId) || (scope.checkpointNs !== undefined && s.ns !== scope.checkpointNs)) continue;
        found.set(key, s);
      }
    } while (cursor !== "0");
    return [...found.values()];
  }

  /** Loads checkpoints in two round trips: one pipeline of hashes + write sets, one of writes + blobs. */
  private async load(located: Located[]): Promise<Array<CheckpointTuple | undefined>> {
    if (located.length === 0) return [];
    const first = this.client.pipeline();
    for (const loc of located) {
      first.hgetallBuffer(k.checkpoint(loc, loc.id));
      first.smembers(k.writeset(loc, loc.id));
    }
    const replies = check(await first.exec());
    const hashes: Array<StoredHash | undefined> = [];
    const writeKeys: string[][] = [];
    const bodies: Array<Checkpoint | undefined> = [];
    located.forEach((_, i) => {
      const hash = replies[2 * i] as StoredHash;
      const present = hash !== null && typeof hash === "object" && hash.body !== undefined && hash.type !== undefined;
      hashes.push(present ? hash : undefined);
      writeKeys.push(present ? ((replies[2 * i + 1] as string[]) ?? []) : []);
      bodies.push(present ? (this.serde.loadsTyped(hash.type!.toString("utf8"), hash.body!) as Checkpoint) : undefined);
    });
    const allWriteKeys = writeKeys.flat();
    const allBlobKeys = located.flatMap((loc, i) => (bodies[i] ? blobRefs(bodies[i]!).map(([channel, version]) => k.blob(loc, channel, version)) : []));
    let writeValues: Array<string | null> = [];
    let blobValues: Array<{ type?: Buffer; value?: Buffer }> = [];
    if (allWriteKeys.length + allBlobKeys.length > 0) {
      const second = this.client.pipeline();
      if (allWriteKeys.length > 0) second.mget(...allWriteKeys);
      for (const key of allBlobKeys) second.hgetallBuffer(key);
      const out = check(await second.exec());
      if (allWriteKeys.length > 0) writeValues = out.shift() as Array<string | null>;
      blobValues = out as Array<{ type?: Buffer; value?: Buffer }>;
    }
    let w = 0;
    let b = 0;
    return located.map((loc, i) => {
      const hash = hashes[i];
      const body = bodies[i];
      const count = writeKeys[i]!.length;
      const writes = writeValues.slice(w, w + count);
      w += count;
      if (!hash || !body) return undefined;
      const refs = blobRefs(body);
      const blobs = blobValues.slice(b, b + refs.length);
      b += refs.length;
      const found = blobs.map((blob) => (blob && blob.type && blob.value ? { value: this.serde.loadsTyped(blob.type.toString("utf8"), blob.value) } : undefined));
      const stored = writes.filter((x): x is string => typeof x === "string").map((x) => JSON.parse(x) as StoredWrite);
      stored.sort((a, c) => (a.taskId < c.taskId ? -1 : a.taskId > c.taskId ? 1 : a.idx - c.idx));
      const parent = hash.parent?.toString("utf8") ?? "";
      return {
        config: { threadId: loc.threadId, checkpointNs: loc.ns, checkpointId: loc.id },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(hash.metadata?.toString("utf8") ?? "{}") as CheckpointMetadata,
        ...(parent !== "" && { parentConfig: { threadId: loc.threadId, checkpointNs: loc.ns, checkpointId: parent } }),
        pendingWrites: stored.map((x): PendingWrite => [x.taskId, x.channel, this.serde.loadsTyped(x.type, Buffer.from(x.value, "base64"))]),
      };
    });
  }
}

const KEY_KINDS = new Set(["checkpoint", "writes", "writeset", "blob", "cpindex"]);

function parseScope(config: ListConfig | undefined): { threadId?: string; checkpointNs?: string; checkpointId?: string } {
  const c = config ?? {};
  if (typeof c !== "object") throw new InvalidArgumentError("list() needs a config object.");
  if (c.threadId !== undefined && (typeof c.threadId !== "string" || c.threadId === "")) throw new InvalidArgumentError("list(): config.threadId must be a non-empty string.");
  if (c.checkpointNs !== undefined && c.checkpointNs !== null && typeof c.checkpointNs !== "string") throw new InvalidArgumentError("list(): config.checkpointNs must be a string or null.");
  const ns = c.checkpointNs === undefined ? "" : c.checkpointNs;
  return {
    ...(c.threadId !== undefined && { threadId: c.threadId }),
    ...(ns !== null && { checkpointNs: ns }),
    ...(c.checkpointId !== undefined && { checkpointId: c.checkpointId }),
  };
}

/** Merges the cursors newest first and returns up to `size` located ids (one round trip per page refill). */
async function nextBatch(cursors: IndexCursor[], size: number): Promise<Located[]> {
  if (cursors.length === 1) {
    const cursor = cursors[0]!;
    return (await cursor.take(size)).map((id) => ({ ...cursor.scope, id }));
  }
  const out: Located[] = [];
  while (out.length < size) {
    let best: IndexCursor | undefined;
    let bestId: string | undefined;
    for (const cursor of cursors) {
      const id = await cursor.peek();
      if (id !== undefined && (bestId === undefined || id > bestId)) {
        best = cursor;
        bestId = id;
      }
    }
    if (!best || bestId === undefined) break;
    best.shift();
    out.push({ ...best.scope, id: bestId });
  }
  return out;
}

function newestFirst(a: CheckpointTuple, b: CheckpointTuple): number {
  const x = a.config.checkpointId;
  const y = b.config.checkpointId;
  return x < y ? 1 : x > y ? -1 : 0;
}

/** Turns per-command errors of a MULTI / pipeline into one thrown error; returns the replies. */
function check(results: Array<[Error | null, unknown]> | null): unknown[] {
  if (results === null) throw new RedisSaverError("Redis transaction was aborted.");
  return results.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}
