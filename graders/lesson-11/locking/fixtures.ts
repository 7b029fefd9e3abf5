/**
 * Trusted-side fixtures of the locking grader: ids and files that name nothing, the
 * multi-process increment run, a way to hold one Redis reply (a pause between two commands of
 * the learner's code, done by the backend), and key inspection from the recorded commands.
 * Learner-side pieces are in learner-fixture.ts.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { getKeyIndexes } from "@ioredis/commands";
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import type { CheckContext } from "#harness/check.ts";
import { allOverlap, inProcesses } from "#harness/processes.ts";
import type { TestRedis } from "#harness/redis.ts";
import { SEED, seededRandom, withSeed } from "#harness/seed.ts";
import type { LearnerProcess } from "../../../kit/sandbox/learner.ts";
import type * as Api from "../../../solutions/lesson-11/locking/index.ts";
import type * as LearnerFixture from "./learner-fixture.ts";

export type LockingApi = typeof Api;
export type Fixture = typeof LearnerFixture;
export interface Counter {
  count: number;
  /** Who wrote last, so a lost update can be told apart from a miscount. */
  writer: string;
}
/** A store as the trusted side sees it: every method returns a promise. */
export interface Store {
  get(threadId: string): Promise<Api.Versioned<Counter> | undefined>;
  put(threadId: string, state: Counter, expectedVersion: number, options?: Api.PutOptions): Promise<number>;
  close?(): Promise<void> | void;
}

export const FIXTURES = { writers: new URL("./learner-fixture.ts", import.meta.url).pathname };

/** An opaque id (threads, namespaces): it names no check. */
export const opaqueId = () => randomBytes(6).toString("hex");

/** A fresh SQLite file in the unit's scratch folder, with a neutral name. */
export const databaseFile = (check: CheckContext<LockingApi>) => join(check.scratch, `${opaqueId()}.db`);

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

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

export interface IncrementOutcome {
  final: number | undefined;
  conflicts: number;
  unexpected: string[];
  overlapped: boolean;
}

/**
 * `writers` writers, each on its own store (connection), spread over `processes` learner
 * processes, do `increments` read-modify-write increments each on one thread, all starting at
 * once; `final` is the count read afterwards from a fresh store in another process.
 */
export async function incrementAcrossProcesses(
  check: CheckContext<LockingApi>,
  options: {
    processes: number;
    writers: number;
    increments: number;
    threadId: string;
    makeStore: (api: LockingApi, learner: LearnerProcess) => Promise<Store>;
    /** Started once every writer is ready, stopped when they are done (e.g. pulseWriteLock). */
    during?: () => { stop(): Promise<void> };
  },
): Promise<IncrementOutcome> {
  let during: { stop(): Promise<void> } | undefined;
  // One store is built first, alone, in the process that reads the result: on a fresh SQLite file
  // twenty constructors at once race to create the schema (a CREATE TABLE IF NOT EXISTS that reads,
  // then upgrades to a write, gets SQLITE_BUSY without waiting when another process wrote first).
  // That is a startup race, not a lost update, and a load-dependent one: keep it out of this check.
  const reader = await check.spawn();
  const store = await options.makeStore(reader.api, reader.learner);
  const reports = await inProcesses(check, { processes: options.processes, writers: options.writers }, async ({ index, learner, api, writers, start }) => {
    const stores = await Promise.all(writers.map(() => options.makeStore(api, learner)));
    const fixture = await check.fixture<Fixture>("writers", learner);
    const go = async () => {
      await start();
      if (options.during && !during) during = options.during();
    };
    return fixture.increment({ stores, names: writers.map((w) => `w${w}`), threadId: options.threadId, increments: options.increments, Conflict: api.VersionConflictError, start: go, seed: SEED + index, progress: () => undefined });
  }).finally(() => during?.stop());
  const final = (await store.get(options.threadId))?.state.count;
  return {
    final,
    conflicts: reports.reduce((sum, r) => sum + r.conflicts, 0),
    unexpected: reports.flatMap((r) => r.unexpected),
    overlapped: allOverlap(reports),
  };
}

export function assertNoLostUpdate(backend: string, outcome: IncrementOutcome, shape: string, expected: number): void {
  if (outcome.unexpected.length > 0) {
    throw new Error(withSeed(`${backend}: a writer failed with something other than VersionConflictError: ${outcome.unexpected[0]}`));
  }
  if (outcome.final !== expected) {
    throw new Error(
      withSeed(
        `${backend}: ${shape} ended at ${String(outcome.final)}, not ${expected}, with ${outcome.conflicts} conflicts reported: ` +
          `${expected - (outcome.final ?? 0)} updates were lost. A write based on a stale read must be refused, not applied, whichever process or connection made it.`,
      ),
    );
  }
}

/** Seeded reply jitter, so concurrent writers on many connections interleave as on a network. */
export function interleave(redis: TestRedis, maxMs = 1): void {
  redis.setJitter(maxMs, seededRandom());
}

/**
 * Holds the reply to the next learner command (any connection) for at most `holdMs`: the command
 * has run on the server, but the learner's code is paused before its next one, as if its process
 * stalled (a GC pause, a slow model call). `heldIn(call)` resolves when the hold begins, with the
 * connection and the position of the held command in `redis.commands`; `release()` sends the held
 * reply at once, when the check has done what it does during the pause.
 */
export function holdNextReply(redis: TestRedis, holdMs: number): { heldIn(call: Promise<unknown>, what: string): Promise<{ connection: number; index: number }>; release(): void } {
  const armedAt = redis.commands.length;
  let armed = true;
  let begin!: (at: { connection: number; index: number }) => void;
  const held = new Promise<{ connection: number; index: number }>((resolve) => (begin = resolve));
  redis.setJitter(holdMs, () => {
    // Replies to the client handshake are not recorded: wait for a command of the learner's own.
    if (!armed || redis.commands.length <= armedAt) return 0;
    armed = false;
    begin({ connection: redis.commands[armedAt]!.connection, index: armedAt });
    return 1;
  });
  return {
    async heldIn(call, what) {
      // A call that fails, or finishes without a reply from Redis, is reported now rather than waited for.
      const first = await Promise.race([held, call.then(() => undefined)]);
      if (first) return first;
      redis.releaseDelayed();
      throw new Error(`${what} finished before Redis had answered any command it sent: it must act on Redis, which every holder shares, and wait for its replies.`);
    },
    release: () => redis.releaseDelayed(),
  };
}

/** Every key the recorded commands from `from` on touched (EVAL keys included). */
export function keysTouched(redis: TestRedis, from = 0, connection?: number): Set<string> {
  const keys = new Set<string>();
  for (const command of redis.commands.slice(from)) {
    if (connection !== undefined && command.connection !== connection) continue;
    try {
      for (const index of getKeyIndexes(command.name.toLowerCase(), command.args)) keys.add(command.args[index]!);
    } catch {
      // no keys
    }
  }
  return keys;
}

/** A Redis connection for the learner's code in `learner` (it arrives there as an ioredis client). */
/**
 * After an outage, waits (at most `limitMs`) until the learner's clients hold as many connections
 * as before it. ioredis reconnects with a backoff, and a reconnect attempt made during the outage
 * can fail after it ended, more so on a busy machine: a command sent before the client is back may
 * still fail (MaxRetriesPerRequestError), and the check would blame the store for the client's
 * timing. Not a check: when the limit passes, the check goes on and judges what the store does.
 */
export async function reconnected(redis: TestRedis, connectionsBefore: number, limitMs: number): Promise<void> {
  const until = Date.now() + limitMs;
  while (redis.liveConnections < connectionsBefore && Date.now() < until) await sleep(20);
}

export async function clientFor(redis: TestRedis, learner: LearnerProcess, options?: Record<string, unknown>): Promise<Redis> {
  return (await redis.endpoint(learner, options)) as unknown as Redis;
}

/**
 * Takes the SQLite file's write lock from the trusted side now and then (BEGIN IMMEDIATE, held
 * `holdMs`, never waiting for it: busy timeout 0, a busy attempt is skipped). Writers that read
 * first and write afterwards pile up behind each hold with the same version read, so a
 * SELECT-then-unconditional-write loses updates on every run instead of only when two processes
 * happen to meet between its two statements; a store whose check is part of the locked write
 * just waits (holds are far below any busy timeout). Start it only once the learner has created
 * the file (its owner must stay the learner's user).
 */
export function pulseWriteLock(file: string, holdMs = 15, gapMs = 10): { stop(): Promise<void> } {
  const db = new Database(file, { timeout: 0 });
  let running = true;
  const loop = (async () => {
    while (running) {
      let held = false;
      try {
        db.exec("BEGIN IMMEDIATE");
        held = true;
      } catch {
        // a writer holds it right now: try again after the gap
      }
      if (held) {
        await sleep(holdMs);
        db.exec("COMMIT");
      }
      await sleep(gapMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop.catch(() => undefined);
      db.close();
    },
  };
}
