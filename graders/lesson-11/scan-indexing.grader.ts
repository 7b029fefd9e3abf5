// Grader for lesson-11/scan-indexing: a Redis checkpoint saver observed through an instrumented client.
import { expect } from "vitest";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import { collect, describeCommands, bulkLoadThread, loadNoise, makeCheckpoint, putChain, runKeys, withSaver, type ScanIndexingApi } from "./scan-indexing/fixtures.ts";

const grader = defineGrader<ScanIndexingApi>({ lesson: "lesson-11", unit: "scan-indexing", exports: ["RedisSaver"] });

const ids = (tuples: Array<{ config: { checkpointId: string } }>) => tuples.map((t) => t.config.checkpointId);

grader.core(
  "put then getTuple returns the checkpoint, its metadata, its parent config and its pending writes ordered by task, then index",
  { hint: "Store the body, the metadata and the parent id with each checkpoint; read the writes keys of that checkpoint and sort them by task id, then numeric index.", section: "the-key-scheme", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const threadId = thread("roundtrip");
      const parent = makeCheckpoint({ n: 1 });
      const parentConfig = await saver.put({ threadId }, parent, { source: "input", step: -1 });
      const child = makeCheckpoint({ n: 2, nested: { list: [1, "two", null] } });
      const childConfig = await saver.put(parentConfig, child, { source: "loop", step: 0, stage: "draft" });
      expect(childConfig, "put() returns the config of the checkpoint it stored").toMatchObject({ threadId, checkpointId: child.id });
      await saver.putWrites(childConfig, [["b", 1], ["c", 2], ["d", 3], ["e", 4], ["f", 5], ["g", 6], ["h", 7], ["i", 8], ["j", 9], ["k", 10], ["l", 11]], "task-b");
      await saver.putWrites(childConfig, [["a", "first"]], "task-a");
      const tuple = await saver.getTuple({ threadId, checkpointId: child.id });
      expect(tuple, "getTuple() found nothing for a checkpoint put() had just stored").toBeDefined();
      expect(tuple!.checkpoint, "the checkpoint read back differs from the one stored").toEqual(child);
      expect(tuple!.metadata, "the metadata read back differs from the one stored").toEqual({ source: "loop", step: 0, stage: "draft" });
      expect(tuple!.parentConfig?.checkpointId, "parentConfig must name the checkpoint put() was given in config.checkpointId").toBe(parent.id);
      expect(
        tuple!.pendingWrites.map(([task, channel]) => `${task}:${channel}`),
        "pending writes must be ordered by task id, then by numeric index (index 10 after index 9, not after 1)",
      ).toEqual(["task-a:a", ..."bcdefghijkl".split("").map((c) => `task-b:${c}`)]);
      expect(tuple!.pendingWrites[0]![2]).toBe("first");
    }),
);

grader.core(
  "getTuple without a checkpoint id returns the latest checkpoint of the thread",
  { hint: "Without config.checkpointId, find the newest id of the thread (the last of your index, or the greatest id a SCAN found) and load that one.", section: "the-key-scheme" },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const threadId = thread("latest");
      const count = 3 + Math.floor(seededRandom()() * 10);
      const chain = await putChain(saver, threadId, count);
      const latest = await saver.getTuple({ threadId });
      expect(latest?.config.checkpointId, withSeed(`getTuple({ threadId }) after ${count} puts must return the last one`)).toBe(chain.at(-1)!.checkpointId);
      expect(await saver.getTuple({ threadId: thread("never-written") }), "getTuple() on an unknown thread must return undefined").toBeUndefined();
    }),
);

grader.core(
  "never issues KEYS; every key walk is SCAN with MATCH and COUNT (observed on the client)",
  { hint: "Replace KEYS with a SCAN loop: SCAN cursor MATCH <escaped pattern> COUNT <n> until the cursor is 0 (or read an index instead of walking keys).", section: "scan-not-keys", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, redis, thread }) => {
      const threadId = thread("observed");
      const chain = await putChain(saver, threadId, 5);
      await saver.putWrites(chain[2]!, [["x", 1]], "task");
      redis.resetCounters();
      await collect(saver.list({ threadId }));
      await collect(saver.list({ threadId }, { limit: 2, before: chain[3]! }));
      await saver.getTuple({ threadId });
      await saver.getTuple(chain[2]!);
      await saver.deleteThread(threadId);
      const keysCommands = redis.commands.filter((c) => c.name === "KEYS");
      expect(keysCommands, `KEYS blocks Redis while it walks every key; your saver issued: ${describeCommands(keysCommands)}`).toEqual([]);
      const scans = redis.commands.filter((c) => c.name === "SCAN");
      expect(scans.length, "deleteThread must find the thread's keys with SCAN (no SCAN was issued)").toBeGreaterThan(0);
      for (const scan of scans) {
        const options = scan.args.slice(1).map((a) => String(a).toUpperCase());
        expect(options.includes("MATCH") && options.includes("COUNT"), `SCAN needs both MATCH and COUNT; you sent SCAN ${scan.args.join(" ")}`).toBe(true);
      }
    }),
);

grader.core(
  "list orders newest first, treats before as exclusive and honours limit (seeded random threads)",
  { hint: "Sort by checkpoint id descending (ids are time-sortable), keep only ids strictly less than before.checkpointId, and stop after limit tuples.", section: "the-key-scheme", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const random = seededRandom();
      for (let round = 0; round < 4; round++) {
        const threadId = thread(`order${round}`);
        const count = 2 + Math.floor(random() * 25);
        const chain = await putChain(saver, threadId, count);
        const newestFirst = chain.map((c) => c.checkpointId).reverse();
        expect(ids(await collect(saver.list({ threadId }))), withSeed(`list() of ${count} checkpoints must return all of them newest first`)).toEqual(newestFirst);
        const beforeAt = Math.floor(random() * count);
        const limit = 1 + Math.floor(random() * count);
        const expected = newestFirst.filter((id) => id < chain[beforeAt]!.checkpointId).slice(0, limit);
        const got = ids(await collect(saver.list({ threadId }, { before: chain[beforeAt]!, limit })));
        expect(got, withSeed(`list({ before: checkpoint #${beforeAt} of ${count}, limit: ${limit} }) must return the ${expected.length} checkpoints strictly older, newest first`)).toEqual(expected);
      }
    }),
);

grader.core(
  "putWrites is idempotent under retry: one copy per task and index; special channels (WRITES_IDX_MAP) replace, regular writes are not overwritten",
  { hint: "Key each write by (checkpoint, task, writeIndex(channel, position)); SET ... NX for regular writes and a plain SET for special channels.", section: "stable-write-indexes", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const threadId = thread("writes");
      const [config] = await putChain(saver, threadId, 1);
      await saver.putWrites(config!, [["messages", "hello"], ["__error__", "first failure"]], "task-1");
      await saver.putWrites(config!, [["messages", "hello"], ["__error__", "first failure"]], "task-1"); // a retry
      await saver.putWrites(config!, [["messages", "changed on a later attempt"], ["__error__", "second failure"]], "task-1");
      const tuple = await saver.getTuple(config!);
      const writes = tuple?.pendingWrites ?? [];
      expect(writes.filter(([, channel]) => channel === "messages").length, "a retried putWrites must not duplicate a regular write").toBe(1);
      expect(writes.find(([, channel]) => channel === "messages")?.[2], "a regular write at an existing (task, index) must keep its first value").toBe("hello");
      expect(writes.filter(([, channel]) => channel === "__error__").map(([, , v]) => v), "a special channel write must replace the earlier one at its fixed index (-1 for __error__)").toEqual(["second failure"]);
      expect(writes.map(([, c]) => c), "__error__ (index -1) sorts before the regular write at index 0").toEqual(["__error__", "messages"]);
    }),
);

grader.core(
  "threads and namespaces are isolated from each other",
  { hint: "Put the thread id and the namespace into every key (and every index key) so that one thread or namespace never reads another's checkpoints.", section: "multi-tenant-namespaces-and-ttl" },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const a = thread("iso-a");
      const b = thread("iso-b");
      const rootA = await putChain(saver, a, 3);
      const childA = await putChain(saver, a, 2, () => ({}), "child");
      const rootB = await putChain(saver, b, 2);
      expect(ids(await collect(saver.list({ threadId: a }))), "list() on thread A's root namespace returned other checkpoints").toEqual(rootA.map((c) => c.checkpointId).reverse());
      expect(ids(await collect(saver.list({ threadId: a, checkpointNs: "child" }))), "list() on namespace \"child\" returned other checkpoints").toEqual(childA.map((c) => c.checkpointId).reverse());
      expect((await saver.getTuple({ threadId: b }))?.config.checkpointId, "getTuple() on thread B returned another thread's checkpoint").toBe(rootB.at(-1)!.checkpointId);
      expect(await saver.getTuple({ threadId: b, checkpointId: rootA[0]!.checkpointId }), "thread B must not see thread A's checkpoint by id").toBeUndefined();
      await saver.deleteThread(b);
      expect(await collect(saver.list({ threadId: b })), "deleteThread(B) must remove B's checkpoints").toEqual([]);
      expect(ids(await collect(saver.list({ threadId: a }))), "deleteThread(B) must leave thread A intact").toEqual(rootA.map((c) => c.checkpointId).reverse());
    }),
);

grader.excellence(
  "list filters on metadata (stage, userId, time range) and refuses an unsupported filter key by name",
  { hint: "Answer stage and userId from an index per value, bound ts with createdAfter/createdBefore, and throw an error naming any other key instead of ignoring it.", section: "filters-by-time-stage-and-user-p1", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const random = seededRandom();
      const threadId = thread("filters");
      const stages = ["draft", "review", "done"];
      const users = ["u1", "u2"];
      const meta = Array.from({ length: 30 }, () => ({ stage: stages[Math.floor(random() * 3)]!, userId: users[Math.floor(random() * 2)]! }));
      const chain = await putChain(saver, threadId, 30, (i) => meta[i]!);
      const newest = [...chain.keys()].reverse();
      const expectIds = (keep: (i: number) => boolean, limit?: number) => newest.filter(keep).slice(0, limit).map((i) => chain[i]!.checkpointId);
      const listed = async (filter: Record<string, unknown>, limit?: number) => ids(await collect(saver.list({ threadId }, { filter, ...(limit && { limit }) })));
      expect(await listed({ stage: "review" }), withSeed("filter { stage: \"review\" }")).toEqual(expectIds((i) => meta[i]!.stage === "review"));
      expect(await listed({ userId: "u2", stage: "done" }, 3), withSeed("filter { userId: \"u2\", stage: \"done\" }, limit 3")).toEqual(expectIds((i) => meta[i]!.userId === "u2" && meta[i]!.stage === "done", 3));
      const from = 5 + Math.floor(random() * 10);
      const to = from + 1 + Math.floor(random() * 10);
      expect(
        await listed({ createdAfter: chain[from]!.ts, createdBefore: chain[to]!.ts }),
        withSeed(`filter { createdAfter: ts #${from} (inclusive), createdBefore: ts #${to} (exclusive) }`),
      ).toEqual(expectIds((i) => i >= from && i < to));
      expect(
        await listed({ userId: "u1", createdAfter: Date.parse(chain[from]!.ts) }),
        withSeed("filter { userId: \"u1\", createdAfter: epoch milliseconds }"),
      ).toEqual(expectIds((i) => i >= from && meta[i]!.userId === "u1"));
      let refusal: unknown;
      try {
        await collect(saver.list({ threadId }, { filter: { tenantColour: "blue" } }));
      } catch (error) {
        refusal = error;
      }
      expect(refusal, "list({ filter: { tenantColour } }) must throw: an unsupported filter key silently ignored returns the wrong checkpoints").toBeInstanceOf(Error);
      expect((refusal as Error).message, "the error must name the unsupported key").toContain("tenantColour");
    }),
);

/** The plain-SCAN answer needs ~200 round trips here; the reference needs 3. */
const ROUND_TRIP_BOUND = 10;

grader.excellence(
  `list({ limit: 10 }) on a thread of 10,000 checkpoints among 100,000 keys costs at most ${ROUND_TRIP_BOUND} round trips (a secondary index, not a full SCAN)`,
  { hint: "Keep a sorted set per thread and namespace (members: checkpoint ids, time-sortable) and read the newest ids with ZREVRANGEBYLEX ... LIMIT, then fetch their bodies in one pipeline.", section: "a-secondary-index", weight: 2, timeout: 30_000 },
  (api) =>
    withSaver(api, async ({ saver, redis, thread }) => {
      const threadId = thread("big");
      const loaded = await bulkLoadThread(saver, redis, threadId, 10_000);
      const keysSoFar = (await runKeys(redis)).length;
      await loadNoise(redis.client, redis.runId, Math.max(0, 100_000 - keysSoFar));
      redis.resetCounters();
      const tuples = await collect(saver.list({ threadId }, { limit: 10 }));
      const roundTrips = redis.roundTrips;
      expect(ids(tuples), "list({ limit: 10 }) must return the 10 newest checkpoints").toEqual(loaded.slice(-10).reverse());
      expect(roundTrips, `list({ limit: 10 }) took ${roundTrips} round trips (${redis.commands.filter((c) => c.name === "SCAN").length} SCAN pages); an index answers in a handful`).toBeLessThanOrEqual(ROUND_TRIP_BOUND);
    }),
);

grader.excellence(
  "thread ids with glob characters or the $ separator cannot read or delete another thread's keys",
  { hint: "Escape * ? [ ] \\ in MATCH patterns (or encode ids so no glob character reaches a key), and reject or encode $ in ids.", section: "glob-characters-and-the-separator", weight: 2 },
  (api) =>
    withSaver(api, async ({ saver, thread }) => {
      const base = thread("g");
      // Each attacker id, used as a pattern or a prefix, would reach the victims next to it.
      const attackers = [`${base}*`, `${base}?`, `${base}[xy]`, `${base}\\`, base];
      const victims = [`${base}x`, `${base}y`, `${base}xy`, `${base}\\x`, `${base}$x`];
      const written = new Map<string, string[]>();
      for (const id of [...victims, ...attackers]) {
        try {
          written.set(id, (await putChain(saver, id, 2)).map((c) => c.checkpointId));
        } catch (error) {
          if (!id.includes("$")) throw new Error(`put() refused thread id ${JSON.stringify(id)} (${(error as Error).message}); glob characters are legal in thread ids, escape them instead.`);
          // Rejecting the separator with an error is a correct answer.
        }
      }
      for (const attacker of attackers) {
        const seen = ids(await collect(saver.list({ threadId: attacker })));
        expect(seen, `list({ threadId: ${JSON.stringify(attacker)} }) returned another thread's checkpoints`).toEqual([...written.get(attacker)!].reverse());
      }
      for (const attacker of attackers) await saver.deleteThread(attacker);
      for (const [victim, victimIds] of written) {
        if (attackers.includes(victim)) continue;
        expect(ids(await collect(saver.list({ threadId: victim }))), `deleting threads ${attackers.map((a) => JSON.stringify(a)).join(", ")} removed thread ${JSON.stringify(victim)}'s checkpoints`).toEqual([...victimIds].reverse());
      }
    }),
);

grader.excellence(
  "checkpoint bodies and writes are fetched in batches (pipeline or MGET), not one GET per key",
  { hint: "Queue the reads of a page of checkpoints (and their writes) in one pipeline, or MGET them, instead of awaiting a GET/HGETALL per key.", section: "scan-not-keys" },
  (api) =>
    withSaver(api, async ({ saver, redis, thread }) => {
      const threadId = thread("batch");
      const chain = await putChain(saver, threadId, 20);
      for (const config of chain) await saver.putWrites(config, [["x", 1], ["y", 2]], "task");
      redis.resetCounters();
      const tuples = await collect(saver.list({ threadId }));
      expect(tuples.length).toBe(20);
      expect(tuples.every((t) => t.pendingWrites.length === 2), "list() must return each checkpoint's pending writes").toBe(true);
      const singleReads = new Set(["GET", "HGETALL", "HGET", "HMGET", "SMEMBERS", "LRANGE", "ZRANGE"]);
      const byTrip = new Map<number, typeof redis.commands>();
      for (const command of redis.commands) byTrip.set(command.roundTrip ?? 0, [...(byTrip.get(command.roundTrip ?? 0) ?? []), command]);
      const lonelyReads = [...byTrip.values()].filter((trip) => trip.length === 1 && singleReads.has(trip[0]!.name)).length;
      expect(lonelyReads, `listing 20 checkpoints with writes made ${lonelyReads} single-key read round trips (of ${redis.roundTrips}); fetch them in batches`).toBeLessThan(5);
    }),
);

grader.excellence(
  "ttlSeconds puts a TTL on every key of a thread, and deleteThread removes it with SCAN + UNLINK in batches, leaving other threads intact",
  { hint: "EXPIRE every key you write (checkpoint, writes and index keys) when ttlSeconds is set; in deleteThread, UNLINK each SCAN page's keys in one command.", section: "multi-tenant-namespaces-and-ttl", weight: 2 },
  (api) =>
    withSaver(
      api,
      async ({ saver, redis, thread }) => {
        const keep = thread("keep");
        const doomed = thread("doomed");
        await putChain(saver, keep, 3, (i) => ({ stage: "s", userId: `u${i}` }));
        const before = new Set(await runKeys(redis));
        const chain = await putChain(saver, doomed, 12, (i) => ({ stage: i % 2 ? "a" : "b", userId: "u" }));
        for (const config of chain) await saver.putWrites(config, [["x", 1], ["__interrupt__", "ask"]], "task");
        const doomedKeys = (await runKeys(redis)).filter((k) => !before.has(k));
        expect(doomedKeys.length, "no keys appeared for the thread").toBeGreaterThan(0);
        const raw = redis.newClient();
        for (const key of doomedKeys) {
          expect(await raw.pttl(key), `key ${key} has no TTL although the saver was built with ttlSeconds: 600`).toBeGreaterThan(0);
        }
        redis.resetCounters();
        await saver.deleteThread(doomed);
        const unlinks = redis.commands.filter((c) => c.name === "UNLINK");
        expect(unlinks.length, "deleteThread must remove keys with UNLINK (frees memory off Redis's main thread)").toBeGreaterThan(0);
        expect(unlinks.length, `deleteThread sent ${unlinks.length} UNLINK commands for ${doomedKeys.length} keys; UNLINK each SCAN page in one command`).toBeLessThan(doomedKeys.length / 4);
        expect(redis.commands.some((c) => c.name === "SCAN"), "deleteThread must find keys with SCAN").toBe(true);
        const after = await runKeys(redis);
        expect(after.filter((k) => doomedKeys.includes(k)), "deleteThread left keys of the thread behind").toEqual([]);
        expect(after.filter((k) => before.has(k)).length, "deleteThread removed keys of another thread").toBe(before.size);
      },
      { ttlSeconds: 600 },
    ),
);

if (hiddenChecksEnabled()) (await import("./scan-indexing/hidden.ts")).registerHiddenChecks(grader);
