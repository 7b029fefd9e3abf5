/**
 * Fixtures shared by the scan-indexing grader and its hidden checks: a fresh
 * instrumented Redis per check, checkpoints with time-sortable ids, and a fast
 * bulk load of a big thread.
 */
import { createTestRedis, type RecordedCommand, type TestRedis } from "#harness/redis.ts";
import type { Redis } from "ioredis";
import { newCheckpointId, type Checkpoint, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple, type RunnableConfig } from "#runtime";
import type * as Api from "../../../solutions/lesson-11/scan-indexing/index.ts";

export type ScanIndexingApi = typeof Api;

export interface Fixture {
  redis: TestRedis;
  saver: CheckpointSaver;
  /** A thread id unique to this run (real-server runs never collide). */
  thread(name: string): string;
}

export async function withSaver(
  api: ScanIndexingApi,
  body: (fixture: Fixture) => Promise<void>,
  options: { ttlSeconds?: number; duplicateScanResults?: boolean } = {},
): Promise<void> {
  const redis = await createTestRedis({ duplicateScanResults: options.duplicateScanResults ?? false });
  try {
    let saver: CheckpointSaver;
    try {
      saver = new api.RedisSaver(redis.client, options.ttlSeconds === undefined ? undefined : { ttlSeconds: options.ttlSeconds });
    } catch (error) {
      throw new Error(`new RedisSaver(client${options.ttlSeconds === undefined ? "" : ", { ttlSeconds }"}) threw: ${(error as Error).message}`);
    }
    await body({ redis, saver, thread: (name) => `${name}-${redis.runId}` });
  } finally {
    await redis.close();
  }
}

let clock = Date.parse("2026-01-01T00:00:00.000Z");

/** A checkpoint whose id (UUIDv7) and ts both grow with creation order. */
export function makeCheckpoint(values: Record<string, unknown> = {}, ts?: string): Checkpoint {
  clock += 1000;
  return { v: 1, id: newCheckpointId(), ts: ts ?? new Date(clock).toISOString(), channelValues: values, next: ["agent"] };
}

/** Puts `count` checkpoints in a chain on one thread/namespace and returns their configs, oldest first. */
export async function putChain(
  saver: CheckpointSaver,
  threadId: string,
  count: number,
  metadataFor: (i: number) => Record<string, unknown> = () => ({}),
  checkpointNs = "",
): Promise<Array<Required<Pick<RunnableConfig, "threadId" | "checkpointNs" | "checkpointId">> & { ts: string }>> {
  const configs = [];
  let parent: RunnableConfig = { threadId, checkpointNs };
  for (let i = 0; i < count; i++) {
    const checkpoint = makeCheckpoint({ i });
    const metadata: CheckpointMetadata = { source: "loop", step: i, ...metadataFor(i) };
    parent = await saver.put(parent, checkpoint, metadata);
    configs.push({ threadId, checkpointNs, checkpointId: checkpoint.id, ts: checkpoint.ts });
  }
  return configs;
}

export async function collect(iterable: AsyncIterable<CheckpointTuple>): Promise<CheckpointTuple[]> {
  const out: CheckpointTuple[] = [];
  for await (const tuple of iterable) out.push(tuple);
  return out;
}

/** Every key of the test database that carries this run's id (all a check created). */
export async function runKeys(redis: TestRedis): Promise<string[]> {
  const raw = redis.newClient();
  const found = new Set<string>();
  let cursor = "0";
  do {
    const [next, keys] = await raw.scan(cursor, "MATCH", `*${redis.runId}*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) found.add(key);
  } while (cursor !== "0");
  return [...found].sort();
}

export function describeCommands(commands: RecordedCommand[], max = 8): string {
  const shown = commands.slice(0, max).map((c) => [c.name, ...c.args.slice(0, 4).map((a) => String(a))].join(" "));
  return shown.join("; ") + (commands.length > max ? ` ... (${commands.length} commands)` : "");
}

/**
 * Builds a thread of `count` checkpoints fast: the submission's own put() is
 * recorded once, then replayed for new ids with ZADD/SADD to one key merged
 * into a single command (ioredis-mock spends ~1.5 ms per ZADD call on a
 * 10,000-member set, but ~12 ms on one ZADD of 10,000 members).
 * Returns the ids, oldest first.
 */
export async function bulkLoadThread(saver: CheckpointSaver, redis: TestRedis, threadId: string, count: number): Promise<string[]> {
  const first = makeCheckpoint({ i: 0 });
  await saver.put({ threadId, checkpointNs: "" }, first, { source: "loop", step: 0 });
  const template = makeCheckpoint({ i: 1 });
  redis.resetCounters();
  await saver.put({ threadId, checkpointNs: "", checkpointId: first.id }, template, { source: "loop", step: 1 });
  const recorded = redis.commands.filter((c) => !["MULTI", "EXEC", "WATCH", "UNWATCH"].includes(c.name));
  const ids = [first.id, template.id];
  if (recorded.some((c) => c.name === "EVAL" || c.name === "EVALSHA")) {
    // A scripted put cannot be replayed from its arguments: fall back to the submission's own put().
    let parent = template.id;
    for (let i = 2; i < count; i++) {
      const checkpoint = makeCheckpoint({ i });
      await saver.put({ threadId, checkpointNs: "", checkpointId: parent }, checkpoint, { source: "loop", step: i });
      ids.push((parent = checkpoint.id));
    }
    return ids;
  }
  const raw = redis.newClient();
  const merged = new Map<string, { name: string; key: string; rest: unknown[] }>();
  let pipeline = raw.pipeline();
  let queued = 0;
  let parent = template.id;
  for (let i = 2; i < count; i++) {
    const id = makeCheckpoint().id;
    const swap = (arg: unknown) => (typeof arg === "string" ? arg.split(template.id).join(id).split(first.id).join(parent) : arg);
    for (const command of recorded) {
      const args = command.args.map(swap);
      if ((command.name === "ZADD" || command.name === "SADD") && args.length >= 2) {
        const key = String(args[0]);
        const entry = merged.get(`${command.name}\u0000${key}`) ?? { name: command.name, key, rest: [] };
        entry.rest.push(...args.slice(1));
        merged.set(`${command.name}\u0000${key}`, entry);
      } else {
        (pipeline as unknown as Record<string, (...a: unknown[]) => unknown>)[command.name.toLowerCase()]!(...args);
        if (++queued >= 5000) {
          await pipeline.exec();
          pipeline = raw.pipeline();
          queued = 0;
        }
      }
    }
    ids.push(id);
    parent = id;
  }
  await pipeline.exec();
  for (const { name, key, rest } of merged.values()) {
    await (raw as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name.toLowerCase()]!(key, ...rest);
  }
  return ids;
}

/** Keys that belong to nobody: other threads' checkpoint-shaped keys, written in big pipelines. */
export async function loadNoise(client: Redis, runId: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 10_000) {
    const pipeline = client.pipeline();
    for (let i = start; i < Math.min(count, start + 10_000); i++) {
      pipeline.set(`checkpoint$noise${i % 97}-${runId}$$${String(i).padStart(8, "0")}`, "x");
    }
    await pipeline.exec();
  }
}
