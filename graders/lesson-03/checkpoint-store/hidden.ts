/**
 * Hidden checks of lesson-03 / checkpoint-store (interviewer grading only): what a candidate who
 * read the public checks may still miss. Two writers taking turns on one task, ids of one task
 * used on another, and sizes past the everyday.
 */
import type { Grader } from "#harness/check.ts";
import { seededRandom } from "#harness/seed.ts";
import { checkpointsFor, expectCheckpoint, expectHistory, expectStoreError, fail, newFile, opaque, openStore, reader, richState, saved, show, thrown, type Checkpoint, type StoreApi } from "./fixture.ts";

export function registerHiddenChecks(grader: Grader<StoreApi>): void {
  grader.core(
    "two processes taking turns on one task keep one linear history: each save's parent is the latest in the file, not the latest this process saw",
    {
      hint: "Read the parent from the database inside the save's write transaction (BEGIN IMMEDIATE); a parent id remembered in memory goes stale as soon as another process saves.",
      section: "history-and-the-parent-pointer",
      weight: 2,
      visibility: "hidden",
      category: "two writers",
    },
    async (api, check) => {
      const random = seededRandom();
      const file = newFile(check);
      const taskId = opaque();
      const first = await openStore(api, file);
      const second = await reader(check, file);
      const chain: Array<{ id: string; checkpoint: Checkpoint }> = [];
      // A, B, A, A, B, B, A: the turns of a task handed between two workers.
      for (const [i, checkpoint] of checkpointsFor(taskId, 7, random).entries()) {
        const store = [0, 2, 3, 6].includes(i) ? first : second.store;
        chain.push({ id: await saved(store, taskId, checkpoint), checkpoint });
      }
      expectHistory(await first.list(taskId), chain, "After two processes took turns saving to one task");
    },
  );

  grader.core(
    "a checkpoint id of one task is not accepted for another, neither by load() nor as a parentId",
    {
      hint: "Look a checkpoint up by (taskId, checkpointId) together: an id alone may belong to another task.",
      section: "task-ids-are-exact-keys",
      weight: 1,
      visibility: "hidden",
      category: "isolation",
    },
    async (api, check) => {
      const random = seededRandom();
      const store = await openStore(api, newFile(check));
      const [a, b] = [opaque(), opaque()];
      const idOfA = await saved(store, a, checkpointsFor(a, 1, random)[0]!);
      await saved(store, b, checkpointsFor(b, 1, random)[0]!);
      const crossed = await store.load(b, idOfA);
      if (crossed !== null) fail(`load(taskB, an id of taskA) returned ${show(crossed)}; it must return null.`);
      expectStoreError(api, await thrown(() => store.save(b, checkpointsFor(b, 1, random)[0]!, { parentId: idOfA })), "save(taskB, …, { parentId: an id of taskA })");
      const list = (await store.list(b)) as unknown[];
      if (!Array.isArray(list) || list.length !== 1) fail(`After the refused cross-task parent, task B has ${Array.isArray(list) ? list.length : show(list)} checkpoints; expected 1.`);
    },
  );

  grader.excellence(
    "a 2 MB state and a 900-character unicode task id round-trip",
    {
      hint: "Store the state as a BLOB or TEXT without a size cap of your own, and the task id as TEXT compared exactly (no truncation, no normalisation).",
      section: "task-ids-are-exact-keys",
      weight: 1,
      visibility: "hidden",
      category: "edge cases",
      timeout: 20_000,
    },
    async (api, check) => {
      const random = seededRandom();
      const file = newFile(check);
      const store = await openStore(api, file);
      const taskId = `タスク-${"é".repeat(400)}-${opaque()}-${"🙂".repeat(250)}`;
      const big = { ...richState(random, 0), blob: new Uint8Array(2 * 2 ** 20).map((_, i) => (i * 31) & 0xff), lines: Array.from({ length: 2000 }, (_, i) => `line ${i}`) };
      const checkpoint = { taskId, state: big, currentNode: "embed", timestamp: new Date(Date.UTC(2026, 7, 1)) };
      const id = await saved(store, taskId, checkpoint);
      const other = await reader(check, file);
      expectCheckpoint(await other.store.load(taskId), checkpoint, { checkpointId: id, parentId: null }, "A 2 MB state under a long unicode task id, loaded in another process");
    },
  );
}
