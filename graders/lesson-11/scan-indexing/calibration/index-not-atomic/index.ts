/**
 * Planted mistake: put() writes the checkpoint hash and its index entry in two
 * round trips (HSET, then ZADD) instead of one MULTI. Every call that completes
 * stores both, so every ordinary check passes; but a put cut off between the two
 * (the process dies, the connection drops) leaves a body that list() and the
 * latest lookup never find, although getTuple by id returns it. Otherwise the
 * hex-ids design (correct).
 * Expected tier: adequate (the put-cut-off-part-way excellence check).
 */
import type { Redis } from "ioredis";
import { JsonSerializer, isSpecialChannel, writeIndex, type Checkpoint, type CheckpointMetadata, type CheckpointTuple, type ListOptions, type PendingWrite, type RunnableConfig } from "#runtime";

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

export class RedisSaver {
  private readonly serde = new JsonSerializer();

  constructor(
    private readonly client: Redis,
    private readonly options: RedisSaverOptions = {},
  ) {}

  private scope(config: RunnableConfig) {
    if (typeof config?.threadId !== "string" || config.threadId === "") throw new RedisSaverError("config.threadId is required");
    return { t: hex(config.threadId), ns: hex(config.checkpointNs ?? "") };
  }

  private expire(tx: ReturnType<Redis["multi"]>, keys: string[]) {
    if (this.options.ttlSeconds) for (const key of keys) tx.expire(key, this.options.ttlSeconds);
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const { t, ns } = this.scope(config);
    const threadId = config.threadId;
    const checkpointNs = config.checkpointNs ?? "";
    const key = `checkpoint$${t}$${ns}$${hex(checkpoint.id)}`;
    const index = `idx$${t}$${ns}`;
    const [type, bytes] = this.serde.dumpsTyped(checkpoint);
    await this.client.hset(key, "type", type, "body", Buffer.from(bytes).toString("base64"), "meta", JSON.stringify(metadata), "parent", config.checkpointId ?? "", "ts", checkpoint.ts);
    await this.client.zadd(index, 0, hex(checkpoint.id));
    if (this.options.ttlSeconds) {
      const tx = this.client.multi();
      this.expire(tx, [key, index]);
      await tx.exec();
    }
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[string, unknown]>, taskId: string): Promise<void> {
    const { t, ns } = this.scope(config);
    if (!config.checkpointId) throw new RedisSaverError("putWrites needs config.checkpointId");
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
    const { t, ns } = this.scope(config);
    const id = config.checkpointId ? hex(config.checkpointId) : (await this.client.zrange(`idx$${t}$${ns}`, -1, -1))[0];
    if (!id) return undefined;
    return (await this.load(config.threadId, config.checkpointNs ?? "", [id]))[0];
  }

  async *list(config: RunnableConfig, options: ListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const { t, ns } = this.scope(config);
    const accept = this.filter(options.filter ?? {});
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

  async deleteThread(threadId: string): Promise<void> {
    const t = hex(threadId);
    let cursor = "0";
    do {
      const [next, found] = await this.client.scan(cursor, "MATCH", `*$${t}$*`, "COUNT", 1000);
      cursor = next;
      const mine = [...new Set(found)].filter((key) => key.split("$")[1] === t);
      if (mine.length > 0) await this.client.unlink(...mine);
    } while (cursor !== "0");
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
