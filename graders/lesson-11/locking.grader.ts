/**
 * Grader of lesson-11 / locking: cross-instance consistency. Core checks: compare-and-set on
 * SQLite and Redis, no lost update under 20 concurrent writers, bounded retry with backoff and
 * jitter, clear errors for bad input. Excellence: leases with fencing tokens, owner-only release,
 * degradation to memory with reconciliation, and several OS processes on one SQLite file.
 */
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import {
  describe,
  openRedis,
  runIncrementers,
  runWriterProcesses,
  sleep,
  tempDatabase,
  thrownBy,
  threadIdFor,
  withinTime,
  withJitter,
  withOutage,
  type Counter,
  type LockingApi,
  type Store,
} from "./locking/fixtures.ts";

const grader = defineGrader<LockingApi>({
  lesson: "lesson-11",
  unit: "locking",
  exports: ["VersionConflictError", "StaleFencingTokenError", "LockingInputError", "SqliteVersionedStore", "RedisVersionedStore", "updateWithRetry", "acquireLease", "ResilientStore"],
});

/** Checks one compare-and-set story on two instances of a backend (two connections or clients). */
async function checkCompareAndSet(api: LockingApi, backend: string, open: () => Promise<{ first: Store; second: Store; threadId: () => string; close(): Promise<void> }>): Promise<void> {
  const stores = await open();
  try {
    const random = seededRandom();
    for (let run = 0; run < 8; run++) {
      const writes = 1 + Math.floor(random() * 4);
      const staleGuess = Math.floor(random() * 8);
      const threadId = stores.threadId();
      const stale = staleGuess === writes ? writes + 1 : staleGuess; // any version but the stored one
      for (let version = 0; version < writes; version++) {
        const returned = await stores.first.put(threadId, { count: version + 1, writer: "first" }, version);
        if (returned !== version + 1) throw new Error(withSeed(`${backend}: put with expectedVersion ${version} returned ${String(returned)}; it must return the new version, ${version + 1}.`));
      }
      const seen = await stores.second.get(threadId);
      if (seen?.version !== writes || seen.state.count !== writes) {
        throw new Error(withSeed(`${backend}: after ${writes} writes through one instance, get() on another returned ${JSON.stringify(seen)}; expected version ${writes} with count ${writes}.`));
      }
      const error = await thrownBy(
        () => stores.second.put(threadId, { count: -1, writer: "stale" }, stale),
        withSeed(`${backend}: put with expectedVersion ${stale} succeeded although the stored version is ${writes}; a compare-and-set must refuse it.`),
      );
      if (!(error instanceof api.VersionConflictError)) {
        throw new Error(withSeed(`${backend}: a put with a stale expectedVersion must throw your VersionConflictError; it threw ${describe(error)}.`));
      }
      if (error.expectedVersion !== stale || error.actualVersion !== writes) {
        throw new Error(withSeed(`${backend}: the VersionConflictError carried expectedVersion ${String(error.expectedVersion)} and actualVersion ${String(error.actualVersion)}; expected ${stale} and ${writes}.`));
      }
      const after = await stores.first.get(threadId);
      if (after?.version !== writes || after.state.writer !== "first") {
        throw new Error(withSeed(`${backend}: the refused write changed the thread (now ${JSON.stringify(after)}); a conflicting put must leave it untouched.`));
      }
    }
  } finally {
    await stores.close();
  }
}

grader.core(
  "SQLite: put is a compare-and-set; a stale expectedVersion throws VersionConflictError with both versions",
  { hint: "Make put one conditional write inside a transaction (UPDATE ... WHERE version = expected; INSERT for version 0) and throw VersionConflictError(threadId, expected, actual) when no row changed.", section: "compare-and-set-on-sqlite", weight: 2 },
  async (api) => {
    await checkCompareAndSet(api, "SQLite", async () => {
      const db = tempDatabase();
      const first = new api.SqliteVersionedStore<Counter>(db.file);
      const second = new api.SqliteVersionedStore<Counter>(db.file);
      return { first, second, threadId: () => threadIdFor(undefined, "cas"), close: async () => (first.close(), second.close(), db.remove()) };
    });
  },
);

grader.core(
  "Redis: put is a compare-and-set; a stale expectedVersion throws VersionConflictError with both versions",
  { hint: "Check the version and write the state in one Lua script (EVAL) or under WATCH/MULTI/EXEC, and throw VersionConflictError(threadId, expected, actual) when the check fails.", section: "compare-and-set-on-redis", weight: 2 },
  async (api) => {
    await checkCompareAndSet(api, "Redis", async () => {
      const redis = await openRedis();
      return {
        first: new api.RedisVersionedStore<Counter>(redis.client),
        second: new api.RedisVersionedStore<Counter>(redis.newClient()),
        threadId: () => threadIdFor(redis, "cas"),
        close: () => redis.close(),
      };
    });
  },
);

function assertNoLostUpdate(backend: string, outcome: Awaited<ReturnType<typeof runIncrementers>>, expected: number): void {
  if (outcome.unexpected.length > 0) {
    throw new Error(withSeed(`${backend}: a writer's put failed with something other than VersionConflictError: ${outcome.unexpected[0]}`));
  }
  if (outcome.final !== expected) {
    throw new Error(
      withSeed(
        `${backend}: 20 writers x 10 read-modify-write increments ended at ${String(outcome.final)}, not ${expected}, with ${outcome.conflicts} conflicts reported: ` +
          `${expected - (outcome.final ?? 0)} updates were lost. A write based on a stale read must be refused, not applied.`,
      ),
    );
  }
}

grader.core(
  "SQLite: 20 concurrent writers x 10 increments over several connections to one file end at exactly 200",
  { hint: "Do not read the version and then write unconditionally: the version check must be part of the write itself (a conditional UPDATE in a transaction).", section: "compare-and-set-on-sqlite", weight: 3, timeout: 15_000 },
  async (api) => {
    const db = tempDatabase();
    const connections = Array.from({ length: 5 }, () => new api.SqliteVersionedStore<Counter>(db.file));
    try {
      const threadId = threadIdFor(undefined, "increments");
      const outcome = await withinTime(runIncrementers(api, (writer) => connections[writer % connections.length]!, connections[0]!, threadId, 20, 10), 12_000, "SQLite: 200 increments");
      assertNoLostUpdate("SQLite", outcome, 200);
    } finally {
      connections.forEach((store) => store.close());
      db.remove();
    }
  },
);

grader.core(
  "Redis: 20 concurrent writers on 20 clients x 10 increments end at exactly 200",
  { hint: "Check the version and write state and version together in one atomic step (a Lua script, or WATCH + MULTI/EXEC on the writer's own connection); a separate GET then SET loses updates.", section: "compare-and-set-on-redis", weight: 3, timeout: 20_000 },
  async (api) => {
    const redis = await openRedis();
    try {
      const random = seededRandom();
      const stores = Array.from({ length: 20 }, () => new api.RedisVersionedStore<Counter>(withJitter(redis.newClient(), random)));
      const threadId = threadIdFor(redis, "increments");
      const outcome = await withinTime(runIncrementers(api, (writer) => stores[writer]!, new api.RedisVersionedStore<Counter>(redis.client), threadId, 20, 10), 18_000, "Redis: 200 increments");
      assertNoLostUpdate("Redis", outcome, 200);
    } finally {
      await redis.close();
    }
  },
);

grader.core(
  "updateWithRetry: concurrent callers all land, each change applied to freshly read state",
  { hint: "On VersionConflictError, re-read the thread and call the update function again with the fresh state before the next put.", section: "bounded-retry-with-backoff-and-jitter", weight: 2 },
  async (api) => {
    const db = tempDatabase();
    const stores = Array.from({ length: 4 }, () => new api.SqliteVersionedStore<Counter>(db.file));
    try {
      const threadId = threadIdFor(undefined, "retry");
      const callers = 8;
      const increments = 5;
      let calls = 0;
      const results = await withinTime(
        Promise.all(
          Array.from({ length: callers }, async (_, caller) => {
            const runs = [];
            for (let i = 0; i < increments; i++) {
              runs.push(
                await api.updateWithRetry(stores[caller % stores.length]!, threadId, (current) => (calls++, { count: (current?.count ?? 0) + 1, writer: `c${caller}` }), { maxAttempts: 60, baseDelayMs: 1, maxDelayMs: 8 }),
              );
            }
            return runs;
          }),
        ),
        8_000,
        "updateWithRetry with 8 callers",
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
    } finally {
      stores.forEach((store) => store.close());
      db.remove();
    }
  },
);

/**
 * Runs updateWithRetry against a store on which every put loses the race. After 50 puts the
 * store stops answering (get() never settles), which parks an unbounded retry loop instead of
 * letting it spin for ever, and the run reports "unbounded".
 */
async function retryAgainstConflicts(api: LockingApi, options: { maxAttempts: number; baseDelayMs: number; maxDelayMs?: number }) {
  const cap = 50;
  let puts = 0;
  const delays: number[] = [];
  let tripped!: () => void;
  const watchdog = new Promise<"unbounded">((resolve) => (tripped = () => resolve("unbounded")));
  const store: Store = {
    get: async () => (puts >= cap ? new Promise<never>(() => {}) : { state: { count: puts, writer: "other" }, version: 10 + puts }),
    put: async (threadId, _state, expectedVersion) => {
      if (++puts >= cap) tripped();
      throw new api.VersionConflictError(threadId, expectedVersion, expectedVersion + 1);
    },
  };
  const run = api
    .updateWithRetry(store, "always-conflicting", (current) => ({ count: (current?.count ?? 0) + 1, writer: "me" }), { ...options, sleep: async (ms: number) => void delays.push(ms) })
    .then(() => "resolved" as const, (error: unknown) => ({ error }));
  const outcome = await withinTime(Promise.race([run, watchdog]), 5_000, "updateWithRetry against an always-conflicting store");
  return { outcome, puts, delays };
}

grader.core(
  "retries are bounded: an always-conflicting store gets exactly maxAttempts puts, then VersionConflictError surfaces",
  { hint: "Count attempts and stop at maxAttempts, rethrowing the last VersionConflictError; never loop until success.", section: "bounded-retry-with-backoff-and-jitter", weight: 2 },
  async (api) => {
    const maxAttempts = 2 + Math.floor(seededRandom()() * 5);
    const { outcome, puts } = await retryAgainstConflicts(api, { maxAttempts, baseDelayMs: 1 });
    if (outcome === "unbounded") throw new Error(withSeed(`updateWithRetry with maxAttempts ${maxAttempts} kept retrying past 50 puts; it must give up after ${maxAttempts}.`));
    if (outcome === "resolved") throw new Error("updateWithRetry resolved although every put conflicted; it must throw the VersionConflictError.");
    if (!(outcome.error instanceof api.VersionConflictError)) throw new Error(`After exhausting its attempts updateWithRetry threw ${describe(outcome.error)}; it must rethrow the VersionConflictError.`);
    if (puts !== maxAttempts) throw new Error(withSeed(`updateWithRetry with maxAttempts ${maxAttempts} made ${puts} puts; it must make exactly ${maxAttempts}.`));
  },
);

grader.core(
  "retries back off exponentially with random jitter between attempts",
  { hint: "Before attempt n+1 wait options.sleep(random() * min(maxDelayMs, baseDelayMs * 2 ** (n - 1))): the cap doubles and the randomness spreads colliding writers.", section: "bounded-retry-with-backoff-and-jitter", weight: 2 },
  async (api) => {
    const maxAttempts = 6;
    const baseDelayMs = 8;
    const runs: number[][] = [];
    for (let run = 0; run < 20; run++) {
      const { outcome, delays } = await retryAgainstConflicts(api, { maxAttempts, baseDelayMs, maxDelayMs: 10_000 });
      if (outcome === "unbounded") throw new Error(`updateWithRetry with maxAttempts ${maxAttempts} kept retrying past 50 puts, so its backoff cannot be judged; bound the retries first.`);
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

grader.core(
  "bad input (empty thread id, negative or fractional version, zero maxAttempts, zero TTL) throws LockingInputError",
  { hint: "Validate arguments at the boundary (zod) and throw LockingInputError with a message saying what was wrong and an example of a valid value.", section: "versions-and-compare-and-set", weight: 1 },
  async (api) => {
    const db = tempDatabase();
    const store = new api.SqliteVersionedStore<Counter>(db.file);
    const redis = await openRedis();
    try {
      const cases: Array<[string, () => Promise<unknown>]> = [
        ["put with an empty thread id", () => store.put("", { count: 1, writer: "x" }, 0)],
        ["put with expectedVersion -1", () => store.put("t", { count: 1, writer: "x" }, -1)],
        ["put with expectedVersion 1.5", () => store.put("t", { count: 1, writer: "x" }, 1.5)],
        ["put with fencingToken 0", () => store.put("t", { count: 1, writer: "x" }, 0, { fencingToken: 0 })],
        ["updateWithRetry with maxAttempts 0", () => api.updateWithRetry(store, "t", () => ({ count: 1, writer: "x" }), { maxAttempts: 0, baseDelayMs: 1 })],
        ["acquireLease with ttlMs 0", () => api.acquireLease(redis.client, threadIdFor(redis, "bad"), 0)],
      ];
      for (const [what, call] of cases) {
        const error = await thrownBy(call, `${what} was accepted; it must throw LockingInputError.`);
        if (!(error instanceof api.LockingInputError)) throw new Error(`${what} threw ${describe(error)}; it must throw your LockingInputError.`);
        if (error.message.length < 20) throw new Error(`${what} threw LockingInputError("${error.message}"); say what was wrong and what a valid value looks like.`);
      }
    } finally {
      store.close();
      db.remove();
      await redis.close();
    }
  },
);

grader.excellence(
  "lease: one holder at a time (SET NX PX), and every grant's fencing token is greater than all before it",
  { hint: "Acquire with SET lease owner NX PX ttl and, in the same Lua script, INCR a per-thread counter that never expires; return that number as the token.", section: "leases-and-fencing-tokens", weight: 2 },
  async (api) => {
    const redis = await openRedis();
    try {
      const threadId = threadIdFor(redis, "lease");
      const tokens: number[] = [];
      const holders = 3 + Math.floor(seededRandom()() * 3);
      for (let holder = 0; holder < holders; holder++) {
        const client = holder % 2 === 0 ? redis.client : redis.newClient();
        const expires = holder % 2 === 1;
        const lease = await api.acquireLease(client, threadId, expires ? 40 : 5_000);
        if (!lease) throw new Error(withSeed(`Holder ${holder + 1} could not acquire a free lease (acquireLease returned ${String(lease)}).`));
        tokens.push(lease.token);
        const rival = await api.acquireLease(redis.newClient(), threadId, 5_000);
        if (rival) throw new Error(withSeed(`A second caller acquired the lease while holder ${holder + 1} held it; SET ... NX must refuse it.`));
        if (expires) await sleep(70);
        else if (!(await lease.release())) throw new Error("release() by the live owner returned false; it must delete the lease and return true.");
      }
      if (!tokens.every((token, i) => Number.isInteger(token) && (i === 0 || token > tokens[i - 1]!))) {
        throw new Error(withSeed(`Fencing tokens of successive holders were ${JSON.stringify(tokens)}; each must be an integer greater than every earlier one.`));
      }
    } finally {
      await redis.close();
    }
  },
);

grader.excellence(
  "a paused holder whose lease expired cannot overwrite the newer holder's write: its older fencing token is refused (SQLite and Redis)",
  { hint: "Store the newest fencing token accepted per thread and, in the same atomic step as the version check, refuse a put whose token is lower with StaleFencingTokenError.", section: "leases-and-fencing-tokens", weight: 3 },
  async (api) => {
    const redis = await openRedis();
    const db = tempDatabase();
    const sqlite = new api.SqliteVersionedStore<Counter>(db.file);
    try {
      for (const [backend, store] of [["SQLite", sqlite], ["Redis", new api.RedisVersionedStore<Counter>(redis.client)]] as const) {
        const threadId = threadIdFor(redis, "fencing");
        const holderA = await api.acquireLease(redis.client, threadId, 40);
        if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
        await store.put(threadId, { count: 1, writer: "A" }, 0, { fencingToken: holderA.token });
        await sleep(70); // A is paused (a GC pause, a slow model call) past its lease
        const holderB = await api.acquireLease(redis.newClient(), threadId, 5_000);
        if (!holderB) throw new Error("After A's lease expired, B could not acquire it.");
        await store.put(threadId, { count: 2, writer: "B" }, 1, { fencingToken: holderB.token });
        // A wakes up, re-reads (so its version is current) and writes with its old token.
        const seen = await store.get(threadId);
        const error = await thrownBy(
          () => store.put(threadId, { count: 99, writer: "A (stale)" }, seen?.version ?? 2, { fencingToken: holderA.token }),
          `${backend}: the store accepted a write with fencing token ${holderA.token} after it had accepted token ${holderB.token}; the paused holder clobbered the newer holder's state.`,
        );
        if (!(error instanceof api.StaleFencingTokenError)) throw new Error(`${backend}: a write with a superseded fencing token threw ${describe(error)}; it must throw StaleFencingTokenError.`);
        if (error.fencingToken !== holderA.token || error.newestToken !== holderB.token) {
          throw new Error(`${backend}: StaleFencingTokenError carried fencingToken ${String(error.fencingToken)} and newestToken ${String(error.newestToken)}; expected ${holderA.token} and ${holderB.token}.`);
        }
        const after = await store.get(threadId);
        if (after?.state.writer !== "B") throw new Error(`${backend}: after the refused stale write the thread holds ${JSON.stringify(after?.state)}; B's write must survive.`);
        await store.put(threadId, { count: 3, writer: "B" }, after.version, { fencingToken: holderB.token });
      }
    } finally {
      sqlite.close();
      db.remove();
      await redis.close();
    }
  },
);

grader.excellence(
  "only version conflicts are retried: a stale-token refusal or a failing store surfaces after one attempt",
  { hint: "Retry VersionConflictError only. A StaleFencingTokenError means the lease is lost and a store error means the store is down: rethrow both at once.", section: "bounded-retry-with-backoff-and-jitter", weight: 1 },
  async (api) => {
    const failures: Array<[string, () => Error]> = [
      ["StaleFencingTokenError", () => new api.StaleFencingTokenError("t", 3, 4)],
      ["a connection error", () => new Error("Connection is closed.")],
    ];
    for (const [what, makeError] of failures) {
      let puts = 0;
      const store: Store = { get: async () => undefined, put: async () => (puts++, Promise.reject(makeError())) };
      const error = await withinTime(
        api.updateWithRetry(store, "t", () => ({ count: 1, writer: "me" }), { maxAttempts: 5, baseDelayMs: 1, sleep: async () => {}, fencingToken: 3 }).then(() => undefined, (e: unknown) => e),
        3_000,
        "updateWithRetry against a failing store",
      );
      if (puts !== 1 || error === undefined) throw new Error(`updateWithRetry made ${puts} puts when put threw ${what}; it must rethrow it after the first.`);
    }
  },
);

grader.excellence(
  "release and renew are owner-only: an expired holder cannot end or extend the new holder's lease",
  { hint: "Store a random owner id as the lease value; release and renew run a Lua script that compares it before DEL / PEXPIRE, never a plain DEL.", section: "releasing-and-renewing-a-lease", weight: 2 },
  async (api) => {
    const redis = await openRedis();
    try {
      const threadId = threadIdFor(redis, "owner");
      const holderA = await api.acquireLease(redis.client, threadId, 40);
      if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
      await sleep(70);
      const holderB = await api.acquireLease(redis.newClient(), threadId, 5_000);
      if (!holderB) throw new Error("After A's lease expired, B could not acquire it.");
      const renewed = await holderA.renew(5_000);
      const released = await holderA.release();
      const intruder = await api.acquireLease(redis.newClient(), threadId, 5_000);
      if (intruder) throw new Error("After expired holder A called renew() and release(), a third caller acquired the lease: A deleted B's lease (a plain DEL). Compare the owner before deleting.");
      if (renewed || released) throw new Error(`Expired holder A's renew() returned ${renewed} and release() returned ${released}; both must return false once the lease belongs to B.`);
      if (!(await holderB.renew())) throw new Error("The live owner B could not renew its lease.");
      if (!(await holderB.release())) throw new Error("The live owner B could not release its lease.");
      if (!(await api.acquireLease(redis.newClient(), threadId, 1_000))) throw new Error("After B released, the lease could not be acquired again.");
    } finally {
      await redis.close();
    }
  },
);

grader.excellence(
  "when Redis fails, writes continue in memory marked degraded; on recovery newer fallback data is written back and newer primary data is kept",
  { hint: "Catch store errors (not conflicts) in ResilientStore, write to the in-memory fallback with the same compare-and-set rules, return degraded: true, and in reconcile() restore a thread only if the primary version has not moved past the one the fallback started from.", section: "degrading-when-redis-fails", weight: 3 },
  async (api) => {
    const redis = await openRedis();
    try {
      const outage = withOutage(redis.newClient());
      const resilient = new api.ResilientStore<Counter>(new api.RedisVersionedStore<Counter>(outage.client), { probeIntervalMs: 60_000 });
      const otherInstance = new api.RedisVersionedStore<Counter>(redis.client);
      const [ours, shared, fresh] = ["ours", "shared", "fresh"].map((label) => threadIdFor(redis, `degrade-${label}`)) as [string, string, string];

      const healthy = await resilient.put(ours, { count: 1, writer: "us" }, 0);
      await resilient.put(shared, { count: 1, writer: "us" }, 0);
      if (healthy.degraded !== false || healthy.version !== 1) throw new Error(`A healthy put returned ${JSON.stringify(healthy)}; expected { version: 1, degraded: false }.`);

      outage.down();
      const read = await resilient.get(ours).then((value) => ({ value }), (error: unknown) => ({ error }));
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

      // Meanwhile another instance, which can still reach Redis, moves `shared` on.
      await otherInstance.put(shared, { count: 5, writer: "other instance" }, 1);

      outage.up();
      await resilient.reconcile();
      const primary = Object.fromEntries(await Promise.all([ours, shared, fresh].map(async (id) => [id, (await otherInstance.get(id))?.state] as const)));
      if (primary[ours]?.writer !== "us, degraded") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[ours])} for a thread only this instance wrote during the outage; reconcile() must write the newer fallback state back.`);
      if (primary[fresh]?.writer !== "us, degraded") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[fresh])} for a thread created during the outage; reconcile() must write it back.`);
      if (primary[shared]?.writer !== "other instance") throw new Error(`After recovery the primary holds ${JSON.stringify(primary[shared])} for a thread another instance updated during the outage; reconcile() must not overwrite newer primary data.`);
      const latest = await resilient.get(ours);
      const next = latest && (await resilient.put(ours, { count: latest.state.count + 1, writer: "us" }, latest.version));
      if (next?.degraded !== false) throw new Error(`After reconcile() a put returned ${JSON.stringify(next)}; the store must be back on the primary (degraded: false).`);
    } finally {
      await redis.close();
    }
  },
);

grader.excellence(
  "4 OS processes x 25 increments on one SQLite file end at exactly 100",
  { hint: "Keep the version check inside the write statement and the transaction (BEGIN IMMEDIATE), open the file in WAL mode with a busy timeout, so writers in other processes queue instead of failing or overwriting.", section: "several-processes-on-one-sqlite-file", weight: 2, timeout: 30_000 },
  async (api) => {
    const db = tempDatabase();
    const store = new api.SqliteVersionedStore<Counter>(db.file);
    try {
      const threadId = threadIdFor(undefined, "processes");
      const results = await runWriterProcesses(db.file, threadId, 4, 25, 25_000);
      const broken = results.find((result) => result.error !== undefined || result.done !== 25);
      if (broken) throw new Error(`Writer ${broken.name} did not finish its 25 increments: ${broken.error ?? `${broken.done} done`}.`);
      const final = await store.get(threadId);
      if (final?.state.count !== 100) {
        const conflicts = results.reduce((sum, result) => sum + result.conflicts, 0);
        throw new Error(`4 processes x 25 increments ended at ${String(final?.state.count)}, not 100 (${conflicts} conflicts reported): writes from different processes overwrote each other.`);
      }
    } finally {
      store.close();
      db.remove();
    }
  },
);

if (hiddenChecksEnabled()) (await import("./locking/hidden.ts")).registerHiddenChecks(grader);
