/**
 * Lesson 11 / scan-indexing: a Redis checkpoint saver that never blocks Redis.
 *
 * Design: writes are Lua scripts (EVAL), so a checkpoint, its index entries, its metadata row and
 * the TTL on all of them land in one atomic server-side step and one round trip; a per-thread
 * metadata hash lets list() filter a page of ids with one HMGET before any body is fetched.
 *
 *   checkpoint$<t>$<ns>$<id>               hash: type, body (the serializer's UTF-8 JSON), metadata, parent, ts
 *   writes$<t>$<ns>$<id>$<task>$<idx>      string: JSON { taskId, idx, channel, type, value (base64) }
 *   writeset$<t>$<ns>$<id>                 set of that checkpoint's writes keys
 *   blob$<t>$<ns>$<channel>$<version>      string: JSON { type, value (base64) }
 *   cpindex$<t>$<ns>                       sorted set, scores 0, members = ids (UUIDv7: lex order = time)
 *   cpindex$<t>$<ns>$stage|userId$<json>   sorted set per indexed metadata value
 *   cpmeta$<t>$<ns>                        hash: id -> JSON { metadata, ts } (filters without bodies)
 *
 * Ids: `%` and the separator `$` are percent-encoded, so a key has one parse; glob characters stay
 * in keys but are escaped with a backslash in every MATCH pattern, and matched keys are parsed
 * and compared component by component before anything is deleted.
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

/** % first, so encoding is reversible; $ is the separator. Glob characters are escaped in patterns instead. */
export function encodeComponent(value: string): string {
  return value.replace(/[%$]/g, (c) => (c === "%" ? "%25" : "%24"));
}

/** Redis glob escape: a backslash before each of * ? [ ] \ so the text matches only itself. */
export function globEscape(value: string): string {
  return value.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

const PUT_SCRIPT = `
local ttl = tonumber(ARGV[1])
local nIndex = tonumber(ARGV[2])
local nBlobs = tonumber(ARGV[3])
local id = ARGV[4]
redis.call('HSET', KEYS[1], 'type', ARGV[5], 'body', ARGV[6], 'metadata', ARGV[7], 'parent', ARGV[8], 'ts', ARGV[9])
local k = 2
for i = 1, nIndex do
  redis.call('ZADD', KEYS[k], 0, id)
  k = k + 1
end
redis.call('HSET', KEYS[k], id, ARGV[10])
k = k + 1
for i = 1, nBlobs do
  redis.call('SET', KEYS[k], ARGV[10 + i])
  k = k + 1
end
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1
`;

/** KEYS[1] = write set, KEYS[2..] = write keys; ARGV[1] = ttl, then (special flag, record) per write. */
const PUT_WRITES_SCRIPT = `
local ttl = tonumber(ARGV[1])
for i = 2, #KEYS do
  local special = ARGV[2 * (i - 1)]
  local record = ARGV[2 * (i - 1) + 1]
  if special == '1' then
    redis.call('SET', KEYS[i], record)
  else
    redis.call('SET', KEYS[i], record, 'NX')
  end
  redis.call('SADD', KEYS[1], KEYS[i])
end
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1
`;

type Scope = { threadId: string; ns: string };
type Located = Scope & { id: string };

interface StoredHash {
  type?: string;
  body?: string;
  metadata?: string;
  parent?: string;
  ts?: string;
  thread?: string;
  ns?: string;
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
  meta: (s: Scope) => `cpmeta$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}`,
  index: (s: Scope) => `cpindex$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}`,
  fieldIndex: (s: Scope, field: string, value: unknown) =>
    `cpindex$${encodeComponent(s.threadId)}$${encodeComponent(s.ns)}$${field}$${encodeComponent(JSON.stringify(value))}`,
};

function decodeComponent(value: string): string {
  return value.replace(/%2[45]/g, (c) => (c === "%25" ? "%" : "$"));
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
    const indexKeys = [k.index(scope)];
    for (const field of INDEXED_FIELDS) {
      const value = (metadata as Record<string, unknown>)[field];
      if (Object.hasOwn(metadata, field) && isIndexable(value)) indexKeys.push(k.fieldIndex(scope, field, value));
    }
    const blobKeys: string[] = [];
    const blobValues: string[] = [];
    for (const blob of blobs) {
      const [blobType, blobBytes] = this.serde.dumpsTyped(blob.value);
      blobKeys.push(k.blob(scope, blob.channel, blob.version));
      blobValues.push(JSON.stringify({ type: blobType, value: Buffer.from(blobBytes).toString("base64") }));
    }
    const metadataJson = JSON.stringify(metadata);
    const keys = [k.checkpoint(scope, checkpoint.id), ...indexKeys, k.meta(scope), ...blobKeys];
    await this.client.eval(
      PUT_SCRIPT,
      keys.length,
      ...keys,
      String(this.options.ttlSeconds ?? 0),
      String(indexKeys.length),
      String(blobKeys.length),
      checkpoint.id,
      type,
      Buffer.from(bytes).toString("utf8"),
      metadataJson,
      parentId ?? "",
      checkpoint.ts,
      JSON.stringify({ metadata, ts: checkpoint.ts }),
      ...blobValues,
    );
    return { threadId, checkpointNs: ns, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, ns, checkpointId } = requireThread(config, "putWrites()");
    if (checkpointId === undefined) throw new InvalidArgumentError("putWrites() needs config.checkpointId: writes belong to one checkpoint.");
    if (typeof taskId !== "string" || taskId === "") throw new InvalidArgumentError("putWrites() needs a non-empty taskId.");
    if (writes.length === 0) return;
    const scope = { threadId, ns };
    const setKey = k.writeset(scope, checkpointId);
    const keys = [setKey];
    const args: string[] = [String(this.options.ttlSeconds ?? 0)];
    writes.forEach(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const [type, bytes] = this.serde.dumpsTyped(value);
      const record: StoredWrite = { taskId, idx, channel, type, value: Buffer.from(bytes).toString("base64") };
      keys.push(k.writes(scope, checkpointId, taskId, idx));
      // Special channels replace their fixed slot; a regular write never overwrites the first attempt.
      args.push(isSpecialChannel(channel) ? "1" : "0", JSON.stringify(record));
    });
    await this.client.eval(PUT_WRITES_SCRIPT, keys.length, ...keys, ...args);
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (typeof config === "object" && config !== null && config.threadId === undefined) return undefined;
    const { threadId, ns, checkpointId } = requireThread(config, "getTuple()");
    const scope = { threadId, ns };
    if (checkpointId !== undefined) return (await this.load([{ ...scope, id: checkpointId }]))[0];
    // The newest id from the index; an entry whose checkpoint has gone is skipped, not trusted.
    const cursor = new IndexCursor(this.client, k.index(scope), scope, undefined, 1);
    for (;;) {
      const ids = await cursor.take(1);
      if (ids.length === 0) return undefined;
      const [tuple] = await this.load(ids.map((id) => ({ ...scope, id })));
      if (tuple) return tuple;
    }
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
      const page = await nextBatch(cursors, pageSize);
      if (page.length === 0) return;
      // With filters beyond the walked index, read the page's metadata rows first (one round trip)
      // and fetch bodies only for the matches.
      const batch = hasPostFilter ? await this.prefilter(page, parsed.filter, after, beforeTs) : page;
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
    const encoded = encodeComponent(threadId); // no separator can be in it; glob characters are escaped below
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", `*$${globEscape(encoded)}$*`, "COUNT", SCAN_COUNT);
      cursor = next;
      // `*$t$*` also matches a namespace or id equal to t: keep keys whose thread component is t.
      const doomed = [...new Set(page)].filter((key) => key.split("$")[1] === encoded && KEY_KINDS.has(key.split("$")[0]!));
      if (doomed.length > 0) await this.client.unlink(...doomed);
    } while (cursor !== "0");
  }

  // ------------------------------------------------------------ helpers

  private async prefilter(page: Located[], exact: Array<[string, string | number | boolean | null]>, after: number | undefined, before: number | undefined): Promise<Located[]> {
    const groups = new Map<string, Located[]>();
    for (const loc of page) {
      const key = k.meta(loc);
      groups.set(key, [...(groups.get(key) ?? []), loc]);
    }
    const pipeline = this.client.pipeline();
    for (const [key, locs] of groups) pipeline.hmget(key, ...locs.map((l) => l.id));
    const replies = check(await pipeline.exec()) as Array<Array<string | null>>;
    const keep = new Set<Located>();
    [...groups.values()].forEach((locs, g) => {
      locs.forEach((loc, i) => {
        const row = replies[g]?.[i];
        if (typeof row !== "string") return; // gone (expired): skipped, not trusted
        const { metadata, ts } = JSON.parse(row) as { metadata: CheckpointMetadata; ts: string };
        if (this.matchesRow(metadata, ts, exact, after, before)) keep.add(loc);
      });
    });
    return page.filter((loc) => keep.has(loc));
  }

  private matchesRow(metadata: CheckpointMetadata, tsText: string, exact: Array<[string, string | number | boolean | null]>, after: number | undefined, before: number | undefined): boolean {
    if (!matchesFilter(metadata, exact)) return false;
    if (after === undefined && before === undefined) return true;
    const ts = Date.parse(tsText);
    return Number.isFinite(ts) && (after === undefined || ts >= after) && (before === undefined || ts < before);
  }

  private matches(tuple: CheckpointTuple, exact: Array<[string, string | number | boolean | null]>, after: number | undefined, before: number | undefined): boolean {
    return this.matchesRow(tuple.metadata, tuple.checkpoint.ts, exact, after, before);
  }

  /** The (thread, namespace) pairs a list() scope covers: one, or found by SCAN over index keys. */
  private async scopes(scope: { threadId?: string; checkpointNs?: string }): Promise<Scope[]> {
    if (scope.threadId !== undefined && scope.checkpointNs !== undefined) return [{ threadId: scope.threadId, ns: scope.checkpointNs }];
    const t = scope.threadId === undefined ? "*" : globEscape(encodeComponent(scope.threadId));
    const n = scope.checkpointNs === undefined ? "*" : globEscape(encodeComponent(scope.checkpointNs));
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
      first.hgetall(k.checkpoint(loc, loc.id));
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
      bodies.push(present ? (this.serde.loadsTyped(hash.type!, Buffer.from(hash.body!, "utf8")) as Checkpoint) : undefined);
    });
    const allWriteKeys = writeKeys.flat();
    const allBlobKeys = located.flatMap((loc, i) => (bodies[i] ? blobRefs(bodies[i]!).map(([channel, version]) => k.blob(loc, channel, version)) : []));
    const values = allWriteKeys.length + allBlobKeys.length > 0 ? await this.client.mget(...allWriteKeys, ...allBlobKeys) : [];
    const writeValues = values.slice(0, allWriteKeys.length);
    const blobValues = values.slice(allWriteKeys.length).map((x) => (x === null ? undefined : (JSON.parse(x) as { type: string; value: string })));
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
      const found = blobs.map((blob) => (blob ? { value: this.serde.loadsTyped(blob.type, Buffer.from(blob.value, "base64")) } : undefined));
      const stored = writes.filter((x): x is string => typeof x === "string").map((x) => JSON.parse(x) as StoredWrite);
      stored.sort((a, c) => (a.taskId < c.taskId ? -1 : a.taskId > c.taskId ? 1 : a.idx - c.idx));
      const parent = hash.parent ?? "";
      return {
        config: { threadId: loc.threadId, checkpointNs: loc.ns, checkpointId: loc.id },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(hash.metadata ?? "{}") as CheckpointMetadata,
        ...(parent !== "" && { parentConfig: { threadId: loc.threadId, checkpointNs: loc.ns, checkpointId: parent } }),
        pendingWrites: stored.map((x): PendingWrite => [x.taskId, x.channel, this.serde.loadsTyped(x.type, Buffer.from(x.value, "base64"))]),
      };
    });
  }
}

const KEY_KINDS = new Set(["checkpoint", "writes", "writeset", "blob", "cpindex", "cpmeta"]);

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
