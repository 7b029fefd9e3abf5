/**
 * Fixtures of the locking grader: Redis clients that interleave or fail on demand, temporary
 * SQLite files, the grader's own read-modify-write loop, and a watchdog for code that never ends.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import { describeOutcome, runChild } from "#harness/crash.ts";
import { createTestRedis, type TestRedis } from "#harness/redis.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import type * as Api from "../../../solutions/lesson-11/locking/index.ts";
import type { WriterArgs, WriterReport } from "./sqlite-writer.ts";

export type LockingApi = typeof Api;
export type Store = Api.VersionedStore<Counter>;
export interface Counter {
  count: number;
  /** Who wrote last, so a lost update can be told apart from a miscount. */
  writer: string;
}

export type { TestRedis };

/** A Redis connection set for one check (the shared harness); close() ends every client it made. */
export function openRedis(): Promise<TestRedis> {
  return createTestRedis();
}

let threadCounter = 0;
/** A thread id no other check (or earlier run against a real server: the run id) uses. */
export function threadIdFor(redis: TestRedis | undefined, label: string): string {
  return `${redis?.runId ?? "sqlite"}:${label}:${++threadCounter}`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Methods of an ioredis client that manage the connection rather than send a command. */
const CLIENT_METHODS = new Set(["duplicate", "disconnect", "connect", "on", "once", "off", "emit", "addListener", "removeListener", "removeAllListeners", "listeners", "listenerCount", "defineCommand", "multi", "pipeline", "then"]);

/**
 * Delays every command of this client by a random 0-1 ms (seeded), keeping the client's own
 * order, so concurrent writers on several clients interleave the way servers on a network do.
 */
export function withJitter(client: Redis, random: () => number): Redis {
  let tail: Promise<void> = Promise.resolve();
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      if (typeof property !== "string" || CLIENT_METHODS.has(property)) return value.bind(target);
      return async (...args: unknown[]) => {
        const delayMs = random() < 0.5 ? 0 : 1;
        const turn = tail.then(() => (delayMs === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : sleep(delayMs)));
        tail = turn;
        await turn;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** An error shaped like ioredis's own when the server is unreachable. */
export function connectionError(): Error {
  const error = new Error("Connection is closed. (simulated outage: the grader took this instance's Redis connection down)");
  (error as Error & { code?: string }).code = "ECONNREFUSED";
  return error;
}

/**
 * A client this instance sees fail: while down, every command (and every MULTI/pipeline exec)
 * rejects with a connection error, as ioredis does once its offline queue gives up.
 */
export function withOutage(client: Redis): { client: Redis; down(): void; up(): void } {
  let isDown = false;
  const failingBatch: Record<string, unknown> = new Proxy(
    {},
    {
      get: (_target, property) => (property === "exec" ? () => Promise.reject(connectionError()) : property === "then" ? undefined : () => failingBatch),
    },
  );
  const proxy = new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function" || typeof property !== "string") return value;
      if (property === "multi" || property === "pipeline") {
        return (...args: unknown[]) => (isDown ? failingBatch : (value as (...a: unknown[]) => unknown).apply(target, args));
      }
      if (CLIENT_METHODS.has(property)) return value.bind(target);
      return (...args: unknown[]) => (isDown ? Promise.reject(connectionError()) : (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
  return { client: proxy, down: () => void (isDown = true), up: () => void (isDown = false) };
}

/**
 * Calls `onGet` once, after the first GET this client sends returns and before its result is
 * handed back: the moment a GET-then-DEL release would be preempted by another holder.
 */
export function pauseAfterFirstGet(client: Redis, onGet: () => Promise<void>): Redis {
  let fired = false;
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      if (property !== "get") return value.bind(target);
      return async (...args: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (!fired) {
          fired = true;
          await onGet();
        }
        return result;
      };
    },
  });
}

/** A fresh database file in its own directory; remove() deletes it with its WAL files. */
export function tempDatabase(): { file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "ckpt-locking-"));
  return { file: join(dir, "threads.db"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Rejects with a readable message if `work` has not settled within `ms`. */
export async function withinTime<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(withSeed(`${what} did not finish within ${ms} ms`))), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface IncrementOutcome {
  final: number | undefined;
  conflicts: number;
  /** Errors that were neither success nor the unit's VersionConflictError. */
  unexpected: string[];
}

/**
 * The grader's own optimistic loop (not the learner's retry helper, which is graded apart):
 * each writer reads, yields, and writes count + 1 with the version it read, re-reading on
 * VersionConflictError. The yield between read and write is where a lost update happens.
 */
export async function runIncrementers(
  api: LockingApi,
  storeFor: (writer: number) => Store,
  readStore: Store,
  threadId: string,
  writers: number,
  increments: number,
): Promise<IncrementOutcome> {
  const outcome: IncrementOutcome = { final: undefined, conflicts: 0, unexpected: [] };
  const attemptCap = writers * increments * 20; // a watchdog, far above what a correct store needs
  let attempts = 0;
  const random = seededRandom();

  const writer = async (index: number) => {
    const store = storeFor(index);
    for (let done = 0; done < increments; ) {
      if (++attempts > attemptCap) throw new Error(`more than ${attemptCap} attempts for ${writers * increments} increments`);
      const current = await store.get(threadId);
      await (random() < 0.5 ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve());
      try {
        await store.put(threadId, { count: (current?.state.count ?? 0) + 1, writer: `w${index}` }, current?.version ?? 0);
        done++;
      } catch (error) {
        if (error instanceof api.VersionConflictError) outcome.conflicts++;
        else {
          outcome.unexpected.push(describe(error));
          return;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: writers }, (_, index) => writer(index)));
  outcome.final = (await readStore.get(threadId))?.state.count;
  return outcome;
}

export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Runs `body`, which must throw; returns what it threw (or fails with `missing`). */
export async function thrownBy(body: () => Promise<unknown>, missing: string): Promise<unknown> {
  try {
    await body();
  } catch (error) {
    return error;
  }
  throw new Error(withSeed(missing));
}

export interface WriterProcessResult {
  name: string;
  done: number;
  conflicts: number;
  error?: string;
}

/**
 * Starts `processes` child processes that each do `increments` increments on one thread of one
 * SQLite file, releases them together (a "go" file) once all have opened the database, and
 * collects their reports.
 */
export async function runWriterProcesses(file: string, threadId: string, processes: number, increments: number, timeoutMs: number): Promise<WriterProcessResult[]> {
  const entry = fileURLToPath(new URL("./sqlite-writer.ts", import.meta.url));
  const barrierDir = dirname(file);
  const names = Array.from({ length: processes }, (_, index) => `process-${index + 1}`);
  const runs = names.map((name) => runChild<WriterReport>({ entry, args: { file, barrierDir, threadId, increments, name } satisfies WriterArgs, timeoutMs }));
  const deadline = Date.now() + timeoutMs;
  let settled = false;
  void Promise.all(runs).then(() => (settled = true));
  while (!settled && Date.now() < deadline && !names.every((name) => existsSync(join(barrierDir, `ready-${name}`)))) await sleep(5);
  writeFileSync(join(barrierDir, "go"), "");
  const outcomes = await Promise.all(runs);
  return outcomes.map((outcome, index) => {
    const name = names[index]!;
    return outcome.kind === "finished" ? { name, ...outcome.result } : { name, done: -1, conflicts: 0, error: describeOutcome(outcome) };
  });
}
