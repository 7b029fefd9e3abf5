/**
 * Benchmark of the locking reference: 20 writers increment one thread through updateWithRetry
 * (optimistic compare-and-set, backoff with jitter) on each backend, and we report throughput
 * (successful increments per second) and conflict rate (conflicting puts / all puts).
 * Backends: a SQLite file with one connection per writer, ioredis-mock with one client per
 * writer, and a real Redis server when REDIS_URL is set. A figure, not a test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { RedisVersionedStore, SqliteVersionedStore, updateWithRetry, type VersionedStore } from "../../solutions/lesson-11/locking/index.ts";

const WRITERS = 20;
const INCREMENTS_PER_WRITER = 10;

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

interface Counter {
  count: number;
}

async function measure(backend: string, stores: VersionedStore<Counter>[], threadId: string): Promise<BenchResult[]> {
  let puts = 0;
  const counted = stores.map((store): VersionedStore<Counter> => ({
    get: (id) => store.get(id),
    put: (...args) => (puts++, store.put(...args)),
  }));
  const started = performance.now();
  await Promise.all(
    counted.map(async (store) => {
      for (let i = 0; i < INCREMENTS_PER_WRITER; i++) {
        await updateWithRetry(store, threadId, (current) => ({ count: (current?.count ?? 0) + 1 }), { maxAttempts: 200, baseDelayMs: 1, maxDelayMs: 20 });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const final = (await stores[0]!.get(threadId))?.state.count;
  const increments = WRITERS * INCREMENTS_PER_WRITER;
  if (final !== increments) throw new Error(`locking bench on ${backend}: ended at ${String(final)}, expected ${increments}`);
  return [
    { name: `locking ${backend}: ${WRITERS} writers, throughput`, value: Math.round(increments / seconds), unit: "increments/s" },
    { name: `locking ${backend}: ${WRITERS} writers, conflict rate`, value: Math.round((100 * (puts - increments)) / puts), unit: "% of puts" },
  ];
}

async function benchRedis(backend: string, makeClient: () => Redis): Promise<BenchResult[]> {
  const clients = Array.from({ length: WRITERS }, makeClient);
  const namespace = `bench-locking-${process.pid}-${Date.now()}`;
  try {
    const stores = clients.map((client) => new RedisVersionedStore<Counter>(client, { namespace, ttlMs: 60_000 }));
    return await measure(backend, stores, "bench-thread");
  } finally {
    await clients[0]!.del(`${namespace}:thread:{bench-thread}`);
    clients.forEach((client) => client.disconnect());
  }
}

export async function benchLocking(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];

  const dir = mkdtempSync(join(tmpdir(), "bench-locking-"));
  const sqliteStores = Array.from({ length: WRITERS }, () => new SqliteVersionedStore<Counter>(join(dir, "threads.db")));
  try {
    results.push(...(await measure("SQLite file", sqliteStores, "bench-thread")));
  } finally {
    sqliteStores.forEach((store) => store.close());
    rmSync(dir, { recursive: true, force: true });
  }

  results.push(...(await benchRedis("ioredis-mock", () => new (RedisMock as unknown as new () => Redis)())));
  const url = process.env.REDIS_URL;
  if (url) results.push(...(await benchRedis("redis-server", () => new Redis(url))));
  return results;
}
