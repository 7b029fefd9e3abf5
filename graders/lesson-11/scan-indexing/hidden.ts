/**
 * Hidden checks of lesson-11 / scan-indexing (interviewer grading only): what a
 * candidate who read the public checks might still miss — glob characters in the
 * namespace, SCAN's duplicates, and listing after a thread is gone.
 */
import { expect } from "vitest";
import type { Grader } from "#harness/check.ts";
import { collect, ids, putChain, withSaver, type ScanIndexingApi } from "./fixtures.ts";

export function registerHiddenChecks(grader: Grader<ScanIndexingApi>): void {
  grader.excellence(
    "a namespace with glob characters reaches only its own checkpoints",
    { hint: "Escape (or encode) the namespace in keys and MATCH patterns exactly as the thread id.", section: "glob-characters-and-the-separator", visibility: "hidden", category: "key safety" },
    (api, check) =>
      withSaver(api, check, async ({ saver, thread }) => {
        const threadId = thread();
        const plain = await putChain(saver, threadId, 2, () => ({}), "sub");
        const starred = await putChain(saver, threadId, 2, () => ({}), "s*");
        const bracketed = await putChain(saver, threadId, 1, () => ({}), "[s]ub");
        expect(ids(await collect(saver.list({ threadId, checkpointNs: "s*" }))), "list in namespace \"s*\" returned checkpoints of namespace \"sub\"").toEqual(starred.map((c) => c.checkpointId).reverse());
        expect(ids(await collect(saver.list({ threadId, checkpointNs: "[s]ub" }))), "list in namespace \"[s]ub\" returned other namespaces' checkpoints").toEqual(bracketed.map((c) => c.checkpointId));
        expect((await saver.getTuple({ threadId, checkpointNs: "sub" }))?.config.checkpointId).toBe(plain.at(-1)!.checkpointId);
      }),
  );

  grader.excellence(
    "keys SCAN returns twice (as it may during a rehash) are listed and deleted once",
    { hint: "SCAN may return a key more than once: collect keys into a Set (or dedupe ids) before loading or counting them.", section: "what-scan-does-not-promise", visibility: "hidden", category: "scan semantics" },
    (api, check) =>
      withSaver(
        api,
        check,
        async ({ saver, thread }) => {
          const threadId = thread();
          const chain = await putChain(saver, threadId, 40);
          const other = thread();
          await putChain(saver, other, 2);
          const listed = ids(await collect(saver.list({ threadId })));
          expect(listed, "list() returned a checkpoint twice when SCAN repeated a key across pages").toEqual(chain.map((c) => c.checkpointId).reverse());
          await saver.deleteThread(threadId);
          expect(await collect(saver.list({ threadId })), "deleteThread left checkpoints behind").toEqual([]);
          expect((await collect(saver.list({ threadId: other }))).length).toBe(2);
        },
        { duplicateScanResults: true },
      ),
  );

  grader.excellence(
    "after deleteThread, getTuple and list find nothing and a new run on the same thread id starts clean",
    { hint: "Delete the index keys with the checkpoint and writes keys, so nothing stale is found by id afterwards.", section: "multi-tenant-namespaces-and-ttl", visibility: "hidden", category: "retention" },
    (api, check) =>
      withSaver(api, check, async ({ saver, thread }) => {
        const threadId = thread();
        await putChain(saver, threadId, 5, (i) => ({ stage: "x", userId: `u${i}` }));
        await saver.deleteThread(threadId);
        expect(await saver.getTuple({ threadId }), "getTuple found a checkpoint of a deleted thread").toBeUndefined();
        expect(await collect(saver.list({ threadId }, { filter: { stage: "x" } })), "a filtered list found checkpoints of a deleted thread").toEqual([]);
        const fresh = await putChain(saver, threadId, 1, () => ({ stage: "x" }));
        expect(ids(await collect(saver.list({ threadId }, { filter: { stage: "x" } })))).toEqual([fresh[0]!.checkpointId]);
      }),
  );
}
