/**
 * Lesson 11 / scan-indexing: a Redis checkpoint saver that never blocks Redis.
 *
 * Design: ids stay readable in the keys. Only the separator `:` and the escape
 * character `\` are escaped inside a key component (`\:`, `\\`), so every key has
 * exactly one parse, and every key of a thread starts with `cp:<thread>:`. A
 * SCAN pattern is that prefix with Redis glob characters backslash-escaped, so a
 * thread id such as `t*` or `a[1]` matches only itself.
 *
 *   cp:<t>:<ns>:c:<id>                    hash   type, body (base64), meta (JSON), parent, ts
 *   cp:<t>:<ns>:w:<id>:<task>:<idx>       string JSON { task, idx, channel, type, value }
 *   cp:<t>:<ns>:ws:<id>                   set    the writes keys of that checkpoint
 *   cp:<t>:<ns>:b:<channel>:<version>     string JSON { type, value } (a versioned channel's value)
 *   cp:<t>:<ns>:i                         zset   ids, score 0 (lexicographic = creation order)
 *   cp:<t>:<ns>:i:stage:<json value>      zset   ids whose metadata.stage is that value
 *   cp:<t>:<ns>:i:userId:<json value>     zset   ids whose metadata.userId is that value
 *   cp:<t>:a                              zset   "<id>\0<ns>" for every namespace of the thread
 *   cpx:all                               zset   "<id>\0<json [thread, ns]>" for list() without threadId
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

const GLOBAL_INDEX = "cpx:all";
const PAGE = 100;
const SCAN_COUNT = 500;
const INDEXED_FIELDS = ["stage", "userId"] as const;

type Scope = { threadId?: string; checkpointNs?: string; checkpointId?: string };
type Located = { threadId: string; checkpointNs: string; checkpointId: string };

/** Escapes the separator and the escape character inside one key component. */
function esc(part: string): string {
  return part.replace(/[\\:]/g, (c) => `\\${c}`);
}

/** Escapes Redis glob syntax so a literal string can sit inside a MATCH pattern. */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]^]/g, (c) => `\\${c}`);
}

/** Splits a key on unescaped separators and undoes the escaping of each component. */
function parseKey(key: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === "\\" && i + 1 < key.length) {
      current += key[++i]!;
    } else if (c === ":") {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

const threadPrefix = (t: string) => `cp:${esc(t)}:`;
const nsPrefix = (t: string, ns: string) => `${threadPrefix(t)}${esc(ns)}:`;
const checkpointKey = (t: string, ns: string, id: string) => `${nsPrefix(t, ns)}c:${esc(id)}`;
const writeSetKey = (t: string, ns: string, id: string) => `${nsPrefix(t, ns)}ws:${esc(id)}`;
const writeKey = (t: string, ns: string, id: string, task: string, idx: number) => `${nsPrefix(t, ns)}w:${esc(id)}:${esc(task)}:${idx}`;
const blobKey = (t: string, ns: string, channel: string, version: string | number) =>
  `${nsPrefix(t, ns)}b:${esc(channel)}:${esc(String(version))}`;
const indexKey = (t: string, ns: string) => `${nsPrefix(t, ns)}i`;
const fieldIndexKey = (t: string, ns: string, field: string, value: unknown) => `${nsPrefix(t, ns)}i:${field}:${esc(JSON.stringify(value))}`;
const threadIndexKey = (t: string) => `${threadPrefix(t)}a`;
const globalMember = (t: string, ns: string, id: string) => `${id}\u0000${JSON.stringify([t, ns])}`;

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

interface Candidate extends Located {
  /** Index member the walk resumes after. */
  member: string;
}

interface StoredWrite {
  task: string;
  idx: number;
  channel: string;
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
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const [type, bytes] = this.serde.dumpsTyped(body);
    const fields: Record<string, string> = {
      type,
      body: Buffer.from(bytes).toString("base64"),
      meta: JSON.stringify(metadata ?? {}),
      ts: String(checkpoint.ts ?? ""),
    };
    if (parentId !== undefined) fields.parent = parentId;

    const tx = this.client.multi();
    const touched: string[] = [];
    const cpKey = checkpointKey(t, ns, id);
    tx.hset(cpKey, fields);
    touched.push(cpKey);
    for (const { channel, version, value } of blobs) {
      const [blobType, blobBytes] = this.serde.dumpsTyped(value);
      const key = blobKey(t, ns, channel, version);
      tx.set(key, JSON.stringify({ type: blobType, value: Buffer.from(blobBytes).toString("base64") }));
      touched.push(key);
    }
    const idxKeys = [indexKey(t, ns)];
    for (const field of INDEXED_FIELDS) {
      if (Object.hasOwn(metadata ?? {}, field)) idxKeys.push(fieldIndexKey(t, ns, field, metadata[field]));
    }
    for (const key of idxKeys) tx.zadd(key, 0, id);
    tx.zadd(threadIndexKey(t), 0, `${id}\u0000${ns}`);
    tx.zadd(GLOBAL_INDEX, 0, globalMember(t, ns, id));
    touched.push(...idxKeys, threadIndexKey(t), GLOBAL_INDEX);
    this.expire(tx, touched);
    await this.exec(tx, "put()");
    return { threadId: t, checkpointNs: ns, checkpointId: id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId: t, checkpointNs: ns, checkpointId: id } = resolveConfig(config, "putWrites()");
    if (id === undefined) throw new InvalidArgumentError("putWrites() needs config.checkpointId: pass the config put() returned.");
    requireString(taskId, "taskId", "putWrites()");
    if (writes.length === 0) return;
    // Serialize everything first: a value that cannot be stored leaves nothing half-written.
    const rows = writes.map(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const [type, bytes] = this.serde.dumpsTyped(value);
      const stored: StoredWrite = { task: taskId, idx, channel, type, value: Buffer.from(bytes).toString("base64") };
      return { key: writeKey(t, ns, id, taskId, idx), json: JSON.stringify(stored), special: isSpecialChannel(channel) };
    });
    const tx = this.client.multi();
    const setKey = writeSetKey(t, ns, id);
    for (const row of rows) {
      // A special channel's slot takes the newest write; a regular slot keeps the first completed attempt.
      if (row.special) tx.set(row.key, row.json);
      else tx.set(row.key, row.json, "NX");
    }
    tx.sadd(setKey, ...rows.map((row) => row.key));
    this.expire(tx, [...rows.map((row) => row.key), setKey]);
    await this.exec(tx, "putWrites()");
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (typeof config === "object" && config !== null && config.threadId === undefined) return undefined;
    const { threadId, checkpointNs, checkpointId } = resolveConfig(config, "getTuple()");
    if (checkpointId !== undefined) {
      const [tuple] = await this.load([{ threadId, checkpointNs, checkpointId }]);
      return tuple;
    }
    // The newest id in the index whose checkpoint still exists (an expired entry is skipped).
    for await (const tuple of this.list({ threadId, checkpointNs }, { limit: 1 })) return tuple;
    return undefined;
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const rawFilter = options?.filter;
    if (rawFilter !== undefined && rawFilter !== null && typeof rawFilter === "object" && !Array.isArray(rawFilter)) {
      for (const key of Object.keys(rawFilter)) {
        if (!(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key)) {
          throw new RedisSaverError(`list() cannot filter on "${key}": supported filter keys are ${SUPPORTED_FILTER_KEYS.join(", ")}.`);
        }
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
      if (afterMs !== undefined || beforeMs !== undefined) {
        const ts = Date.parse(tuple.checkpoint.ts);
        if (!Number.isFinite(ts)) return false;
        if (afterMs !== undefined && ts < afterMs) return false;
        if (beforeMs !== undefined && ts >= beforeMs) return false;
      }
      return true;
    };

    let yielded = 0;
    if (scope.threadId !== undefined && scope.checkpointNs !== undefined && scope.checkpointId !== undefined) {
      if (beforeId !== undefined && !(scope.checkpointId < beforeId)) return;
      const [tuple] = await this.load([{ threadId: scope.threadId, checkpointNs: scope.checkpointNs, checkpointId: scope.checkpointId }]);
      if (tuple && keep(tuple)) yield tuple;
      return;
    }

    const { key, decode } = this.chooseIndex(scope, exact);
    const pageSize = filter.length === 0 && limit !== undefined ? Math.min(limit, PAGE) : PAGE;
    let upper = beforeId === undefined ? "+" : `(${beforeId}`;
    for (;;) {
      const members = await this.client.zrange(key, upper, "-", "BYLEX", "REV", "LIMIT", 0, pageSize);
      if (members.length === 0) return;
      upper = `(${members[members.length - 1]!}`;
      const candidates = members
        .map(decode)
        .filter((c): c is Candidate => c !== undefined)
        .filter(
          (c) =>
            (scope.threadId === undefined || c.threadId === scope.threadId) &&
            (scope.checkpointNs === undefined || c.checkpointNs === scope.checkpointNs) &&
            (scope.checkpointId === undefined || c.checkpointId === scope.checkpointId) &&
            (beforeId === undefined || c.checkpointId < beforeId),
        );
      const tuples = await this.load(candidates);
      for (const tuple of tuples) {
        if (tuple === undefined || !keep(tuple)) continue;
        yield tuple;
        if (limit !== undefined && ++yielded >= limit) return;
      }
      if (members.length < pageSize) return;
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    const t = requireString(threadId, "threadId", "deleteThread()");
    // The cross-thread index lives outside the thread's prefix: take the thread's members out of it first.
    const threadIndex = threadIndexKey(t);
    let upper = "+";
    for (;;) {
      const members = await this.client.zrange(threadIndex, upper, "-", "BYLEX", "REV", "LIMIT", 0, SCAN_COUNT);
      if (members.length === 0) break;
      upper = `(${members[members.length - 1]!}`;
      const global = members.map((m) => {
        const cut = m.indexOf("\u0000");
        return globalMember(t, m.slice(cut + 1), m.slice(0, cut));
      });
      await this.client.zrem(GLOBAL_INDEX, ...global);
      if (members.length < SCAN_COUNT) break;
    }
    const pattern = `${globEscape(threadPrefix(t))}*`;
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT);
      cursor = next;
      // No more keys of this thread: stop walking instead of reading the rest of the keyspace.
      if (page.length === 0) break;
      // SCAN may return a key twice; and only a key whose parse names this thread is ours.
      const doomed = [...new Set(page)].filter((key) => {
        const parts = parseKey(key);
        return parts[0] === "cp" && parts[1] === t;
      });
      if (doomed.length > 0) await this.client.unlink(...doomed);
    } while (cursor !== "0");
  }

  /** The narrowest index for a scope and its exact-match filters, and how to read its members. */
  private chooseIndex(scope: Scope, exact: Array<[string, unknown]>): { key: string; decode: (member: string) => Candidate | undefined } {
    const { threadId: t, checkpointNs: ns } = scope;
    if (t !== undefined && ns !== undefined) {
      const field = INDEXED_FIELDS.map((f) => exact.find(([key]) => key === f)).find((entry) => entry !== undefined);
      const key = field ? fieldIndexKey(t, ns, field[0], field[1]) : indexKey(t, ns);
      return { key, decode: (member) => ({ threadId: t, checkpointNs: ns, checkpointId: member, member }) };
    }
    if (t !== undefined) {
      return {
        key: threadIndexKey(t),
        decode: (member) => {
          const cut = member.indexOf("\u0000");
          return cut < 0 ? undefined : { threadId: t, checkpointNs: member.slice(cut + 1), checkpointId: member.slice(0, cut), member };
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
          return { threadId, checkpointNs, checkpointId: member.slice(0, cut), member };
        } catch {
          return undefined;
        }
      },
    };
  }

  /**
   * Loads checkpoints in two round trips however many: one pipeline of HGETALL + SMEMBERS,
   * then one MGET of every write and channel value they name. A missing checkpoint is undefined.
   */
  private async load(located: Located[]): Promise<Array<CheckpointTuple | undefined>> {
    if (located.length === 0) return [];
    const pipe = this.client.pipeline();
    for (const { threadId, checkpointNs, checkpointId } of located) {
      pipe.hgetall(checkpointKey(threadId, checkpointNs, checkpointId));
      pipe.smembers(writeSetKey(threadId, checkpointNs, checkpointId));
    }
    const replies = (await pipe.exec()) ?? [];
    const staged = located.map((loc, i) => {
      const [hashErr, hash] = replies[2 * i] ?? [];
      const [setErr, writeKeys] = replies[2 * i + 1] ?? [];
      if (hashErr) throw hashErr;
      if (setErr) throw setErr;
      const fields = hash as Record<string, string> | undefined;
      if (!fields || fields.body === undefined || fields.type === undefined) return undefined;
      const body = this.serde.loadsTyped(fields.type, Buffer.from(fields.body, "base64")) as Checkpoint;
      const refs = blobRefs(body).map(([channel, version]) => blobKey(loc.threadId, loc.checkpointNs, channel, version));
      return { loc, fields, body, refs, writeKeys: ((writeKeys as string[] | undefined) ?? []).slice() };
    });
    const wanted = staged.flatMap((s) => (s ? [...s.refs, ...s.writeKeys] : []));
    const values = wanted.length > 0 ? await this.client.mget(...wanted) : [];
    const byKey = new Map<string, string | null>(wanted.map((key, i) => [key, values[i] ?? null]));

    return staged.map((s) => {
      if (!s) return undefined;
      const { loc, fields, body } = s;
      const found = s.refs.map((key) => {
        const raw = byKey.get(key);
        if (!raw) return undefined;
        const blob = JSON.parse(raw) as { type: string; value: string };
        return { value: this.serde.loadsTyped(blob.type, Buffer.from(blob.value, "base64")) };
      });
      const writes = s.writeKeys
        .map((key) => byKey.get(key))
        .filter((raw): raw is string => typeof raw === "string")
        .map((raw) => JSON.parse(raw) as StoredWrite)
        .sort((a, b) => (a.task < b.task ? -1 : a.task > b.task ? 1 : a.idx - b.idx));
      const tuple: CheckpointTuple = {
        config: { threadId: loc.threadId, checkpointNs: loc.checkpointNs, checkpointId: loc.checkpointId },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(fields.meta ?? "{}") as CheckpointMetadata,
        pendingWrites: writes.map((w): PendingWrite => [w.task, w.channel, this.serde.loadsTyped(w.type, Buffer.from(w.value, "base64"))]),
      };
      if (fields.parent !== undefined) {
        tuple.parentConfig = { threadId: loc.threadId, checkpointNs: loc.checkpointNs, checkpointId: fields.parent };
      }
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
    for (const [error] of results) {
      if (error) throw new RedisSaverError(`${call} failed: ${error.message}`);
    }
  }
}
