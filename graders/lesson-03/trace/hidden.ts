/**
 * Hidden checks of lesson-03 / trace (interviewer grading only): what a candidate who read the
 * public checks may still miss. A node that runs several times in a loop (the attempt belongs to
 * the step, not the node), and the default cap on a task that outgrows it.
 */
import type { Grader } from "#harness/check.ts";
import { describeOutcome } from "#harness/crash.ts";
import { seededRandom } from "#harness/seed.ts";
import { applyCap, expectedTrace, expectFinished, expectTrace, entriesIn, fail, freshProc, graphOf, readerOf, runTask, sharedProc, Task, withBigInputs, type CrashPoint, type TraceApi } from "./fixture.ts";

export function registerHiddenChecks(grader: Grader<TraceApi>): void {
  grader.excellence(
    "a node that runs three times in a loop is three steps of attempt 1, and a crash in its second pass redoes only that pass",
    {
      hint: "The attempt counts how often a step started (entries with this task and step), not how often the node ran: a loop's passes are new steps.",
      section: "crash-resume-and-redone-work",
      weight: 2,
      visibility: "hidden",
      category: "loops",
      timeout: 20_000,
    },
    async (api, check) => {
      const random = seededRandom();
      const nodes = graphOf(random, [1, 2, 1]);
      nodes[1] = { ...nodes[1]!, repeat: 3 };
      const initial = { documentId: `doc-${Math.floor(random() * 1e6)}` };
      const plain = new Task(check, nodes, initial);
      expectFinished(await runTask(await sharedProc(api, check), plain), plain, "A run with a node looping three times");
      const reader = await readerOf(check);
      expectTrace(await entriesIn(reader, plain.traceFile, plain.taskId), expectedTrace(plain.steps), plain.taskId, "The trace of a run whose second node loops three times");
      const point: CrashPoint = { moment: "tool", step: 3, tool: 1 };
      const task = new Task(check, nodes, initial);
      const crashed = await runTask(await freshProc(check), task, { point });
      if (crashed.kind !== "crashed") fail(`A run was to be killed inside the second pass of the loop, but ${describeOutcome(crashed)}.`);
      expectFinished(await runTask(await freshProc(check), task), task, "The resume after a crash in the loop's second pass");
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), expectedTrace(task.steps, [point]), task.taskId, "After a crash in the loop's second pass (step 3) and a resume");
    },
  );

  grader.excellence(
    "the default cap is 1,000,000 bytes: a task whose payloads total well over 1 MB keeps at most that, by the contract's drop order",
    {
      hint: "Without options, maxDataBytes is 1,000,000: a store with no cap grows without bound on one long task.",
      section: "a-bounded-trace",
      weight: 1,
      visibility: "hidden",
      category: "limits",
      timeout: 30_000,
    },
    async (api, check) => {
      const random = seededRandom();
      const nodes = withBigInputs(graphOf(random, [3, 2, 3, 2, 3]), random, 35_000);
      const task = new Task(check, nodes, { documentId: "big" });
      expectFinished(await runTask(await sharedProc(api, check), task), task, "A run with over 1 MB of tool payloads");
      const reader = await readerOf(check);
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), applyCap(expectedTrace(task.steps), 1_000_000), task.taskId, "With the default cap, a task whose payloads total over 1 MB");
    },
  );
}
