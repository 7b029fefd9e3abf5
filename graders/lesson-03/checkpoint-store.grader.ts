/**
 * Grader of lesson-03 / checkpoint-store: an append-only checkpoint store on SQLite.
 *
 * Every check writes through the learner's store in one learner process and reads through a
 * store opened on the same SQLite file in another (`check.spawn()`), often after the writer was
 * killed: only what reached the file counts. Core: save appends and load returns the latest;
 * list gives the whole history newest first with parent pointers and load(taskId, id) any of
 * it; two processes saving to one task at once never fork the history; states keep Dates, Maps,
 * Sets and undefined, the timestamp is a Date again; task ids are exact keys (prefixes,
 * substrings, case, LIKE wildcards) and delete() removes only its own task; the final checkpoint
 * is kept; bad input to save() is refused with CheckpointStoreError and saves nothing.
 * Excellence: reads refuse ids that are not strings; each refusal's code names its kind and its
 * message the argument or field, and a closed store refuses to write; save order survives identical and
 * backward timestamps and a stopped clock; a long history with list({ limit }); arbitrary
 * structured values (fast-check); a finished task is not reopened by accident, and resumes from
 * an earlier checkpoint on request.
 *
 * The contract fixes the behaviour, not the schema: the grader never reads the file's tables. It
 * opens the file only to hold the write lock, as another worker's transaction would.
 */
import Database from "better-sqlite3";
import fc from "fast-check";
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { assertProperty, seededRandom } from "#harness/seed.ts";
import {
  checkpointIds,
  checkpointsFor,
  END,
  expectCheckpoint,
  expectHistory,
  expectStoreError,
  fail,
  newFile,
  opaque,
  openStore,
  reader,
  richState,
  saved,
  show,
  thrown,
  type Checkpoint,
  type Store,
  type StoreApi,
} from "./checkpoint-store/fixture.ts";

type LearnerFixture = typeof import("./checkpoint-store/learner-fixture.ts");

const grader = defineGrader<StoreApi>({
  lesson: "lesson-03",
  unit: "checkpoint-store",
  exports: ["SqliteCheckpointStore", "CheckpointStoreError", "END"],
  fixtures: { store: new URL("./checkpoint-store/learner-fixture.ts", import.meta.url).pathname },
});

grader.core(
  "save appends a checkpoint and returns its id; load returns the latest, read in another process after the writer was killed",
  {
    hint: "save() inserts a new row (never INSERT OR REPLACE) and returns a fresh checkpointId; load(taskId) returns the task's most recently saved checkpoint with its checkpointId and parentId, reading only the SQLite file.",
    section: "append-never-replace",
    weight: 2,
  },
  async (_api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const taskId = opaque();
    const writer = await check.spawn();
    const store = await openStore(writer.api, file);
    const chain = checkpointsFor(taskId, 3, random);
    const ids: string[] = [];
    for (const checkpoint of chain) ids.push(await saved(store, taskId, checkpoint));
    if (new Set(ids).size !== ids.length) fail(`Three saves returned the ids ${show(ids)}; every checkpoint needs its own id.`);
    // A reader opened while the writer is still alive sees each new save, and so does one opened after it died.
    const live = await reader(check, file);
    expectCheckpoint(await live.store.load(taskId), chain[2]!, { checkpointId: ids[2]!, parentId: ids[1]! }, "load(taskId) in another process");
    const fourth = { taskId, state: richState(random, 3), currentNode: "publish", timestamp: new Date(chain[2]!.timestamp.getTime() + 1000) };
    ids.push(await saved(store, taskId, fourth));
    expectCheckpoint(await live.store.load(taskId), fourth, { checkpointId: ids[3]!, parentId: ids[2]! }, "load(taskId) in another process, by a store opened before the fourth save");
    writer.learner.kill("SIGKILL");
    await writer.learner.exited;
    const after = await reader(check, file);
    expectCheckpoint(await after.store.load(taskId), fourth, { checkpointId: ids[3]!, parentId: ids[2]! }, "load(taskId) in a new process after the writer was killed");
    const nothing = await after.store.load(opaque());
    if (nothing !== null) fail(`load() of a task that was never saved returned ${show(nothing)}; it must return null.`);
  },
);

grader.core(
  "the history survives: list() gives every checkpoint of a task newest first, each naming its parent (the one a resume started from), and load(taskId, id) returns any of them",
  {
    hint: "Keep one row per checkpoint with its parent's id (null for the first; options.parentId when the save resumes from an earlier one, the latest otherwise); list(taskId) returns them newest first; load(taskId, checkpointId) returns that one (null if the task has no such checkpoint).",
    section: "history-and-the-parent-pointer",
    weight: 3,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    const taskId = opaque();
    const chain: Array<{ id: string; checkpoint: Checkpoint }> = [];
    for (const checkpoint of checkpointsFor(taskId, 6, random)) chain.push({ id: await saved(store, taskId, checkpoint), checkpoint });
    const other = await reader(check, file);
    expectHistory(await other.store.list(taskId), chain, "In another process");
    for (const [index, { id, checkpoint }] of chain.entries()) {
      expectCheckpoint(await other.store.load(taskId, id), checkpoint, { checkpointId: id, parentId: index === 0 ? null : chain[index - 1]!.id }, `load(taskId, id of checkpoint ${index + 1} of 6) in another process`);
    }
    // A resume from an earlier checkpoint (a retry of step 3): its parent is the one it resumed from, not the last saved.
    // It is saved later in time too: this check is about the parent, and ordering by timestamp is judged elsewhere.
    const [drawn] = checkpointsFor(taskId, 1, random, ["embed"]);
    const retry = { ...drawn!, timestamp: new Date(chain[5]!.checkpoint.timestamp.getTime() + 1000 + Math.floor(random() * 900)) };
    const retryId = await saved(store, taskId, retry, { parentId: chain[2]!.id });
    const resumed = { checkpointId: retryId, parentId: chain[2]!.id };
    expectCheckpoint(await other.store.load(taskId), retry, resumed, "load(taskId) in another process after a save with options.parentId of checkpoint 3 of 6 (a resume from it)");
    expectCheckpoint(((await other.store.list(taskId)) as unknown[])[0], retry, resumed, "list(taskId)[0] after a save with options.parentId of checkpoint 3 of 6");
    const none = await other.store.list(opaque());
    if (!Array.isArray(none) || none.length !== 0) fail(`list() of a task that was never saved returned ${show(none)}; it must return [].`);
    const unknown = await other.store.load(taskId, opaque(16));
    if (unknown !== null) fail(`load(taskId, an id that was never returned) gave ${show(unknown)}; it must return null.`);
  },
);

grader.core(
  "two processes saving to one task at once never fork the history: each save reads its parent under the write lock",
  {
    hint: "Read the latest checkpoint and insert the new one in one write transaction that takes the lock before it reads (better-sqlite3's transaction(fn).immediate(), i.e. BEGIN IMMEDIATE), and open the database with a busy timeout so a save waits for another writer instead of failing.",
    section: "history-and-the-parent-pointer",
    weight: 2,
  },
  async (_api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const writers = [await check.spawn(), await check.spawn()];
    // Opened one after the other: two processes switching a new file to WAL at the same instant
    // is a race of its own, which can fail with "database is locked"; it is not what this checks.
    const stores: Store[] = [];
    for (const writer of writers) stores.push(await openStore(writer.api, file));
    // What one save costs each process here, round trip included: the lock below is held for
    // many times that, so both saves have long reached the lock when it is released.
    let cost = 0;
    for (const store of stores) {
      const warm = opaque();
      const started = performance.now();
      await saved(store, warm, checkpointsFor(warm, 1, random)[0]!);
      cost = Math.max(cost, performance.now() - started);
    }
    const hold = Math.max(300, Math.ceil(cost * 20));
    const other = new Database(file, { timeout: 60_000 });
    try {
      // Two rounds, each on a task of its own, so which save committed first never matters.
      for (let round = 0; round < 2; round++) {
        const taskId = opaque();
        const [first, ...pair] = checkpointsFor(taskId, 3, random);
        const base = await saved(stores[round]!, taskId, first!);
        // Another worker's write transaction: while it holds the lock, both processes start a
        // save. One that read its parent before taking the lock reads the same one as the other.
        other.exec("BEGIN IMMEDIATE");
        const pending = pair.map((checkpoint, i) =>
          stores[i]!.save(taskId, checkpoint!).then(
            (id) => ({ id }),
            (error: unknown) => ({ error }),
          ),
        );
        await sleep(hold);
        other.exec("ROLLBACK");
        const results = await Promise.all(pending);
        for (const result of results) {
          if ("error" in result) fail(`While another connection held the write lock for ${hold} ms, a save() in one of two processes threw ${show(result.error)}. A save must wait for the lock (a busy timeout: new Database(file, { timeout })) and then read its parent inside the write transaction.`);
          if (typeof result.id !== "string" || result.id.length === 0) fail(`save() must resolve with the new checkpoint's id; it resolved with ${show(result.id)}.`);
        }
        const ids = results.map((r) => (r as { id: string }).id);
        const parents = await Promise.all(ids.map(async (id) => ((await stores[0]!.load(taskId, id)) as { parentId?: unknown } | null)?.parentId));
        if (parents[0] === base && parents[1] === base) {
          fail(`Two processes saved to one task at once (another connection held the write lock until both saves had started): both new checkpoints name ${show(base)} as their parent, so the history forked though no save asked to resume from it. Read the latest checkpoint inside the write transaction, after taking the lock (transaction(fn).immediate()), not before it.`);
        }
        const chained = (parents[0] === base && parents[1] === ids[0]) || (parents[1] === base && parents[0] === ids[1]);
        if (!chained) fail(`Two saves to one task from two processes, made on top of ${show(base)}, got the parents ${show(parents)} (for ${show(ids)}): one must name ${show(base)}, the other the first one.`);
      }
    } finally {
      other.close();
    }
  },
);

grader.core(
  "state keeps its types: Dates, Maps with non-string keys, Sets, undefined and nested values come back as saved, and the timestamp as a Date",
  {
    hint: "JSON.stringify turns Dates into strings, Maps and Sets into {} and drops undefined: store the state with an encoding that keeps them (node:v8 serialize into a BLOB, or tagged JSON), and rebuild the timestamp as a Date with its milliseconds.",
    section: "what-jsonstringify-loses",
    weight: 2,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    const other = await reader(check, file);
    const at = new Date(Date.UTC(2026, 4, 5, 6, 7, 8, 9 + Math.floor(random() * 990)));
    const states: unknown[] = [
      richState(random, 0),
      new Map<unknown, unknown>([[at, new Set([at])], [2, [new Map([["x", undefined]])]]]),
      [at, undefined, { when: at, missing: undefined }],
      { empty: {}, list: [], zero: 0, falsy: false, text: "", big: Number.MAX_SAFE_INTEGER, fraction: random() },
      "just a string",
      null,
    ];
    for (const state of states) {
      const taskId = opaque();
      const checkpoint = { taskId, state, currentNode: "embed", timestamp: new Date(at.getTime() + Math.floor(random() * 1000)) };
      const id = await saved(store, taskId, checkpoint);
      const back = await other.store.load(taskId);
      expectCheckpoint(back, checkpoint, { checkpointId: id, parentId: null }, `A state of ${show(state)}, loaded in another process`);
      const keys = state !== null && typeof state === "object" && !Array.isArray(state) && !(state instanceof Map) ? Object.keys(state) : [];
      const got = (back as { state: Record<string, unknown> }).state;
      for (const key of keys) if (!Object.hasOwn(got, key)) fail(`The key ${show(key)} of the state disappeared on a round trip (a key whose value is undefined must come back, with undefined).`);
    }
  },
);

/** Task ids a store that matches with LIKE, GLOB, a prefix, a substring or lower() confuses with `base`. */
function neighbours(base: string): string[] {
  return [base, `${base}1`, `${base}10`, base.slice(0, -1), `x${base}`, `${base}x`, base.toUpperCase(), `${base}_`, `${base}%`, `${base}:1`, `${base}/child`, `${base} `, `ü${base}`];
}

grader.core(
  "task ids are exact keys: no task sees checkpoints of a task whose id it prefixes, contains or resembles, and delete() removes only its own",
  {
    hint: "Match task ids with `task_id = ?` (exact, case-sensitive, no LIKE or GLOB, no prefix or substring test, no id scheme that can collide), in list(), load() and delete() alike.",
    section: "task-ids-are-exact-keys",
    weight: 2,
    timeout: 20_000,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    // Hex letters, so that the upper-case neighbour differs from the base.
    const base = `a${opaque(3)}b`;
    const tasks = neighbours(base);
    const chains = new Map(tasks.map((taskId) => [taskId, [] as Array<{ id: string; checkpoint: Checkpoint }>]));
    // Interleaved, a different number each: round r saves to every task that has more than r checkpoints.
    let clock = Date.UTC(2026, 3, 1) + Math.floor(random() * 1e9);
    for (let round = 0; round < tasks.length; round++) {
      for (const [index, taskId] of tasks.entries()) {
        if (index + 1 <= round) continue;
        const checkpoint = { taskId, state: { owner: taskId, round }, currentNode: "embed", timestamp: new Date((clock += 1000)) };
        chains.get(taskId)!.push({ id: await saved(store, taskId, checkpoint), checkpoint });
      }
    }
    const other = await reader(check, file);
    const verify = async (when: string) => {
      for (const taskId of tasks) {
        const chain = chains.get(taskId)!;
        const list = (await other.store.list(taskId)) as Array<{ state?: { owner?: unknown } }>;
        const foreign = Array.isArray(list) ? list.filter((c) => c?.state?.owner !== taskId).map((c) => c?.state?.owner) : [];
        if (foreign.length > 0) fail(`${when}, list(${show(taskId)}) includes checkpoints of ${show([...new Set(foreign)])}: task ids must match exactly.`);
        const ids = Array.isArray(list) ? list.map((c) => (c as { checkpointId?: unknown }).checkpointId) : list;
        if (!isDeepStrictEqual(ids, chain.map((c) => c.id).reverse())) fail(`${when}, list(${show(taskId)}) gave ${show(ids)}; expected its own ${chain.length} checkpoint(s), newest first.`);
        const latest = (await other.store.load(taskId)) as { checkpointId?: unknown } | null;
        if (latest?.checkpointId !== chain.at(-1)?.id) fail(`${when}, load(${show(taskId)}) returned ${show(latest)}; expected its own latest checkpoint ${show(chain.at(-1)?.id ?? null)}.`);
      }
    };
    await verify("With tasks " + show(tasks));
    await store.delete(base);
    chains.set(base, []);
    await verify(`After delete(${show(base)})`);
  },
);

grader.core(
  "the final checkpoint is kept: a finished task loads as finished in another process, with its whole history",
  {
    hint: "When a task completes, save a checkpoint whose currentNode is END instead of deleting anything; load() then tells a finished task (currentNode END) from one never started (null), and list() still shows the whole run for an audit.",
    section: "keep-the-final-checkpoint",
    weight: 2,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const taskId = opaque();
    const writer = await check.spawn();
    const store = await openStore(writer.api, file);
    const chain: Array<{ id: string; checkpoint: Checkpoint }> = [];
    const steps = [...checkpointsFor(taskId, 3, random)];
    steps.push({ taskId, state: { ...richState(random, 3), done: true }, currentNode: END, timestamp: new Date(steps[2]!.timestamp.getTime() + 5000) });
    for (const checkpoint of steps) chain.push({ id: await saved(store, taskId, checkpoint), checkpoint });
    writer.learner.kill("SIGKILL");
    await writer.learner.exited;
    const other = await reader(check, file);
    const last = await other.store.load(taskId);
    if (last === null) fail(`After the final checkpoint (currentNode ${show(END)}) was saved, load() returned null: a finished task must stay loadable, or a late failure leaves nothing to audit or resume from.`);
    expectCheckpoint(last, steps[3]!, { checkpointId: chain[3]!.id, parentId: chain[2]!.id }, "load() of a finished task");
    expectHistory(await other.store.list(taskId), chain, "list() of a finished task");
  },
);

grader.core(
  "bad input is refused with CheckpointStoreError, and a refused save stores nothing",
  {
    hint: "Validate at the boundary before touching the database: a non-empty string taskId equal to checkpoint.taskId, a non-empty currentNode, a valid Date timestamp, a state that can be stored (no functions or symbols), a parentId the task has; wrap every failure in CheckpointStoreError with a message that says what was wrong.",
    section: "refuse-bad-input",
    weight: 1,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    const taskId = opaque();
    const good = checkpointsFor(taskId, 1, random)[0]!;
    const first = await saved(store, taskId, good);
    const other = await reader(check, file);
    const cases: Array<{ what: string; run: () => Promise<unknown>; target: string }> = [];
    const refuse = (what: string, target: string, run: () => Promise<unknown>) => cases.push({ what, run, target });
    const otherTask = opaque();
    refuse('save("") (an empty taskId)', "", () => store.save("", { ...good, taskId: "" }));
    refuse("save(42) (a taskId that is not a string)", otherTask, () => store.save(42 as never, good));
    refuse("save(a, checkpoint whose taskId is b)", otherTask, () => store.save(otherTask, good));
    refuse("save() with currentNode \"\"", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, currentNode: "" }));
    refuse("save() with currentNode 7", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, currentNode: 7 as never }));
    refuse("save() with the timestamp as an ISO string", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, timestamp: good.timestamp.toISOString() as never }));
    refuse("save() with an invalid Date timestamp", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, timestamp: new Date(Number.NaN) }));
    refuse("save() of a null checkpoint", otherTask, () => store.save(otherTask, null as never));
    refuse("save() of a state holding a function", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, state: { callback: () => 1 } }));
    refuse("save() of a state holding a symbol", otherTask, () => store.save(otherTask, { ...good, taskId: otherTask, state: { id: Symbol("x") } }));
    refuse("save() with a parentId the task does not have", taskId, () => store.save(taskId, good, { parentId: opaque(16) }));
    for (const { what, run } of cases) expectStoreError(api, await thrown(run), what);
    for (const target of new Set(cases.map((c) => c.target))) {
      if (target === "") continue;
      const ids = checkpointIds(await other.store.list(target));
      const expected = target === taskId ? [first] : [];
      if (!isDeepStrictEqual(ids, expected)) fail(`After the refused saves, list(${show(target)}) in another process shows ${show(ids)}; expected ${show(expected)}: validate before writing anything.`);
    }
  },
);

grader.excellence(
  "reads refuse ids that are not strings: load, list and delete throw CheckpointStoreError, and a refused delete deletes nothing",
  {
    hint: "Validate the taskId in load(), list() and delete(), and load()'s checkpointId, as save() does (typeof id === \"string\") before they reach SQLite: a number bound to a TEXT column is coerced, so delete(1.5) would delete task \"1.5\". An empty string may be refused or read as a task with no checkpoints.",
    section: "refuse-bad-input",
    weight: 1,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    // Tasks whose ids are what SQLite would make of the numbers below.
    const named = ["42", "1.5", "123"];
    const saves = new Map<string, string>();
    for (const taskId of named) saves.set(taskId, await saved(store, taskId, checkpointsFor(taskId, 1, random)[0]!));
    const cases: Array<[string, () => Promise<unknown>]> = [
      ["load(42)", () => store.load(42 as never)],
      ["load(123n)", () => store.load(123n as never)],
      ["load(null)", () => store.load(null as never)],
      ['load("42", 42) (a checkpoint id that is not a string)', () => store.load("42", 42 as never)],
      ["list(undefined)", () => store.list(undefined as never)],
      ["list(42)", () => store.list(42 as never)],
      ["delete(1.5)", () => store.delete(1.5 as never)],
      ["delete({})", () => store.delete({} as never)],
      ["delete(123n)", () => store.delete(123n as never)],
    ];
    for (const [what, run] of cases) expectStoreError(api, await thrown(run), what);
    // A read of an empty taskId may be refused or find nothing (no task has that id): both are safe.
    let emptyRead: unknown;
    const emptyError = await thrown(async () => (emptyRead = await store.load("")));
    if (emptyError !== undefined) expectStoreError(api, emptyError, 'load("")');
    else if (emptyRead !== null) fail(`load("") resolved with ${show(emptyRead)}; refuse an empty taskId with CheckpointStoreError, or find no checkpoint (null).`);
    const other = await reader(check, file);
    for (const [taskId, id] of saves) {
      const ids = checkpointIds(await other.store.list(taskId));
      if (!isDeepStrictEqual(ids, [id])) fail(`After the refused reads and deletes, list(${show(taskId)}) in another process shows ${show(ids)}; expected ${show([id])}: a delete given a number must not delete the task that number reads as.`);
    }
  },
);

grader.excellence(
  "refusals say what was wrong: the code names the kind of refusal, the message the argument or field, and a closed store refuses to write",
  {
    hint: "Give each refusal its code (BAD_INPUT for a wrong argument, UNKNOWN_PARENT, FINISHED, UNSERIALIZABLE) and a message that names what was wrong: the argument or field (taskId, checkpoint.currentNode, checkpoint.timestamp, options.parentId, options.limit), the parent id the task does not have, and for a finished task how to go on ({ parentId }).",
    section: "refuse-bad-input",
    weight: 1,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    const [taskId, otherTask, finished] = [opaque(), opaque(), opaque()];
    const good = checkpointsFor(taskId, 1, random)[0]!;
    const mine = { ...good, taskId: otherTask };
    await saved(store, taskId, good);
    await saved(store, finished, { ...checkpointsFor(finished, 1, random)[0]!, currentNode: END });
    const missing = opaque(16);
    const names = (pattern: RegExp, field: string) => ({ pattern, field });
    const cases: Array<{ what: string; run: () => Promise<unknown>; code: string; says: { pattern: RegExp; field: string } }> = [
      { what: 'save("")', run: () => store.save("", { ...good, taskId: "" }), code: "BAD_INPUT", says: names(/task ?id/i, "taskId") },
      { what: "save(42)", run: () => store.save(42 as never, good), code: "BAD_INPUT", says: names(/task ?id/i, "taskId") },
      { what: "save(a, checkpoint whose taskId is b)", run: () => store.save(otherTask, good), code: "BAD_INPUT", says: names(/task ?id/i, "taskId") },
      { what: "save() of a null checkpoint", run: () => store.save(otherTask, null as never), code: "BAD_INPUT", says: names(/checkpoint/i, "checkpoint") },
      { what: 'save() with currentNode ""', run: () => store.save(otherTask, { ...mine, currentNode: "" }), code: "BAD_INPUT", says: names(/current ?node/i, "currentNode") },
      { what: "save() with currentNode 7", run: () => store.save(otherTask, { ...mine, currentNode: 7 as never }), code: "BAD_INPUT", says: names(/current ?node/i, "currentNode") },
      { what: "save() with the timestamp as an ISO string", run: () => store.save(otherTask, { ...mine, timestamp: good.timestamp.toISOString() as never }), code: "BAD_INPUT", says: names(/timestamp/i, "timestamp") },
      { what: "save() with an invalid Date timestamp", run: () => store.save(otherTask, { ...mine, timestamp: new Date(Number.NaN) }), code: "BAD_INPUT", says: names(/timestamp/i, "timestamp") },
      { what: "save() with { parentId: 5 }", run: () => store.save(taskId, good, { parentId: 5 as never }), code: "BAD_INPUT", says: names(/parent ?id/i, "parentId") },
      { what: 'save() with { parentId: "" }', run: () => store.save(taskId, good, { parentId: "" }), code: "BAD_INPUT", says: names(/parent ?id/i, "parentId") },
      { what: "save() with a parentId the task does not have", run: () => store.save(taskId, good, { parentId: missing }), code: "UNKNOWN_PARENT", says: names(new RegExp(missing), `the parent id ${show(missing)}`) },
      { what: "save() without parentId on a finished task", run: () => store.save(finished, { ...good, taskId: finished }), code: "FINISHED", says: names(/parent ?id/i, "how to go on ({ parentId })") },
      { what: "save() of a state holding a function", run: () => store.save(otherTask, { ...mine, state: { callback: () => 1 } }), code: "UNSERIALIZABLE", says: names(/./, "anything") },
      { what: "save() of a state holding a symbol", run: () => store.save(otherTask, { ...mine, state: { id: Symbol("x") } }), code: "UNSERIALIZABLE", says: names(/./, "anything") },
      { what: "list(taskId, { limit: 0 })", run: () => store.list(taskId, { limit: 0 }), code: "BAD_INPUT", says: names(/limit/i, "limit") },
      { what: 'list(taskId, { limit: "3" })', run: () => store.list(taskId, { limit: "3" as never }), code: "BAD_INPUT", says: names(/limit/i, "limit") },
      { what: "load(42)", run: () => store.load(42 as never), code: "BAD_INPUT", says: names(/task ?id/i, "taskId") },
      { what: "load(taskId, 42)", run: () => store.load(taskId, 42 as never), code: "BAD_INPUT", says: names(/checkpoint ?id/i, "checkpointId") },
    ];
    for (const { what, run, code, says } of cases) {
      const error = await thrown(run);
      expectStoreError(api, error, what);
      const { code: got, message, name } = error as { code?: unknown; message: string; name?: unknown };
      if (name !== "CheckpointStoreError") fail(`${what} was refused with an error named ${show(name)}; keep the name "CheckpointStoreError" (what a log line or a stack trace shows first).`);
      if (got !== code) fail(`${what} was refused with code ${show(got)}; expected ${code}: a caller tells a wrong argument from a finished task or a missing parent by the code.`);
      if (!says.pattern.test(message)) fail(`${what} was refused with the message ${show(message)}; it should name ${says.field}, so the caller knows what to fix.`);
    }
    // close() closes: a save through a closed store fails instead of writing.
    await store.close();
    const late = checkpointsFor(otherTask, 1, random)[0]!;
    if ((await thrown(() => store.save(otherTask, late))) === undefined) fail("save() after close() was accepted; a closed store must refuse to write.");
    const other = await reader(check, file);
    const ids = checkpointIds(await other.store.list(otherTask));
    if (!isDeepStrictEqual(ids, [])) fail(`After the refusals and a save through a closed store, list(${show(otherTask)}) in another process shows ${show(ids)}; expected none.`);
  },
);

grader.excellence(
  "save order is the order: identical timestamps, a clock that steps back and saves in the same millisecond never reorder the history",
  {
    hint: "Order by something the store assigns at save time that only grows (an INTEGER PRIMARY KEY / AUTOINCREMENT sequence, or a monotonic id), never by checkpoint.timestamp or the wall clock, which tie and step back.",
    section: "order-is-save-order",
    weight: 2,
  },
  async (_api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const taskId = opaque();
    const writer = await check.spawn();
    const f = await check.fixture<LearnerFixture>("store", writer.learner);
    // Every save of the writer happens at one instant of its clock.
    await f.stopClock(Date.UTC(2026, 5, 1, 12));
    const store = await openStore(writer.api, file);
    const same = new Date(Date.UTC(2026, 5, 1, 12, 0, 0, Math.floor(random() * 1000)));
    const timestamps = [same, same, same, same, new Date(same.getTime() - 3_600_000), new Date(same.getTime() - 7_200_000), new Date(same.getTime() - 1), same];
    const chain: Array<{ id: string; checkpoint: Checkpoint }> = [];
    for (const [i, timestamp] of timestamps.entries()) {
      const checkpoint = { taskId, state: { step: i }, currentNode: `node-${i}`, timestamp };
      chain.push({ id: await saved(store, taskId, checkpoint), checkpoint });
    }
    const other = await reader(check, file);
    expectHistory(await other.store.list(taskId), chain, `After 8 saves, four with the same timestamp, then the clock stepping back an hour, two hours and 1 ms`);
    expectCheckpoint(await other.store.load(taskId), chain.at(-1)!.checkpoint, { checkpointId: chain.at(-1)!.id, parentId: chain.at(-2)!.id }, "load(taskId) after those saves");
  },
);

grader.excellence(
  "a long history stays exact: 400 checkpoints of one task among its neighbours, list({ limit }) gives the newest N",
  {
    hint: "Index the rows by (task, save order) and let list() take an optional positive integer limit (LIMIT ?), newest first; refuse a limit that is not a positive integer with CheckpointStoreError.",
    section: "history-and-the-parent-pointer",
    weight: 1,
    timeout: 40_000,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const taskId = opaque();
    const neighbour = `${taskId}0`;
    const all: Checkpoint[] = [];
    const long = checkpointsFor(taskId, 400, random);
    const near = checkpointsFor(neighbour, 40, random);
    for (let i = 0; i < long.length; i++) {
      all.push(long[i]!);
      if (i % 10 === 9) all.push(near[(i - 9) / 10]!);
    }
    const writer = await check.spawn();
    const store = await openStore(writer.api, file);
    const f = await check.fixture<LearnerFixture>("store", writer.learner);
    const ids = await f.saveEach(store, all);
    const chain = all.flatMap((checkpoint, i) => (checkpoint.taskId === taskId ? [{ id: ids[i]!, checkpoint }] : []));
    const other = await reader(check, file);
    expectHistory(await other.store.list(taskId), chain, "A task with 400 checkpoints, saved between 40 of a neighbour's");
    for (const limit of [1, 7, 400, 1000]) {
      const want = chain.map((c) => c.id).reverse().slice(0, limit);
      const got = checkpointIds(await other.store.list(taskId, { limit }));
      if (!isDeepStrictEqual(got, want)) fail(`list(taskId, { limit: ${limit} }) gave ${show(got)}; expected the newest ${Math.min(limit, 400)} checkpoint ids, newest first.`);
    }
    for (const limit of [0, -1, 1.5, "3"]) expectStoreError(api, await thrown(() => other.store.list(taskId, { limit: limit as never })), `list(taskId, { limit: ${show(limit)} })`);
    // Every one of them loads by id, in batches over the channel.
    for (let start = 0; start < chain.length; start += 100) {
      await Promise.all(
        chain.slice(start, start + 100).map(async ({ id, checkpoint }, k) => {
          const i = start + k;
          expectCheckpoint(await other.store.load(taskId, id), checkpoint, { checkpointId: id, parentId: i === 0 ? null : chain[i - 1]!.id }, `load(taskId, id of checkpoint ${i + 1} of 400)`);
        }),
      );
    }
  },
);

/** Structured-clone values: what a state may hold. */
const stateValue = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.bigInt(),
    fc.date({ noInvalidDate: true }),
    fc.uint8Array({ maxLength: 8 }),
  ),
  node: fc.oneof(
    { depthSize: "small" },
    tie("leaf"),
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__"), tie("node"), { maxKeys: 4, noNullPrototype: true }),
    fc.array(fc.tuple(tie("leaf"), tie("node")), { maxLength: 3 }).map((entries) => new Map(entries)),
    fc.array(tie("leaf"), { maxLength: 4 }).map((items) => new Set(items)),
  ),
})).node;

grader.excellence(
  "property: arbitrary structured values (nested objects, arrays, Maps, Sets, Dates, BigInt, bytes, NaN, -0) round-trip as state",
  {
    hint: "Whatever encoding you chose must cover every structured-clone kind at any depth (v8.serialize does; a tagged JSON must tag BigInt, NaN, -0, bytes, Map keys and Set members too); fast-check prints the smallest failing state and the seed.",
    section: "what-jsonstringify-loses",
    weight: 1,
    timeout: 30_000,
  },
  async (api, check) => {
    const file = newFile(check);
    const store = await openStore(api, file);
    const other = await reader(check, file);
    const timestamp = new Date(Date.UTC(2026, 6, 1));
    await assertProperty(
      fc.asyncProperty(stateValue, async (state) => {
        const taskId = opaque();
        await saved(store, taskId, { taskId, state, currentNode: "index", timestamp });
        const back = (await other.store.load(taskId)) as { state?: unknown } | null;
        return back !== null && isDeepStrictEqual(back.state, state);
      }),
      { numRuns: 80 },
    );
  },
);

grader.excellence(
  "a finished task is not reopened by accident: a save on top of the final checkpoint is refused, a resume from an earlier one is accepted and goes on",
  {
    hint: "In save(), inside the same transaction that reads the latest checkpoint, refuse (CheckpointStoreError) when it is final (currentNode END) and no parentId is given; with { parentId } of an earlier checkpoint of the task, append on top of it: that is a deliberate resume after a late failure.",
    section: "keep-the-final-checkpoint",
    weight: 1,
  },
  async (api, check) => {
    const random = seededRandom();
    const file = newFile(check);
    const store = await openStore(api, file);
    const taskId = opaque();
    const steps = checkpointsFor(taskId, 3, random);
    const ids: string[] = [];
    for (const checkpoint of steps) ids.push(await saved(store, taskId, checkpoint));
    const final = { taskId, state: { done: true }, currentNode: END, timestamp: new Date(steps[2]!.timestamp.getTime() + 1000) };
    ids.push(await saved(store, taskId, final));
    // A second worker that still thinks the task runs.
    const other = await reader(check, file);
    const late = { taskId, state: { stale: true }, currentNode: "index", timestamp: new Date(final.timestamp.getTime() + 1000) };
    expectStoreError(api, await thrown(() => other.store.save(taskId, late)), "A save without parentId on top of the final checkpoint (a stale worker reopening a finished task)");
    const afterRefusal = (await store.list(taskId)) as unknown[];
    if (!Array.isArray(afterRefusal) || afterRefusal.length !== 4) fail(`After the refused save on a finished task, list() has ${Array.isArray(afterRefusal) ? afterRefusal.length : show(afterRefusal)} checkpoints; expected the 4 saved.`);
    // The operator resumes from the checkpoint before "index" (the late failure's step).
    const retry = { taskId, state: { ...steps[1]!.state as object, retried: true }, currentNode: steps[2]!.currentNode, timestamp: new Date(final.timestamp.getTime() + 2000) };
    const retryId = await saved(other.store, taskId, retry, { parentId: ids[1]! });
    expectCheckpoint(await store.load(taskId), retry, { checkpointId: retryId, parentId: ids[1]! }, "load(taskId) after a resume from an earlier checkpoint");
    expectCheckpoint(await store.load(taskId, ids[3]!), final, { checkpointId: ids[3]!, parentId: ids[2]! }, "load(taskId, id of the final checkpoint) after the resume (it stays for the audit)");
    // The resumed run goes on: its next save names no parent, and the latest (the resumed one) is not final.
    const onward = { taskId, state: { ...retry.state, onward: true }, currentNode: "summarize", timestamp: new Date(final.timestamp.getTime() + 3000) };
    let onwardId: string;
    try {
      onwardId = await saved(other.store, taskId, onward);
    } catch (error) {
      fail(`After a resume from an earlier checkpoint, the resumed run's next save (no parentId; the latest checkpoint is the resumed one, not final) was refused: ${show(error)}. Only a save on top of a final latest checkpoint is refused.`);
    }
    expectCheckpoint(await store.load(taskId), onward, { checkpointId: onwardId, parentId: retryId }, "load(taskId) after the resumed run saved again");
    const got = checkpointIds(await store.list(taskId));
    const want = [onwardId, retryId, ...[...ids].reverse()];
    if (!isDeepStrictEqual(got, want)) fail(`After the resume, list() gave ${show(got)}; expected ${show(want)}: newest first, the earlier branch kept.`);
  },
);

if (hiddenChecksEnabled()) (await import("./checkpoint-store/hidden.ts")).registerHiddenChecks(grader);
