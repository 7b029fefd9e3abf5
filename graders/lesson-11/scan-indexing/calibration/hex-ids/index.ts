/**
 * A correct saver of another design than the reference, written from the lesson
 * page and the starter: every id component is hex-encoded (so neither `$` nor a
 * glob character can reach a key, and MATCH needs no escaping), one sorted set
 * per thread and namespace holds the hex ids (hex keeps the ids' order), filters
 * are checked on fetched metadata while the index is walked in pages, and
 * pending writes are found through a set per checkpoint. A list across threads
 * or namespaces reads a registry set of every (thread, namespace) and merges
 * their indexes by id, a page at a time each.
 * Expected tier: excellent.
 */
import type { Redis } from "ioredis";
import { JsonSerializer, isSpecialChannel, writeIndex, type Checkpoint, type CheckpointMetadata, type CheckpointTuple, type ListConfig, type ListOptions, type PendingWrite, type RunnableConfig } from "#runtime";

export class RedisSaverError extends Error {
  override name = "RedisSaverError";
}

export const SUPPORTED_FILTER_KEYS = ["stage", "userId", "source", "step", "createdAfter", "createdBefore"] as const;

export interface RedisSaverOptions {
  ttlSeconds?: number;
}

const hex = (s: string) => Buffer.from(s, "utf8").toString("hex");
const unhex = (s: string) => Buffer.from(s, "hex").toString("utf8");
const PAGE = 50;
/** A set of `<hex thread>$<hex namespace>`: every scope that holds checkpoints. */
const SCOPES = "scopes";

export class RedisSaver {
  private readonly serde = new JsonSerializer();

  constructor(
    private readonly client: Redis,
    private readonly options: RedisSaverOptions = {},
  ) {
    const ttl = options.ttlSeconds;
    if (ttl !== undefined && !(typeof ttl === "number" && Number.isInteger(ttl) && ttl > 0)) throw new RedisSaverError(`ttlSeconds must be a positive integer, not ${String(ttl)}`);
  }

  private scope(config: RunnableConfig, call: string) {
    if (typeof config?.threadId !== "string" || config.threadId === "") throw new RedisSaverError(`${call} needs config.threadId`);
    return { t: hex(config.threadId), ns: hex(config.checkpointNs ?? "") };
  }

  private expire(tx: ReturnType<Redis["multi"]>, keys: string[]) {
    if (this.options.ttlSeconds) for (const key of keys) tx.expire(key, this.options.ttlSeconds);
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const { t, ns } = this.scope(config, "put()");
    const threadId = config.threadId;
    const checkpointNs = config.checkpointNs ?? "";
    if (typeof checkpoint?.id !== "string" || checkpoint.id === "") throw new RedisSaverError("put needs a checkpoint with a string id");
    const key = `checkpoint$${t}$${ns}$${hex(checkpoint.id)}`;
    const index = `idx$${t}$${ns}`;
    const [type, bytes] = this.serde.dumpsTyped(checkpoint);
    const tx = this.client.multi();
    tx.hset(key, "type", type, "body", Buffer.from(bytes).toString("base64"), "meta", JSON.stringify(metadata), "parent", config.checkpointId ?? "", "ts", checkpoint.ts);
    tx.zadd(index, 0, hex(checkpoint.id));
    tx.sadd(SCOPES, `${t}$${ns}`);
    this.expire(tx, [key, index, SCOPES]);
    await tx.exec();
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[string, unknown]>, taskId: string): Promise<void> {
    const { t, ns } = this.scope(config, "putWrites()");
    if (!config.checkpointId) throw new RedisSaverError("putWrites() needs config.checkpointId");
    if (typeof taskId !== "string" || taskId === "") throw new RedisSaverError("putWrites needs a taskId");
    if (!Array.isArray(writes)) throw new RedisSaverError("putWrites needs an array of writes");
    const id = hex(config.checkpointId);
    const set = `wset$${t}$${ns}$${id}`;
    const tx = this.client.multi();
    const keys: string[] = [];
    writes.forEach(([channel, value], position) => {
      const key = `writes$${t}$${ns}$${id}$${hex(taskId)}$${writeIndex(channel, position)}`;
      const [type, bytes] = this.serde.dumpsTyped(value);
      const json = JSON.stringify({ channel, type, value: Buffer.from(bytes).toString("base64") });
      if (isSpecialChannel(channel)) tx.set(key, json);
      else tx.set(key, json, "NX");
      keys.push(key);
    });
    if (keys.length > 0) tx.sadd(set, ...keys);
    this.expire(tx, [set, ...keys]);
    await tx.exec();
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (config?.threadId === undefined) return undefined;
    const { t, ns } = this.scope(config, "getTuple()");
    const id = config.checkpointId ? hex(config.checkpointId) : (await this.client.zrange(`idx$${t}$${ns}`, -1, -1))[0];
    if (!id) return undefined;
    return (await this.load(config.threadId, config.checkpointNs ?? "", [id]))[0];
  }

  async *list(config: ListConfig, options: ListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const accept = this.filter(options.filter ?? {});
    if (config.threadId === undefined || config.checkpointNs === null) {
      yield* this.listMerged(config, options, accept);
      return;
    }
    const { t, ns } = this.scope(config as RunnableConfig, "list()");
    let upper = options.before?.checkpointId ? `(${hex(options.before.checkpointId)}` : "+";
    if (config.checkpointId) {
      const only = hex(config.checkpointId);
      if (upper !== "+" && only >= upper.slice(1)) return;
      for (const tuple of await this.load(config.threadId, config.checkpointNs ?? "", [only])) if (accept(tuple)) yield tuple;
      return;
    }
    let left = options.limit ?? Infinity;
    for (;;) {
      const page = await this.client.zrevrangebylex(`idx$${t}$${ns}`, upper, "-", "LIMIT", 0, PAGE);
      for (const tuple of await this.load(config.threadId, config.checkpointNs ?? "", page)) {
        if (!accept(tuple)) continue;
        yield tuple;
        if (--left <= 0) return;
      }
      if (page.length < PAGE) return;
      upper = `(${page.at(-1)}`;
    }
  }

  /** Every scope the config names (a thread's namespaces, or every thread's), merged newest id first. */
  private async *listMerged(config: ListConfig, options: ListOptions, accept: (tuple: CheckpointTuple) => boolean): AsyncGenerator<CheckpointTuple> {
    const wantNs = config.checkpointNs === null ? undefined : hex(config.checkpointNs ?? "");
    const pattern = config.threadId === undefined ? "*" : `${hex(config.threadId)}$*`;
    const scopes = new Set<string>();
    let cursor = "0";
    do {
      const [next, found] = await this.client.sscan(SCOPES, cursor, "MATCH", pattern, "COUNT", 500);
      cursor = next;
      for (const member of found) if (wantNs === undefined || member.split("$")[1] === wantNs) scopes.add(member);
    } while (cursor !== "0");
    const start = options.before?.checkpointId ? `(${hex(options.before.checkpointId)}` : "+";
    const heads = [...scopes].map((member) => ({ member, upper: start, buffer: [] as string[], done: false }));
    let left = options.limit ?? Infinity;
    for (;;) {
      for (const head of heads) {
        if (head.buffer.length > 0 || head.done) continue;
        const [t, ns] = head.member.split("$") as [string, string];
        head.buffer = await this.client.zrevrangebylex(`idx$${t}$${ns}`, head.upper, "-", "LIMIT", 0, PAGE);
        if (head.buffer.length < PAGE) head.done = true;
        if (head.buffer.length > 0) head.upper = `(${head.buffer.at(-1)}`;
      }
      const live = heads.filter((head) => head.buffer.length > 0);
      if (live.length === 0) return;
      const next = live.reduce((best, head) => (head.buffer[0]! > best.buffer[0]! ? head : best));
      const id = next.buffer.shift()!;
      const [t, ns] = next.member.split("$") as [string, string];
      if (config.checkpointId !== undefined && unhex(id) !== config.checkpointId) continue;
      for (const tuple of await this.load(unhex(t), unhex(ns), [id])) {
        if (!accept(tuple)) continue;
        yield tuple;
        if (--left <= 0) return;
      }
    }
  }

  async deleteThread(threadId: string): Promise<void> {
    if (typeof threadId !== "string" || threadId === "") throw new RedisSaverError("deleteThread needs a thread id");
    const t = hex(threadId);
    let cursor = "0";
    do {
      const [next, found] = await this.client.scan(cursor, "MATCH", `*$${t}$*`, "COUNT", 1000);
      cursor = next;
      const mine = [...new Set(found)].filter((key) => key.split("$")[1] === t);
      if (mine.length > 0) await this.client.unlink(...mine);
    } while (cursor !== "0");
    const scopes: string[] = [];
    do {
      const [next, found] = await this.client.sscan(SCOPES, cursor, "MATCH", `${t}$*`, "COUNT", 500);
      cursor = next;
      scopes.push(...found);
    } while (cursor !== "0");
    if (scopes.length > 0) await this.client.srem(SCOPES, ...scopes);
  }

  private filter(filter: Record<string, unknown>): (tuple: CheckpointTuple) => boolean {
    const checks: Array<(tuple: CheckpointTuple) => boolean> = [];
    for (const [key, value] of Object.entries(filter)) {
      if (!(SUPPORTED_FILTER_KEYS as readonly string[]).includes(key)) throw new RedisSaverError(`unsupported filter key "${key}"`);
      if (key === "createdAfter" || key === "createdBefore") {
        const bound = typeof value === "number" ? value : Date.parse(String(value));
        if (Number.isNaN(bound)) throw new RedisSaverError(`${key} needs a time`);
        checks.push(key === "createdAfter" ? (t) => Date.parse(t.checkpoint.ts) >= bound : (t) => Date.parse(t.checkpoint.ts) < bound);
      } else {
        checks.push((t) => Object.hasOwn(t.metadata, key) && t.metadata[key] === value);
      }
    }
    return (tuple) => checks.every((check) => check(tuple));
  }

  private async load(threadId: string, checkpointNs: string, hexIds: string[]): Promise<CheckpointTuple[]> {
    if (hexIds.length === 0) return [];
    const t = hex(threadId);
    const ns = hex(checkpointNs);
    const pipe = this.client.pipeline();
    for (const id of hexIds) pipe.hgetall(`checkpoint$${t}$${ns}$${id}`).smembers(`wset$${t}$${ns}$${id}`);
    const replies = (await pipe.exec()) ?? [];
    const found = hexIds.map((id, i) => ({ id, hash: replies[2 * i]![1] as Record<string, string>, writeKeys: replies[2 * i + 1]![1] as string[] })).filter((row) => row.hash && row.hash.body !== undefined);
    const writeKeys = found.flatMap((row) => row.writeKeys);
    const values = writeKeys.length > 0 ? await this.client.mget(...writeKeys) : [];
    const byKey = new Map(writeKeys.map((key, i) => [key, values[i]]));
    return found.map(({ id, hash, writeKeys: keys }) => {
      const pendingWrites = keys
        .map((key) => {
          const parts = key.split("$");
          return { task: unhex(parts[4]!), idx: Number(parts[5]), raw: byKey.get(key) };
        })
        .filter((w) => typeof w.raw === "string")
        .sort((a, b) => (a.task < b.task ? -1 : a.task > b.task ? 1 : a.idx - b.idx))
        .map(({ task, raw }): PendingWrite => {
          const stored = JSON.parse(raw!) as { channel: string; type: string; value: string };
          return [task, stored.channel, this.serde.loadsTyped(stored.type, Buffer.from(stored.value, "base64"))];
        });
      const checkpointId = unhex(id);
      return {
        config: { threadId, checkpointNs, checkpointId },
        checkpoint: this.serde.loadsTyped(hash.type!, Buffer.from(hash.body!, "base64")) as Checkpoint,
        metadata: JSON.parse(hash.meta!) as CheckpointMetadata,
        ...(hash.parent ? { parentConfig: { threadId, checkpointNs, checkpointId: hash.parent } } : {}),
        pendingWrites,
      };
    });
  }
}
