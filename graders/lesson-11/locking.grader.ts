/**
 * Grader of lesson-11 / locking: cross-instance consistency. Core checks: compare-and-set on
 * SQLite and Redis, no lost update when 20 writers in 4 OS processes increment one thread,
 * bounded retry with backoff and jitter, clear errors for bad input. Excellence: leases with
 * fencing tokens, owner-only release, degradation to memory with reconciliation.
 *
 * Learner code runs in learner processes: stores are built there (`await new api.Store(...)`),
 * on a SQLite file in the scratch folder or on a Redis endpoint of the trusted backend, which
 * also supplies the jitter, the outages and the pauses between two commands.
 */
import { defineGrader, hiddenChecksEnabled, type CheckContext } from "#harness/check.ts";
import { createTestRedis, type TestRedis } from "#harness/redis.ts";
import { inProcesses } from "#harness/processes.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import {
  assertNoLostUpdate,
  clientFor,
  reconnected,
  databaseFile,
  describe,
  FIXTURES,
  holdNextReply,
  incrementAcrossProcesses,
  interleave,
  keysTouched,
  opaqueId,
  pulseWriteLock,
  sleep,
  thrownBy,
  type Counter,
  type Fixture,
  type LockingApi,
  type Store,
} from "./locking/fixtures.ts";

const grader = defineGrader<LockingApi>({
  lesson: "lesson-11",
  unit: "locking",
  exports: ["VersionConflictError", "StaleFencingTokenError", "LockingInputError", "SqliteVersionedStore", "RedisVersionedStore", "updateWithRetry", "acquireLease", "ResilientStore"],
  fixtures: FIXTURES,
});

async function withRedis<T>(body: (redis: TestRedis) => Promise<T>): Promise<T> {
  const redis = await createTestRedis();
  try {
    return await body(redis);
  } finally {
    await redis.close();
  }
}

const sqliteStore = (file: string) => async (api: LockingApi) => (await new api.SqliteVersionedStore<Counter>(file)) as unknown as Store;
const redisStore = (redis: TestRedis, options?: Record<string, unknown>, endpoint?: Record<string, unknown>) => async (api: LockingApi, learner: CheckContext<LockingApi>["learner"]) =>
  (await new api.RedisVersionedStore<Counter>(await clientFor(redis, learner, endpoint), options)) as unknown as Store;
/**
 * Client options for checks that cut Redis off and bring it back: a reconnect attempt made during
 * the outage can fail after the outage ended (on a loaded machine the learner process handles
 * its close late), and with one retry per request a command issued right after recovery failed
 * with MaxRetriesPerRequestError. A few retries keep failures during the outage quick and a
 * recovered server reachable.
 */
const SURVIVES_OUTAGE = { maxRetriesPerRequest: 4 };

/** Checks one compare-and-set story on two instances of a backend, in two processes. */
async function checkCompareAndSet(api: LockingApi, check: CheckContext<LockingApi>, backend: string, make: (api: LockingApi, learner: CheckContext<LockingApi>["learner"]) => Promise<Store>): Promise<void> {
  const other = await check.spawn();
  const first = await make(api, check.learner);
  const second = await make(other.api, other.learner);
  const random = seededRandom();
  for (let run = 0; run < 8; run++) {
    const writes = 1 + Math.floor(random() * 4);
    const staleGuess = Math.floor(random() * 8);
    const threadId = opaqueId();
    const stale = staleGuess === writes ? writes + 1 : staleGuess; // any version but the stored one
    for (let version = 0; version < writes; version++) {
      const returned = await first.put(threadId, { count: version + 1, writer: "first" }, version);
      if (returned !== version + 1) throw new Error(withSeed(`${backend}: put with expectedVersion ${version} returned ${String(returned)}; it must return the new version, ${version + 1}.`));
    }
    const seen = await second.get(threadId);
    if (seen?.version !== writes || seen.state.count !== writes) {
      throw new Error(withSeed(`${backend}: after ${writes} writes through one instance, get() on another (in another process) returned ${JSON.stringify(seen)}; expected version ${writes} with count ${writes}.`));
    }
    const error = await thrownBy(
      () => second.put(threadId, { count: -1, writer: "stale" }, stale),
      `${backend}: put with expectedVersion ${stale} succeeded although the stored version is ${writes}; a compare-and-set must refuse it.`,
    );
    if (!(error instanceof other.api.VersionConflictError)) {
      throw new Error(withSeed(`${backend}: a put with a stale expectedVersion must throw your VersionConflictError; it threw ${describe(error)}.`));
    }
    const conflict = error as InstanceType<LockingApi["VersionConflictError"]>;
    if (conflict.expectedVersion !== stale || conflict.actualVersion !== writes) {
      throw new Error(withSeed(`${backend}: the VersionConflictError carried expectedVersion ${String(conflict.expectedVersion)} and actualVersion ${String(conflict.actualVersion)}; expected ${stale} and ${writes}.`));
    }
    // The error is evidence for an operator: its name, the thread and both versions, and what to do.
    const words = conflict.message.split(/[^\w-]+/);
    if (conflict.name !== "VersionConflictError" || !conflict.message.includes(threadId) || !words.includes(String(stale)) || !words.includes(String(writes))) {
      throw new Error(`${backend}: the VersionConflictError was ${describe(conflict)}; its name must be "VersionConflictError" and its message must name the thread and both versions (${stale} expected, ${writes} stored).`);
    }
    const after = await first.get(threadId);
    if (after?.version !== writes || after.state.writer !== "first") {
      throw new Error(withSeed(`${backend}: the refused write changed the thread (now ${JSON.stringify(after)}); a conflicting put must leave it untouched.`));
    }
  }
  // A thread never written is at version 0: any other expectedVersion conflicts, and nothing is created.
  const unwritten = opaqueId();
  const guess = 1 + Math.floor(random() * 5);
  const error = await thrownBy(
    () => second.put(unwritten, { count: 1, writer: "stale" }, guess),
    `${backend}: put with expectedVersion ${guess} on a thread never written succeeded; the thread is at version 0, so a compare-and-set must refuse it.`,
  );
  const conflict = error as InstanceType<LockingApi["VersionConflictError"]>;
  if (!(error instanceof other.api.VersionConflictError) || conflict.expectedVersion !== guess || conflict.actualVersion !== 0) {
    throw new Error(withSeed(`${backend}: put with expectedVersion ${guess} on a thread never written threw ${describe(error)}${error instanceof other.api.VersionConflictError ? ` (expectedVersion ${String(conflict.expectedVersion)}, actualVersion ${String(conflict.actualVersion)})` : ""}; expected VersionConflictError with expectedVersion ${guess} and actualVersion 0.`));
  }
  const created = await first.get(unwritten);
  if (created !== undefined) throw new Error(`${backend}: the refused put on a thread never written created it (get() returned ${JSON.stringify(created)}); it must stay undefined.`);
}

grader.core(
  "SQLite: put is a compare-and-set; a stale expectedVersion throws VersionConflictError with both versions",
  { hint: "Make put one conditional write inside a transaction (UPDATE ... WHERE version = expected; INSERT for version 0) and throw VersionConflictError(threadId, expected, actual) when no row changed.", section: "compare-and-set-on-sqlite", weight: 3 },
  async (api, check) => {
    const file = databaseFile(check);
    await checkCompareAndSet(api, check, "SQLite", sqliteStore(file));
    // close() closes the store's own connection: the store cannot be used afterwards, the file stays.
    const store = await sqliteStore(file)(api);
    const threadId = opaqueId();
    await store.put(threadId, { count: 1, writer: "closing" }, 0);
    await store.close?.();
    const afterClose = await store.get(threadId).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    if ("value" in afterClose) throw new Error(`SQLite: get() after close() returned ${JSON.stringify(afterClose.value)}; close() must close the store's connection, so a later call fails.`);
    const reopened = await (await sqliteStore(file)(api)).get(threadId);
    if (reopened?.state.writer !== "closing") throw new Error(`SQLite: a store opened on the file after another one was closed read ${JSON.stringify(reopened)}; the closed store's write must be in the file.`);
  },
);

grader.core(
  "Redis: put is a compare-and-set; a stale expectedVersion throws VersionConflictError with both versions",
  { hint: "Check the version and write the state in one atomic step: a Lua script (EVAL), or WATCH + MULTI/EXEC on a connection of its own; throw VersionConflictError(threadId, expected, actual) when the check fails.", section: "compare-and-set-on-redis", weight: 3 },
  async (api, check) => {
    await withRedis((redis) => checkCompareAndSet(api, check, "Redis", redisStore(redis)));
  },
);

grader.excellence(
  "MemoryVersionedStore (the given worked example) still keeps the contract: undefined for a thread never written, put a compare-and-set returning the new version",
  { hint: "If you change MemoryVersionedStore, keep its contract: get() returns undefined for a thread never written, put() writes only at the expected version (0 for a new thread), returns expectedVersion + 1 and otherwise throws VersionConflictError(threadId, expected, actual).", section: "versions-and-compare-and-set", weight: 1 },
  async (api) => {
    const store = (await new api.MemoryVersionedStore<Counter>()) as unknown as Store;
    const threadId = opaqueId();
    const before = await store.get(threadId);
    if (before !== undefined) throw new Error(`MemoryVersionedStore.get() of a thread never written returned ${JSON.stringify(before)}; it must return undefined.`);
    const versions = [await store.put(threadId, { count: 1, writer: "first" }, 0), await store.put(threadId, { count: 2, writer: "first" }, 1)];
    if (versions.join() !== "1,2") throw new Error(`MemoryVersionedStore: puts with expectedVersion 0 and then 1 returned ${JSON.stringify(versions)}; each must return the new version (1, then 2).`);
    for (const [what, id, expected, actual] of [["a stale expectedVersion (1, the store holds 2)", threadId, 1, 2], ["expectedVersion 3 on a thread never written", opaqueId(), 3, 0]] as const) {
      const error = await thrownBy(() => store.put(id, { count: 9, writer: "stale" }, expected), `MemoryVersionedStore: a put with ${what} succeeded; it must throw VersionConflictError.`);
      const conflict = error as InstanceType<LockingApi["VersionConflictError"]>;
      if (!(error instanceof api.VersionConflictError) || conflict.expectedVersion !== expected || conflict.actualVersion !== actual) {
        throw new Error(`MemoryVersionedStore: a put with ${what} threw ${describe(error)}; expected VersionConflictError with expectedVersion ${expected} and actualVersion ${actual}.`);
      }
    }
    const after = await store.get(threadId);
    if (after?.version !== 2 || after.state.count !== 2 || after.state.writer !== "first") throw new Error(`MemoryVersionedStore: after two writes and a refused one, get() returned ${JSON.stringify(after)}; expected version 2 with the second write's state.`);
  },
);

grader.core(
  "SQLite: 20 writers in 4 OS processes x 10 increments, each on its own connection to one file, end at exactly 200",
  {
    hint: "The version check must be part of the write itself (a conditional UPDATE in a transaction, BEGIN IMMEDIATE), never a SELECT followed by an unconditional write: in another process nothing stops a writer between the two. Use WAL and a busy timeout so writers queue.",
    section: "compare-and-set-on-sqlite",
    weight: 6,
    timeout: 30_000,
  },
  async (_api, check) => {
    const file = databaseFile(check);
    const threadId = opaqueId();
    // The trusted side takes the write lock now and then, so a read-then-write is caught between its two steps on every run.
    const outcome = await incrementAcrossProcesses(check, { processes: 4, writers: 20, increments: 10, threadId, makeStore: sqliteStore(file), during: () => pulseWriteLock(file) });
    assertNoLostUpdate("SQLite", outcome, "20 writers in 4 processes x 10 read-modify-write increments (with another connection taking the write lock now and then)", 200);
  },
);

grader.core(
  "Redis: 20 writers on 20 connections in 4 OS processes x 10 increments end at exactly 200",
  {
    hint: "Check the version and write state and version together in one atomic step (a Lua script, or WATCH + MULTI/EXEC on a connection of its own); a GET then SET loses updates, and a lock inside one process does not stop the other processes.",
    section: "compare-and-set-on-redis",
    weight: 6,
    timeout: 30_000,
  },
  async (_api, check) => {
    await withRedis(async (redis) => {
      interleave(redis);
      const threadId = opaqueId();
      const outcome = await incrementAcrossProcesses(check, { processes: 4, writers: 20, increments: 10, threadId, makeStore: redisStore(redis) });
      redis.setJitter(0);
      assertNoLostUpdate("Redis", outcome, "20 writers in 4 processes x 10 read-modify-write increments", 200);
    });
  },
);

grader.core(
  "updateWithRetry: concurrent callers all land, each change applied to freshly read state",
  { hint: "On VersionConflictError, re-read the thread and call the update function again with the fresh state before the next put.", section: "bounded-retry-with-backoff-and-jitter", weight: 2, timeout: 20_000 },
  async (api, check) => {
    const file = databaseFile(check);
    const stores = await Promise.all(Array.from({ length: 4 }, () => sqliteStore(file)(api)));
    const threadId = opaqueId();
    const callers = 8;
    const increments = 5;
    let calls = 0;
    const results = await Promise.all(
      Array.from({ length: callers }, async (_, caller) => {
        const runs: Array<{ version: number; attempts: number }> = [];
        for (let i = 0; i < increments; i++) {
          runs.push(
            await api.updateWithRetry(stores[caller % stores.length]! as never, threadId, (current: Counter | undefined) => (calls++, { count: (current?.count ?? 0) + 1, writer: `c${caller}` }), {
              maxAttempts: 60,
              baseDelayMs: 1,
              maxDelayMs: 8,
            }),
          );
        }
        return runs;
      }),
    );
    const final = await stores[0]!.get(threadId);
    if (final?.state.count !== callers * increments) {
      throw new Error(withSeed(`${callers} callers x ${increments} updateWithRetry increments ended at ${String(final?.state.count)}, not ${callers * increments}.`));
    }
    const versions = results.flat().map((result) => result.version);
    if (new Set(versions).size !== versions.length || Math.max(...versions) !== final.version) {
      throw new Error(`updateWithRetry returned versions ${JSON.stringify(versions.slice(0, 12))}...; each successful call must return the distinct version its put created.`);
    }
    if (calls <= callers * increments && results.flat().some((result) => result.attempts > 1)) {
      throw new Error("updateWithRetry retried without calling the update function again: a retry must re-apply the change to the fresh state.");
    }
  },
);

/** Runs updateWithRetry against a store (in the learner process) on which every put loses the race. */
async function retryAgainstConflicts(api: LockingApi, check: CheckContext<LockingApi>, options: { maxAttempts: number; baseDelayMs: number; maxDelayMs?: number; injectSleep: boolean; fencingToken?: number; random?: () => number }) {
  const fixture = await check.fixture<Fixture>("writers");
  const store = await fixture.conflictingStore(api.VersionConflictError as never, 50);
  const { injectSleep, ...retry } = options;
  const run = api
    .updateWithRetry(store as never, opaqueId(), (current: Counter | undefined) => ({ count: (current?.count ?? 0) + 1, writer: "me" }), { ...retry, ...(injectSleep ? { sleep: store.sleep } : {}) })
    .then(
      () => "resolved" as const,
      (error: unknown) => ({ error }),
    );
  const outcome = await Promise.race([run, store.tripped().then(() => "unbounded" as const)]);
  return { outcome, ...(await store.stats()) };
}

grader.core(
  "retries are bounded: an always-conflicting store gets exactly maxAttempts puts, then VersionConflictError surfaces (with an injected sleep and with real short sleeps)",
  { hint: "Count attempts and stop at maxAttempts, rethrowing the last VersionConflictError, whichever sleep is used; never loop until success.", section: "bounded-retry-with-backoff-and-jitter", weight: 2 },
  async (api, check) => {
    const maxAttempts = 2 + Math.floor(seededRandom()() * 5);
    for (const injectSleep of [true, false]) {
      const how = injectSleep ? "with options.sleep" : "with its own sleeps (no options.sleep, baseDelayMs 1)";
      const { outcome, puts } = await retryAgainstConflicts(api, check, { maxAttempts, baseDelayMs: 1, maxDelayMs: 4, injectSleep });
      if (outcome === "unbounded") throw new Error(withSeed(`updateWithRetry ${how} and maxAttempts ${maxAttempts} kept retrying past 50 puts; it must give up after ${maxAttempts}.`));
      if (outcome === "resolved") throw new Error(`updateWithRetry ${how} resolved although every put conflicted; it must throw the VersionConflictError.`);
      if (!(outcome.error instanceof api.VersionConflictError)) throw new Error(`After exhausting its attempts, updateWithRetry ${how} threw ${describe(outcome.error)}; it must rethrow the VersionConflictError.`);
      if (puts !== maxAttempts) throw new Error(withSeed(`updateWithRetry ${how} and maxAttempts ${maxAttempts} made ${puts} puts; it must make exactly ${maxAttempts}.`));
    }
  },
);

grader.core(
  "retries back off exponentially with random jitter between attempts",
  { hint: "Before attempt n+1 wait options.sleep(random() * min(maxDelayMs, baseDelayMs * 2 ** (n - 1))): the cap doubles and the randomness spreads colliding writers.", section: "bounded-retry-with-backoff-and-jitter", weight: 1 },
  async (api, check) => {
    const maxAttempts = 6;
    const baseDelayMs = 8;
    const runs: number[][] = [];
    for (let run = 0; run < 20; run++) {
      const { outcome, delays, putsWhileSleeping } = await retryAgainstConflicts(api, check, { maxAttempts, baseDelayMs, maxDelayMs: 10_000, injectSleep: true });
      if (outcome === "unbounded") throw new Error(`updateWithRetry with maxAttempts ${maxAttempts} kept retrying past 50 puts, so its backoff cannot be judged; bound the retries first.`);
      if (putsWhileSleeping > 0) throw new Error(`updateWithRetry called put ${putsWhileSleeping} time(s) while the options.sleep it had asked for was still pending: await the sleep before the next attempt, or the backoff is only asked for, never waited.`);
      runs.push(delays);
    }
    const odd = runs.find((delays) => delays.length !== maxAttempts - 1);
    if (odd) {
      throw new Error(`With maxAttempts ${maxAttempts}, updateWithRetry called options.sleep ${odd.length} times; it must wait once between each pair of attempts (${maxAttempts - 1} times), through options.sleep.`);
    }
    if (runs.flat().some((ms) => !Number.isFinite(ms) || ms < 0 || ms > 10_000)) throw new Error("updateWithRetry asked to sleep a negative, infinite or above-maxDelayMs time.");
    const column = (index: number) => runs.map((delays) => delays[index]!);
    const early = Math.max(...column(0));
    const late = Math.max(...column(maxAttempts - 2));
    if (!(late >= 2 * early && late >= 4 * baseDelayMs)) {
      throw new Error(`Backoff does not grow: the longest first wait was ${early.toFixed(1)} ms and the longest fifth wait ${late.toFixed(1)} ms (baseDelayMs ${baseDelayMs}); the cap should double per attempt.`);
    }
    if (new Set(column(0)).size < 5 || new Set(column(maxAttempts - 2)).size < 5) {
      throw new Error("The waits are the same on every run: add random jitter, or colliding writers retry in lockstep and collide again.");
    }
  },
);

grader.excellence(
  "each backoff wait is random() * min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)), with the jitter drawn from options.random",
  { hint: "Draw the jitter from options.random (once per wait) and cap the doubling delay at maxDelayMs: sleep(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1))) before attempt n+1.", section: "bounded-retry-with-backoff-and-jitter", weight: 1 },
  async (api, check) => {
    const fixture = await check.fixture<Fixture>("writers");
    const draw = seededRandom();
    const baseDelayMs = 3 + Math.floor(draw() * 6);
    // Between 5 and 6 times the base: the fourth and fifth waits are capped, the first three are not.
    const maxDelayMs = 5 * baseDelayMs + Math.floor(draw() * baseDelayMs);
    const values = Array.from({ length: 5 }, () => 0.05 + draw() * 0.9);
    const jitter = await fixture.randomSequence(values);
    const { outcome, delays } = await retryAgainstConflicts(api, check, { maxAttempts: 6, baseDelayMs, maxDelayMs, injectSleep: true, random: jitter.random });
    if (outcome === "unbounded") throw new Error("updateWithRetry with maxAttempts 6 kept retrying past 50 puts, so its waits cannot be judged; bound the retries first.");
    const expected = values.map((r, i) => r * Math.min(maxDelayMs, baseDelayMs * 2 ** i));
    const round = (ms: number[]) => JSON.stringify(ms.map((ms) => Math.round(ms * 1000) / 1000));
    if (delays.length !== expected.length || delays.some((ms, i) => !(Math.abs(ms - expected[i]!) <= 1e-6 * Math.max(1, expected[i]!)))) {
      throw new Error(
        withSeed(
          `With baseDelayMs ${baseDelayMs}, maxDelayMs ${maxDelayMs} and options.random returning ${round(values)} in turn, updateWithRetry slept ${round(delays)}; ` +
            `expected ${round(expected)}: before attempt n+1, random() * min(maxDelayMs, baseDelayMs * 2 ** (n - 1)), one random() per wait.`,
        ),
      );
    }
    // Without options.sleep the same waits must really pass. Only a lower bound: a busy machine
    // makes the gaps longer, never shorter (timers may fire up to 1 ms early: 2 ms of slack).
    const long = await fixture.randomSequence([0.99]);
    const real = await retryAgainstConflicts(api, check, { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 1_000, injectSleep: false, random: long.random });
    const gaps = real.putTimes.slice(1).map((at, i) => at - real.putTimes[i]!);
    const owed = [0.99 * 20, 0.99 * 40];
    if (gaps.length !== owed.length || gaps.some((gap, i) => gap < owed[i]! - 2)) {
      throw new Error(`Without options.sleep (baseDelayMs 20, random() always 0.99), updateWithRetry made ${real.puts} puts ${round(gaps)} ms apart; it must wait at least ${round(owed)} ms between them, with a real timer.`);
    }
  },
);

/** What a refusal's message must say: the argument's name, and the rule the value broke. */
interface Says {
  pattern: RegExp;
  /** What is missing, in the learner's words. */
  words: string;
}
const argument = (pattern: RegExp, name: string): Says => ({ pattern, words: `the argument's name (${name})` });
const names = {
  threadId: argument(/thread ?id/i, "threadId"),
  version: argument(/expected ?version/i, "expectedVersion"),
  token: argument(/fencing ?token/i, "fencingToken"),
  namespace: argument(/namespace/i, "namespace"),
  ttl: argument(/ttl/i, "ttlMs"),
  maxAttempts: argument(/maxAttempts/i, "maxAttempts"),
  baseDelayMs: argument(/baseDelayMs/i, "baseDelayMs"),
};
const rules = {
  empty: { pattern: /empty/i, words: "that it must not be empty" },
  shown: { pattern: /""/, words: 'the refused value ("")' },
  whole: { pattern: /integer|whole/i, words: "that it must be a whole number (integer)" },
  atLeast0: { pattern: /\b0 or (more|greater)|>=\s*0|≥\s*0|at least 0|non-?negative|zero or more/i, words: 'its lower bound ("0 or more", ">= 0")' },
  atLeast1: { pattern: /\b1 or (more|greater)|>=\s*1|≥\s*1|at least 1|positive/i, words: 'its lower bound ("1 or more", ">= 1")' },
  braces: { pattern: /brace/i, words: "that braces are not allowed" },
} satisfies Record<string, Says>;

interface BadInput {
  what: string;
  call: () => Promise<unknown>;
  /** What the message must say (the excellence check): the argument, then what is valid. */
  says: Says[];
  /** Only the excellence check tries it (the core list is what the starter's contract names). */
  extra?: boolean;
}

async function badInputs(api: LockingApi, check: CheckContext<LockingApi>, redis: TestRedis): Promise<BadInput[]> {
  const sqlite = await sqliteStore(databaseFile(check))(api);
  const onRedis = await redisStore(redis)(api, check.learner);
  const state = { count: 1, writer: "x" };
  const cases: BadInput[] = [];
  for (const [backend, store] of [["SQLite", sqlite], ["Redis", onRedis]] as const) {
    cases.push(
      { what: `${backend}: put with an empty thread id`, call: () => store.put("", state, 0), says: [names.threadId, rules.empty, rules.shown] },
      { what: `${backend}: get with an empty thread id`, call: () => store.get(""), says: [names.threadId, rules.empty, rules.shown] },
      { what: `${backend}: put with expectedVersion -1`, call: () => store.put("t", state, -1), says: [names.version, rules.atLeast0] },
      { what: `${backend}: put with expectedVersion 1.5`, call: () => store.put("t", state, 1.5), says: [names.version, rules.whole] },
      { what: `${backend}: put with fencingToken 0`, call: () => store.put("t", state, 0, { fencingToken: 0 }), says: [names.token, rules.atLeast1] },
      { what: `${backend}: put with fencingToken 2.5`, call: () => store.put("t", state, 0, { fencingToken: 2.5 }), says: [names.token, rules.whole], extra: true },
    );
  }
  // A bad option may be refused by the constructor or by the first call; either is fine.
  const badRedisOption = (options: Record<string, unknown>) => async () => {
    const store = await redisStore(redis, options)(api, check.learner);
    await store.put(opaqueId(), state, 0);
  };
  const retry = (options: Record<string, unknown>) => () => api.updateWithRetry(sqlite as never, "t", () => state, options as never);
  const lease = async (ttlMs: number) => api.acquireLease(await clientFor(redis, check.learner), opaqueId(), ttlMs);
  cases.push(
    { what: 'RedisVersionedStore with namespace "a{b}" (braces change the hash tag)', call: badRedisOption({ namespace: "a{b}" }), says: [names.namespace, rules.braces] },
    { what: "RedisVersionedStore with an empty namespace", call: badRedisOption({ namespace: "" }), says: [names.namespace] },
    { what: "RedisVersionedStore with ttlMs -5", call: badRedisOption({ ttlMs: -5 }), says: [names.ttl, rules.atLeast1] },
    { what: "RedisVersionedStore with ttlMs 1.5", call: badRedisOption({ ttlMs: 1.5 }), says: [names.ttl, rules.whole] },
    { what: 'RedisVersionedStore with namespace "{tenant}-a" (braces change the hash tag)', call: badRedisOption({ namespace: "{tenant}-a" }), says: [names.namespace, rules.braces] },
    { what: "updateWithRetry with maxAttempts 0", call: retry({ maxAttempts: 0, baseDelayMs: 1 }), says: [names.maxAttempts, rules.atLeast1] },
    { what: "updateWithRetry with maxAttempts 1.5", call: retry({ maxAttempts: 1.5, baseDelayMs: 1 }), says: [names.maxAttempts, rules.whole], extra: true },
    { what: "updateWithRetry with baseDelayMs -1", call: retry({ maxAttempts: 3, baseDelayMs: -1 }), says: [names.baseDelayMs, rules.atLeast0], extra: true },
    { what: "acquireLease with ttlMs 0", call: () => lease(0), says: [names.ttl, rules.atLeast1] },
    { what: "acquireLease with ttlMs 1.5", call: () => lease(1.5), says: [names.ttl, rules.whole], extra: true },
    {
      what: "renew(0) on a held lease",
      call: async () => {
        const held = (await lease(60_000)) as { renew(ttlMs?: number): Promise<boolean> } | undefined;
        if (!held) throw new Error("grader: acquireLease returned nothing for a free lease");
        return held.renew(0);
      },
      says: [names.ttl, rules.atLeast1],
    },
  );
  return cases;
}

async function refusal(api: LockingApi, { what, call }: BadInput): Promise<Error> {
  const error = await thrownBy(call, `${what} was accepted; it must throw LockingInputError.`);
  if (!(error instanceof api.LockingInputError) || error.name !== "LockingInputError") throw new Error(`${what} threw ${describe(error)}; it must throw your LockingInputError (named "LockingInputError").`);
  return error;
}

grader.core(
  "bad input (empty thread id, negative or fractional version, token 0, zero maxAttempts, zero TTL, a bad Redis namespace or ttlMs) throws LockingInputError",
  { hint: "Validate arguments at the boundary (zod) of every store, the lease and the retry helper, and throw LockingInputError with a message saying what was wrong and an example of a valid value.", section: "versions-and-compare-and-set", weight: 1 },
  async (api, check) => {
    await withRedis(async (redis) => {
      for (const bad of (await badInputs(api, check, redis)).filter((bad) => !bad.extra)) {
        const error = await refusal(api, bad);
        if (error.message.length < 20) throw new Error(`${bad.what} threw LockingInputError("${error.message}"); say what was wrong and what a valid value looks like.`);
      }
    });
  },
);

grader.excellence(
  "every refusal names the argument and says what is valid (also for a fractional token, maxAttempts or lease TTL, and a negative baseDelayMs)",
  {
    hint: 'Say which argument was wrong, in the caller\'s words (threadId, expectedVersion, fencingToken, namespace, ttlMs, maxAttempts, baseDelayMs), and the rule it broke: "must not be empty" (showing the value, ""), "must be a whole number", "1 or more", "no braces".',
    section: "versions-and-compare-and-set",
    weight: 1,
  },
  async (api, check) => {
    await withRedis(async (redis) => {
      for (const bad of await badInputs(api, check, redis)) {
        const { message } = await refusal(api, bad);
        const missing = bad.says.filter(({ pattern }) => !pattern.test(message));
        if (missing.length > 0) {
          throw new Error(`${bad.what} threw LockingInputError("${message}"), which does not say ${missing.map((m) => m.words).join(" or ")}; name the argument and say what a valid value is.`);
        }
      }
    });
  },
);

type Lease = NonNullable<Awaited<ReturnType<LockingApi["acquireLease"]>>>;

grader.excellence(
  "lease: one holder at a time (SET NX PX), every grant's fencing token is greater than all before it, and the token counter never expires",
  { hint: "Acquire with SET lease owner NX PX ttl and, in the same atomic step (a Lua script, or WATCH/MULTI), INCR a per-thread counter that has no expiry; return that number as the token.", section: "leases-and-fencing-tokens", weight: 2 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const [threadId, otherThread] = [opaqueId(), opaqueId()];
      const tokens: number[] = [];
      const holders = 3 + Math.floor(seededRandom()() * 3);
      const from = redis.commands.length;
      for (let holder = 0; holder < holders; holder++) {
        const expires = holder % 2 === 1;
        // A lease that must not lapse is long (released explicitly below): on a loaded machine seconds can pass between two calls.
        const lease = (await api.acquireLease(await clientFor(redis, check.learner), threadId, expires ? 40 : 120_000)) as Lease | undefined;
        if (!lease) throw new Error(withSeed(`Holder ${holder + 1} could not acquire a free lease (acquireLease returned ${String(lease)}).`));
        tokens.push(lease.token);
        if (!expires) {
          // (Only against a long lease: a 40 ms one may lapse on a busy machine before the rival asks.)
          const rival = await api.acquireLease(await clientFor(redis, check.learner), threadId, 5_000);
          if (rival) throw new Error(withSeed(`A second caller acquired the lease while holder ${holder + 1} held it; SET ... NX must refuse it.`));
          if (holder === 0) {
            // A lease is per thread: another thread's lease is free meanwhile.
            const elsewhere = (await api.acquireLease(await clientFor(redis, check.learner), otherThread, 5_000)) as Lease | undefined;
            if (!elsewhere) throw new Error("While one thread's lease was held, the lease of another thread could not be acquired; a lease must cover one thread only (its keys carry the thread id).");
            await elsewhere.release();
          }
        }
        if (expires) await sleep(80);
        else if (!(await lease.release())) throw new Error("release() by the live owner returned false; it must delete the lease and return true.");
      }
      if (!tokens.every((token, i) => Number.isInteger(token) && token > 0 && (i === 0 || token > tokens[i - 1]!))) {
        throw new Error(withSeed(`Fencing tokens of successive holders were ${JSON.stringify(tokens)}; each must be a positive integer greater than every earlier one.`));
      }
      // Every lease is gone now; whatever acquireLease keeps (the counter) must not expire.
      const kept: string[] = [];
      // threadKeys: every key of a thread carries its id as the hash tag (one Redis Cluster slot per thread).
      const untagged = [...keysTouched(redis, from)].filter((key) => !key.includes(`{${threadId}}`) && !key.includes(`{${otherThread}}`));
      if (untagged.length > 0) throw new Error(`acquireLease and release wrote the key(s) ${JSON.stringify(untagged)}, which do not carry the thread id as a hash tag; use threadKeys(namespace, threadId), so a thread's lease and token counter are its own and share one Cluster slot.`);
      for (const key of keysTouched(redis, from)) {
        if (!(await redis.client.exists(key))) continue;
        const ttl = await redis.client.pttl(key);
        if (ttl >= 0) throw new Error(`After every lease was released or expired, the key ${JSON.stringify(key)} that acquireLease wrote still has an expiry (${ttl} ms): when the fencing-token counter expires, tokens start again at 1 and a stale holder's token looks new.`);
        kept.push(key);
      }
      if (kept.length === 0) throw new Error("After the leases ended, nothing acquireLease wrote is left in Redis: the fencing-token counter must outlive every lease, or tokens start again.");
    });
  },
);

grader.excellence(
  "lease: an acquirer paused between its commands past the TTL cannot end up with a newer token than the holder that replaced it",
  { hint: "SET NX PX and the INCR of the token must be one atomic step (a Lua script, or WATCH + MULTI/EXEC): as two commands, a holder paused between them gets its token after the next holder and outranks it.", section: "leases-and-fencing-tokens", weight: 2, timeout: 20_000 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const ttlMs = 60;
      for (let holdMs = 1_000 * check.slowness; ; holdMs *= 2) {
        const threadId = opaqueId();
        const clientA = await clientFor(redis, check.learner);
        const clientB = await clientFor(redis, check.learner);
        // The first command of A's acquire runs, then A stalls before its next one.
        const hold = holdNextReply(redis, holdMs);
        const acquiringA = api.acquireLease(clientA, threadId, ttlMs) as Promise<Lease | undefined>;
        const held = await hold.heldIn(acquiringA, "acquireLease");
        await sleep(ttlMs * 2);
        const holderB = (await api.acquireLease(clientB, threadId, 5_000)) as Lease | undefined;
        const commandsWhenBWasDone = redis.commands.length;
        // B is done: A's pause ends here.
        hold.release();
        const holderA = await acquiringA;
        // Valid only if A really was paused until B had its lease; on a very slow machine, hold longer.
        if (redis.commands.slice(held.index + 1, commandsWhenBWasDone).some((c) => c.connection === held.connection && !c.inScript)) {
          if (holdMs > 30_000) throw new Error("grader: could not pause the first acquirer long enough on this machine");
          continue;
        }
        if (!holderB) {
          throw new Error(withSeed(`A's lease (ttl ${ttlMs} ms) had expired while A was paused in acquireLease, but B could not acquire the thread: the lease must be free once its TTL passed.`));
        }
        if (holderA && holderA.token > holderB.token) {
          throw new Error(
            withSeed(
              `A was paused inside acquireLease for ${Math.round(holdMs)} ms, past its ${ttlMs} ms TTL; B acquired meanwhile with token ${holderB.token}, and A then came back with token ${holderA.token}: ` +
                "the paused holder outranks the live one, so the store would accept A's writes and refuse B's. Take the lease and the token in one atomic step.",
            ),
          );
        }
        // The live holder writes; the paused one (if it came back with a lease) must be refused.
        const store = await redisStore(redis)(api, check.learner);
        await store.put(threadId, { count: 1, writer: "B" }, 0, { fencingToken: holderB.token });
        if (holderA) {
          const refused = await store.put(threadId, { count: 2, writer: "A (stale)" }, 1, { fencingToken: holderA.token }).then(
            () => undefined,
            (error: unknown) => error,
          );
          if (!(refused instanceof api.StaleFencingTokenError)) {
            throw new Error(`After B wrote with token ${holderB.token}, paused holder A wrote with token ${holderA.token} and got ${refused === undefined ? "success" : describe(refused)}; it must be refused with StaleFencingTokenError.`);
          }
        }
        return;
      }
    });
  },
);

grader.excellence(
  "a paused holder whose lease expired cannot overwrite the newer holder's write: its older fencing token is refused (SQLite and Redis)",
  { hint: "Store the newest fencing token accepted per thread and, in the same atomic step as the version check, refuse a put whose token is lower with StaleFencingTokenError.", section: "leases-and-fencing-tokens", weight: 3 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const stores: Array<[string, Store]> = [
        ["SQLite", await sqliteStore(databaseFile(check))(api)],
        ["Redis", await redisStore(redis)(api, check.learner)],
      ];
      for (const [backend, store] of stores) {
        const threadId = opaqueId();
        const holderA = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 40)) as Lease | undefined;
        if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
        await store.put(threadId, { count: 1, writer: "A" }, 0, { fencingToken: holderA.token });
        await sleep(80); // A is paused (a GC pause, a slow model call) past its lease
        const holderB = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 5_000)) as Lease | undefined;
        if (!holderB) throw new Error("After A's lease expired, B could not acquire it.");
        await store.put(threadId, { count: 2, writer: "B" }, 1, { fencingToken: holderB.token });
        // A wakes up, re-reads (so its version is current) and writes with its old token.
        const seen = await store.get(threadId);
        const error = await thrownBy(
          () => store.put(threadId, { count: 99, writer: "A (stale)" }, seen?.version ?? 2, { fencingToken: holderA.token }),
          `${backend}: the store accepted a write with fencing token ${holderA.token} after it had accepted token ${holderB.token}; the paused holder clobbered the newer holder's state.`,
        );
        if (!(error instanceof api.StaleFencingTokenError)) throw new Error(`${backend}: a write with a superseded fencing token threw ${describe(error)}; it must throw StaleFencingTokenError.`);
        const stale = error as InstanceType<LockingApi["StaleFencingTokenError"]>;
        if (stale.fencingToken !== holderA.token || stale.newestToken !== holderB.token) {
          throw new Error(`${backend}: StaleFencingTokenError carried fencingToken ${String(stale.fencingToken)} and newestToken ${String(stale.newestToken)}; expected ${holderA.token} and ${holderB.token}.`);
        }
        const words = stale.message.split(/[^\w-]+/);
        if (stale.name !== "StaleFencingTokenError" || !stale.message.includes(threadId) || !words.includes(String(holderA.token)) || !words.includes(String(holderB.token))) {
          throw new Error(`${backend}: the StaleFencingTokenError was ${describe(stale)}; its name must be "StaleFencingTokenError" and its message must name the thread and both tokens (${holderA.token} refused, ${holderB.token} newest).`);
        }
        const after = await store.get(threadId);
        if (after?.state.writer !== "B") throw new Error(`${backend}: after the refused stale write the thread holds ${JSON.stringify(after?.state)}; B's write must survive.`);
        const third = await store.put(threadId, { count: 3, writer: "B" }, after.version, { fencingToken: holderB.token });
        // B's own token is the newest, not a stale one: with an old version that is a version conflict.
        const sameToken = await thrownBy(
          () => store.put(threadId, { count: 9, writer: "B (old version)" }, third - 1, { fencingToken: holderB.token }),
          `${backend}: a put with an old expectedVersion succeeded because it carried the newest fencing token; the version must still be compared.`,
        );
        if (!(sameToken instanceof api.VersionConflictError)) {
          throw new Error(`${backend}: a put with the newest fencing token (${holderB.token}, the one the store accepted last) and an old expectedVersion threw ${describe(sameToken)}; only a lower token is stale, so this is a VersionConflictError.`);
        }
        // A fenced put on a thread never written, with a version other than 0: a conflict with actualVersion 0.
        const fresh = await thrownBy(
          () => store.put(opaqueId(), { count: 1, writer: "B" }, 2, { fencingToken: holderB.token }),
          `${backend}: a fenced put with expectedVersion 2 on a thread never written succeeded; it must throw VersionConflictError.`,
        );
        if (!(fresh instanceof api.VersionConflictError) || (fresh as InstanceType<LockingApi["VersionConflictError"]>).actualVersion !== 0) {
          throw new Error(`${backend}: a fenced put with expectedVersion 2 on a thread never written threw ${describe(fresh)}${fresh instanceof api.VersionConflictError ? ` with actualVersion ${String(fresh.actualVersion)}` : ""}; expected VersionConflictError with actualVersion 0.`);
        }
      }
    });
  },
);

grader.excellence(
  "updateWithRetry passes the fencing token to every put, and retries only version conflicts: a stale-token refusal or a failing store surfaces after one attempt",
  { hint: "Pass { fencingToken } to each put. Retry VersionConflictError only: a StaleFencingTokenError means the lease is lost and a store error means the store is down, so rethrow both at once.", section: "bounded-retry-with-backoff-and-jitter", weight: 1 },
  async (api, check) => {
    const fixture = await check.fixture<Fixture>("writers");
    const token = 2 + Math.floor(seededRandom()() * 50);
    const { puts, tokens } = await retryAgainstConflicts(api, check, { maxAttempts: 3, baseDelayMs: 1, injectSleep: true, fencingToken: token });
    if (puts !== 3 || tokens.some((t) => t !== token)) {
      throw new Error(withSeed(`updateWithRetry with fencingToken ${token} called put with tokens ${JSON.stringify(tokens)}; every put must carry the caller's token, or a lost lease goes unnoticed.`));
    }
    for (const kind of ["stale", "connection"] as const) {
      const store = await fixture.failingStore(kind, api.StaleFencingTokenError as never);
      const error = await api
        .updateWithRetry(store as never, "t", () => ({ count: 1, writer: "me" }), { maxAttempts: 5, baseDelayMs: 1, sleep: async () => {}, fencingToken: 3 })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      const made = await store.puts();
      const what = kind === "stale" ? "StaleFencingTokenError" : "a connection error";
      if (made !== 1 || error === undefined) throw new Error(`updateWithRetry made ${made} puts when put threw ${what}; it must rethrow it after the first.`);
    }
  },
);

grader.excellence(
  "release and renew are owner-only: an expired holder cannot end or extend the new holder's lease",
  { hint: "Store a random owner id as the lease value; release and renew compare it and act in one atomic step (a Lua script, or WATCH/MULTI), never a plain DEL.", section: "releasing-and-renewing-a-lease", weight: 1 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const threadId = opaqueId();
      const acquire = async (ttl: number) => (await api.acquireLease(await clientFor(redis, check.learner), threadId, ttl)) as Lease | undefined;
      const holderA = await acquire(40);
      if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
      await sleep(80);
      // B's lease must outlive the rest of the check however slow the machine (it is released at the end).
      const holderB = await acquire(120_000);
      if (!holderB) throw new Error("After A's lease expired, B could not acquire it.");
      const renewed = await holderA.renew(5_000);
      const released = await holderA.release();
      const intruder = await acquire(5_000);
      if (intruder) throw new Error("After expired holder A called renew() and release(), a third caller acquired the lease: A deleted B's lease (a plain DEL). Compare the owner before deleting.");
      if (renewed || released) throw new Error(`Expired holder A's renew() returned ${renewed} and release() returned ${released}; both must return false once the lease belongs to B.`);
      if (!(await holderB.renew())) throw new Error("The live owner B could not renew its lease.");
      if (!(await holderB.release())) throw new Error("The live owner B could not release its lease.");
      if (!(await acquire(1_000))) throw new Error("After B released, the lease could not be acquired again.");
    });
  },
);

grader.excellence(
  "ResilientStore passes a version conflict or a stale fencing token through while Redis is healthy, and stays on the primary",
  { hint: "Only a failing store is an outage: rethrow VersionConflictError and StaleFencingTokenError (this unit's errors) unchanged, without switching to the fallback.", section: "degrading-when-redis-fails", weight: 2 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const modes: string[] = [];
      const resilient = await new api.ResilientStore<Counter>((await redisStore(redis)(api, check.learner)) as never, { probeIntervalMs: 60_000, onModeChange: (mode: string) => void modes.push(mode) });
      const otherInstance = await redisStore(redis)(api, check.learner);
      const threadId = opaqueId();
      const first = await resilient.put(threadId, { count: 1, writer: "us" }, 0, { fencingToken: 5 });
      if (first.degraded !== false || first.version !== 1) throw new Error(`A healthy put returned ${JSON.stringify(first)}; expected { version: 1, degraded: false }.`);
      const cases: Array<[string, () => Promise<unknown>, LockingApi["VersionConflictError"] | LockingApi["StaleFencingTokenError"]]> = [
        ["a put with a stale expectedVersion", () => resilient.put(threadId, { count: 9, writer: "stale version" }, 0, { fencingToken: 5 }), api.VersionConflictError],
        ["a put with a superseded fencing token", () => resilient.put(threadId, { count: 9, writer: "stale token" }, 1, { fencingToken: 4 }), api.StaleFencingTokenError],
      ];
      for (const [what, call, expected] of cases) {
        const outcome = await call().then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
        if (!("error" in outcome) || !(outcome.error instanceof expected)) {
          throw new Error(`While Redis was healthy, ${what} through ResilientStore ${"error" in outcome ? `threw ${describe(outcome.error)}` : `returned ${JSON.stringify(outcome.value)}`}; it must rethrow the primary's ${expected.name} unchanged.`);
        }
        const degraded = await check.learner.peer.get(resilient, "degraded");
        if (degraded !== false || modes.length > 0) throw new Error(`After ${what} was refused by a healthy Redis, ResilientStore switched to its fallback (degraded ${String(degraded)}, onModeChange calls ${JSON.stringify(modes)}); a refusal is an answer, not an outage.`);
      }
      // Nothing to write back and never degraded: reconcile() has nothing to announce.
      const report = await resilient.reconcile();
      if (report?.recovered !== true || (report.restored ?? []).length > 0 || (report.keptPrimary ?? []).length > 0 || modes.length > 0) {
        throw new Error(`reconcile() on a store that never left Redis returned ${JSON.stringify(report)} with onModeChange calls ${JSON.stringify(modes)}; expected recovered: true, nothing restored or kept, and no onModeChange call (there was no switch).`);
      }
      const next = await resilient.put(threadId, { count: 2, writer: "us" }, 1, { fencingToken: 5 });
      const seen = await otherInstance.get(threadId);
      if (next.degraded !== false || seen?.state.count !== 2) throw new Error(`After the refusals a valid put returned ${JSON.stringify(next)} and another instance sees ${JSON.stringify(seen)}; the write must go to Redis (degraded: false).`);
    });
  },
);

grader.excellence(
  "when Redis fails, writes continue in memory marked degraded; on recovery reconcile() writes newer fallback data back, keeps newer primary data, and reports both",
  { hint: "Catch store errors (not this unit's errors) in ResilientStore, write to the in-memory fallback with the same compare-and-set rules, return degraded: true, and in reconcile() restore a thread only if the primary version has not moved past the one the fallback started from; list restored and kept threads in the report.", section: "degrading-when-redis-fails", weight: 2, timeout: 20_000 },
  async (api, check) => {
    await withRedis(async (redis) => {
      const resilient = await new api.ResilientStore<Counter>((await redisStore(redis, undefined, SURVIVES_OUTAGE)(api, check.learner)) as never, { probeIntervalMs: 60_000 });
      const other = await check.spawn();
      const otherInstance = await redisStore(redis, undefined, SURVIVES_OUTAGE)(other.api, other.learner);
      const [ours, shared, fresh] = [opaqueId(), opaqueId(), opaqueId()];

      const healthy = await resilient.put(ours, { count: 1, writer: "us" }, 0);
      await resilient.put(shared, { count: 1, writer: "us" }, 0);
      if (healthy.degraded !== false || healthy.version !== 1) throw new Error(`A healthy put returned ${JSON.stringify(healthy)}; expected { version: 1, degraded: false }.`);

      const connectionsBefore = redis.liveConnections;
      redis.setOutage(true);
      const read = await resilient.get(ours).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      const before = "value" in read ? read.value : undefined;
      if (before?.degraded !== true || before.state.count !== 1) {
        throw new Error(`While Redis was down, get() returned ${"error" in read ? describe(read.error) : JSON.stringify(before)}; it must answer from memory with the last known state and degraded: true.`);
      }
      const writes = [
        await resilient.put(ours, { count: 2, writer: "us, degraded" }, before.version).catch((error: unknown) => error),
        await resilient.put(shared, { count: 2, writer: "us, degraded" }, 1).catch((error: unknown) => error),
        await resilient.put(fresh, { count: 1, writer: "us, degraded" }, 0).catch((error: unknown) => error),
      ];
      const failed = writes.find((write) => write instanceof Error || (write as { degraded?: unknown }).degraded !== true);
      if (failed !== undefined) throw new Error(`A put while Redis was down returned ${failed instanceof Error ? describe(failed) : JSON.stringify(failed)}; it must succeed in memory and say degraded: true.`);
      const conflict = await resilient.put(ours, { count: 9, writer: "stale" }, 1).catch((error: unknown) => error);
      if (!(conflict instanceof api.VersionConflictError)) throw new Error(`While degraded, a put with a stale expectedVersion returned ${conflict instanceof Error ? describe(conflict) : JSON.stringify(conflict)}; the fallback must keep compare-and-set and throw VersionConflictError.`);

      redis.setOutage(false);
      await reconnected(redis, connectionsBefore, 5_000 * check.slowness);
      // Before this instance reconciles, another one (which reached Redis first) moves `shared` on.
      await otherInstance.put(shared, { count: 5, writer: "other instance" }, 1);
      const report = await resilient.reconcile();
      const primary = Object.fromEntries(await Promise.all([ours, shared, fresh].map(async (id) => [id, (await otherInstance.get(id))?.state] as const)));
      if (primary[ours]?.writer !== "us, degraded") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[ours])} for a thread only this instance wrote during the outage; reconcile() must write the newer fallback state back.`);
      if (primary[fresh]?.writer !== "us, degraded") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[fresh])} for a thread created during the outage; reconcile() must write it back.`);
      if (primary[shared]?.writer !== "other instance") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[shared])} for a thread another instance updated during the outage; reconcile() must not overwrite newer primary data.`);
      const restored = [...(report?.restored ?? [])].sort();
      const kept = (report?.keptPrimary ?? []).map((k) => k.threadId);
      const keptShared = report?.keptPrimary?.find((k) => k.threadId === shared);
      if (report?.recovered !== true || restored.join() !== [ours, fresh].sort().join() || kept.join() !== shared || keptShared?.primaryVersion !== 2 || (keptShared.fallbackState as Counter | undefined)?.writer !== "us, degraded") {
        throw new Error(
          `reconcile() reported ${JSON.stringify(report)}; expected recovered: true, restored exactly the two threads written back, and keptPrimary exactly the one another instance moved on (primaryVersion 2, with the fallback state that was not written), so an operator can see what was kept and what was dropped.`,
        );
      }
      const latest = await resilient.get(ours);
      const next = latest && (await resilient.put(ours, { count: latest.state.count + 1, writer: "us" }, latest.version));
      if (next?.degraded !== false) throw new Error(`After reconcile() a put returned ${JSON.stringify(next)}; the store must be back on the primary (degraded: false).`);
    });
  },
);

grader.excellence(
  "while Redis is down the fallback keeps fencing (also on a thread first written during the outage), answers from what this instance read or wrote, and reconcile() says recovered: false; degraded and onModeChange follow each switch once",
  {
    hint: "Remember every state read from or written to the primary (with the newest token seen); in the fallback refuse a token lower than the newest with StaleFencingTokenError; get() returns the fallback's own writes; a reconcile() that cannot reach the primary reports recovered: false and stays degraded; call onModeChange(\"degraded\") and onModeChange(\"primary\") once per switch.",
    section: "degrading-when-redis-fails",
    weight: 1,
    timeout: 20_000,
  },
  async (api, check) => {
    await withRedis(async (redis) => {
      const modes: string[] = [];
      const resilient = await new api.ResilientStore<Counter>((await redisStore(redis, undefined, SURVIVES_OUTAGE)(api, check.learner)) as never, { probeIntervalMs: 60_000, onModeChange: (mode: string) => void modes.push(mode) });
      const otherInstance = await redisStore(redis, undefined, SURVIVES_OUTAGE)(api, check.learner);
      const [fenced, readOnly, unwritten] = [opaqueId(), opaqueId(), opaqueId()];
      const isDegraded = () => check.learner.peer.get(resilient, "degraded");

      const missing = await resilient.get(unwritten);
      if (missing !== undefined) throw new Error(`While Redis was healthy, get() of a thread never written returned ${JSON.stringify(missing)}; it must return undefined.`);
      await resilient.put(fenced, { count: 1, writer: "holder 5" }, 0, { fencingToken: 5 });
      await otherInstance.put(readOnly, { count: 3, writer: "other instance" }, 0);
      const seen = await resilient.get(readOnly);
      if (seen?.degraded !== false || seen.state.writer !== "other instance") throw new Error(`While Redis was healthy, get() of a thread another instance wrote returned ${JSON.stringify(seen)}; expected its state with degraded: false.`);

      const connectionsBefore = redis.liveConnections;
      redis.setOutage(true);
      const outcome = <T>(promise: Promise<T>) =>
        promise.then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
      const shown = (o: { value: unknown } | { error: unknown }) => ("error" in o ? describe(o.error) : JSON.stringify(o.value));
      // The first call that fails: a read of a thread this instance only read, never wrote.
      const read = await outcome(resilient.get(readOnly));
      if (!("value" in read) || read.value?.degraded !== true || read.value.state.writer !== "other instance" || read.value.version !== 1) {
        throw new Error(`While Redis was down, get() of a thread this instance had read (not written) returned ${shown(read)}; it must answer from memory with the state it saw (version 1) and degraded: true.`);
      }
      if ((await isDegraded()) !== true || modes.join() !== "degraded") throw new Error(`After the first call that failed, degraded is ${String(await isDegraded())} and onModeChange was called with ${JSON.stringify(modes)}; expected degraded true and one call, onModeChange("degraded").`);
      // Nothing written yet: the only way to know whether Redis is back is to ask it.
      const early = await outcome(resilient.reconcile());
      if (!("value" in early) || early.value?.recovered !== false || (await isDegraded()) !== true) {
        throw new Error(`reconcile() while Redis was still down (and nothing written in memory yet) returned ${shown(early)} and left degraded ${String(await isDegraded())}; it must report recovered: false and stay degraded.`);
      }

      // Fencing in the fallback: a token below the newest accepted in memory is refused.
      const steps: Array<[string, () => Promise<unknown>, "stale" | number]> = [
        ["a put with token 6", () => resilient.put(fenced, { count: 2, writer: "holder 6" }, 1, { fencingToken: 6 }), 2],
        ["a put with token 5 after token 6 was accepted in memory", () => resilient.put(fenced, { count: 9, writer: "holder 5 again" }, 2, { fencingToken: 5 }), "stale"],
        ["a second put with token 6", () => resilient.put(fenced, { count: 3, writer: "holder 6" }, 2, { fencingToken: 6 }), 3],
        ["a put with token 7 on a thread first written during the outage", () => resilient.put(unwritten, { count: 1, writer: "holder 7" }, 0, { fencingToken: 7 }), 1],
        ["a put with token 3 on that thread after token 7", () => resilient.put(unwritten, { count: 9, writer: "holder 3" }, 1, { fencingToken: 3 }), "stale"],
      ];
      for (const [what, call, expected] of steps) {
        const result = await outcome(call());
        if (expected === "stale") {
          if (!("error" in result) || !(result.error instanceof api.StaleFencingTokenError)) throw new Error(`While Redis was down, ${what} returned ${shown(result)}; the fallback keeps the fencing rules and must throw StaleFencingTokenError.`);
        } else {
          const put = "value" in result ? (result.value as { version?: number; degraded?: boolean }) : undefined;
          if (put?.version !== expected || put.degraded !== true) throw new Error(`While Redis was down, ${what} returned ${shown(result)}; expected { version: ${expected}, degraded: true }.`);
        }
      }
      const own = await outcome(resilient.get(fenced));
      if (!("value" in own) || own.value?.state.count !== 3 || own.value.version !== 3 || own.value.degraded !== true) {
        throw new Error(`While Redis was down, get() after this instance's own writes returned ${shown(own)}; it must return the newest state written in memory (count 3, version 3, degraded: true).`);
      }
      const stillDown = await outcome(resilient.reconcile());
      if (!("value" in stillDown) || stillDown.value?.recovered !== false || (await isDegraded()) !== true || modes.join() !== "degraded") {
        throw new Error(`reconcile() while Redis was still down returned ${shown(stillDown)}, degraded ${String(await isDegraded())}, onModeChange calls ${JSON.stringify(modes)}; it must report recovered: false, stay degraded, and not announce a switch.`);
      }

      redis.setOutage(false);
      await reconnected(redis, connectionsBefore, 5_000 * check.slowness);
      const report = await resilient.reconcile();
      const primary = await otherInstance.get(fenced);
      if (report?.recovered !== true || !report.restored.includes(fenced) || primary?.state.writer !== "holder 6" || primary.state.count !== 3) {
        throw new Error(`Once Redis was back, reconcile() reported ${JSON.stringify(report)} and Redis holds ${JSON.stringify(primary)}; the thread written only in memory (count 3, by holder 6) must be restored.`);
      }
      if ((await isDegraded()) !== false || modes.join() !== "degraded,primary") throw new Error(`After a successful reconcile(), degraded is ${String(await isDegraded())} and onModeChange was called with ${JSON.stringify(modes)}; expected degraded false and exactly ["degraded", "primary"].`);
    });
  },
);

grader.excellence(
  "reconcile() keeps a thread another instance wrote between its read and its write-back (reported with the primary's version); a write-back cut off by the connection stays for the next reconcile(); maxRemembered bounds what the store remembers",
  {
    hint: "A write-back is a compare-and-set: when it throws VersionConflictError, another instance got there first; keep the primary's data and list the thread in keptPrimary with the version the conflict reports. Any other error is an outage: leave the thread in the fallback and report recovered: false. Keep at most maxRemembered threads' last states, dropping the least recently used.",
    section: "degrading-when-redis-fails",
    weight: 1,
  },
  async (api, check) => {
    const fixture = await check.fixture<Fixture>("writers");
    const primary = await fixture.flakyPrimary(api.VersionConflictError as never);
    const resilient = await new api.ResilientStore<Counter>(primary as never, { probeIntervalMs: 60_000, maxRemembered: 2 });
    const [raced, second, third] = [opaqueId(), opaqueId(), opaqueId()];
    for (const id of [raced, second, third]) await resilient.put(id, { count: 1, writer: "us" }, 0);
    // Three threads seen, two remembered: the least recently used (`raced`) is forgotten.
    await primary.setDown(true);
    const forgotten = await resilient.get(raced);
    const remembered = await Promise.all([second, third].map((id) => resilient.get(id)));
    if (forgotten !== undefined || remembered.some((r) => r?.degraded !== true || r.state.count !== 1)) {
      throw new Error(`With maxRemembered 2, after writing three threads, the outage reads returned ${JSON.stringify(forgotten)} for the first and ${JSON.stringify(remembered)} for the other two; the store must remember only the 2 most recently used (the first is forgotten: undefined) and answer those from memory.`);
    }
    const degraded = await resilient.put(second, { count: 2, writer: "us, degraded" }, 1);
    if (degraded?.degraded !== true) throw new Error(`A put during the outage returned ${JSON.stringify(degraded)}; expected degraded: true.`);
    await primary.setDown(false);
    // Another instance writes `second` between reconcile's read and its write-back.
    await primary.raceNextPut();
    const report = await resilient.reconcile();
    const kept = report?.keptPrimary?.find((k) => k.threadId === second);
    const stored = await primary.peek(second);
    if (report?.recovered !== true || (report.restored ?? []).includes(second) || kept?.primaryVersion !== 2 || (kept.fallbackState as Counter | undefined)?.writer !== "us, degraded" || !stored?.encoded.includes("other instance")) {
      throw new Error(
        `Another instance wrote the thread (now version 2) after reconcile() read version 1 and before its write-back; reconcile() reported ${JSON.stringify(report)} and the primary holds ${JSON.stringify(stored)}. ` +
          "Expected recovered: true, the thread in keptPrimary with primaryVersion 2 and the fallback's state, not in restored, and the other instance's write kept.",
      );
    }

    // A write-back that fails for want of a connection is not an answer: the thread stays in the
    // fallback, the report says recovered: false, and the next reconcile() writes it back.
    await primary.setDown(true);
    const pending = await resilient.put(third, { count: 2, writer: "us, second outage" }, 1);
    if (pending?.degraded !== true) throw new Error(`A put during a second outage returned ${JSON.stringify(pending)}; expected degraded: true.`);
    await primary.setDown(false);
    await primary.failNextPut();
    const cut = await resilient.reconcile();
    if (cut?.recovered !== false || (cut.restored ?? []).includes(third) || (cut.keptPrimary ?? []).some((k) => k.threadId === third)) {
      throw new Error(`The connection dropped under reconcile()'s write-back; it reported ${JSON.stringify(cut)}. Expected recovered: false, with the thread neither restored nor kept: it stays in the fallback for the next attempt.`);
    }
    const retried = await resilient.reconcile();
    const written = await primary.peek(third);
    if (retried?.recovered !== true || !(retried.restored ?? []).includes(third) || !written?.encoded.includes("us, second outage")) {
      throw new Error(`After a write-back failed for want of a connection, the next reconcile() reported ${JSON.stringify(retried)} and the primary holds ${JSON.stringify(written)}; the thread written in memory must still be written back (restored) then.`);
    }
  },
);

grader.excellence(
  "4 OS processes x 25 updateWithRetry increments with real sleeps on one SQLite file end at exactly 100",
  { hint: "Keep the version check inside the write statement and the transaction (BEGIN IMMEDIATE), open the file in WAL mode with a busy timeout, so writers in other processes queue instead of failing; updateWithRetry re-reads and backs off on each conflict.", section: "several-processes-on-one-sqlite-file", weight: 2, timeout: 30_000 },
  async (_api, check) => {
    const file = databaseFile(check);
    const threadId = opaqueId();
    // Built first, alone: the writers then open a file whose schema exists (see incrementAcrossProcesses).
    const reader = await check.spawn();
    const readerStore = await sqliteStore(file)(reader.api);
    const results = await inProcesses(check, { processes: 4, writers: 4 }, async ({ api, learner, start }) => {
      const store = await sqliteStore(file)(api);
      await start();
      let done = 0;
      for (let i = 0; i < 25; i++) {
        await api.updateWithRetry(store as never, threadId, (current: Counter | undefined) => ({ count: (current?.count ?? 0) + 1, writer: String(learner.child.pid) }), { maxAttempts: 200, baseDelayMs: 1, maxDelayMs: 5 });
        done++;
      }
      return done;
    });
    const final = await readerStore.get(threadId);
    if (results.some((done) => done !== 25) || final?.state.count !== 100) {
      throw new Error(`4 processes x 25 updateWithRetry increments ended at ${String(final?.state.count)}, not 100: writes from different processes overwrote each other.`);
    }
  },
);

if (hiddenChecksEnabled()) (await import("./locking/hidden.ts")).registerHiddenChecks(grader);
