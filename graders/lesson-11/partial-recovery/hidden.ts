/**
 * Hidden checks of lesson-11 / partial-recovery (interviewer grading only). They probe what a
 * candidate who read the public checks might still miss: a crash in the middle of a saga, a
 * retry inside one process after the provider already executed the call, and two crashes in a
 * row on one thread.
 */
import type { Grader } from "#harness/check.ts";
import { describeOutcome, type ChildOutcome } from "#harness/crash.ts";
import { MemorySaver } from "#runtime";
import type { ThreadOutcome, ThreadRun } from "./child.ts";
import { describeMiss, expectEachEffectOnce, finalState, expectSameState, fail, newThreadId, orderInput, runThreads, show } from "./driver.ts";
import { flakyChargeWorkflow, ORDER_EFFECTS, Probe, scratch, type RecoveryApi, type RunResult } from "./fixture.ts";

export function registerHiddenChecks(grader: Grader<RecoveryApi>): void {
  grader.excellence(
    "a crash in the middle of compensation resumes it without repeating an undo",
    {
      hint: "Record each finished compensation (e.g. a pending write on the failing step's checkpoint) and give each a stable key, so a resumed saga skips or deduplicates the undos already done.",
      section: "compensation-saga",
      weight: 2,
      visibility: "hidden",
      category: "saga under crashes",
      timeout: 15_000,
    },
    async () => {
      const files = scratch();
      const threadId = newThreadId("saga-crash");
      try {
        const run: ThreadRun = { workflow: "saga", dbFile: files.dbFile, ledgerFile: files.ledger.file, threadId, input: orderInput() };
        const crashed = await runThreads([run], "after-compensate:charge");
        if (crashed.kind !== "crashed") fail(`The saga run was meant to crash right after refunding the charge, but ${crashed.kind === "finished" && crashed.result[0]?.ok ? "it ended without compensating the charge" : describeMiss(crashed)}.`);
        const resumed = await finishedThread(await runThreads([run]), "Resuming a saga that crashed mid-compensation");
        if (resumed.status !== "compensated") fail(`The resumed saga reported ${show(resumed.status)}; expected "compensated".`);
        const refunds = files.ledger.executed("refunds");
        const releases = files.ledger.executed("releases");
        if (refunds !== 1 || releases !== 1) fail(`Across the crash, the saga executed ${refunds} refund(s) and ${releases} release(s); expected exactly one of each.`);
        if (files.ledger.runs("reserve") !== 1 || files.ledger.runs("charge") !== 1) fail("The resumed saga ran reserve or charge again; a failed thread is only compensated.");
      } finally {
        files.remove();
      }
    },
  );

  grader.excellence(
    "a retry after the provider already executed the call (a timeout) reuses the idempotency key",
    {
      hint: "Retries of one task belong to the same step: keep the key of (threadId, checkpointId, node), never add the attempt number or a timestamp.",
      section: "exactly-once-idempotency-keys-and-a-ledger",
      weight: 1,
      visibility: "hidden",
      category: "retries",
    },
    async (api) => {
      const files = scratch();
      try {
        const result = await api.runWorkflow(flakyChargeWorkflow({ ledger: files.ledger, probe: new Probe() }), { saver: new MemorySaver(), threadId: newThreadId("flaky"), input: orderInput() });
        expectEachEffectOnce(files.ledger, ["payments"], "When the first attempt of charge timed out after the provider charged, and the retry succeeded");
        if (result.state.receipt !== "payments#1") fail(`The retried charge ended with receipt ${show(result.state.receipt)}; the provider's first (and only) charge was payments#1.`);
      } finally {
        files.remove();
      }
    },
  );

  grader.excellence(
    "two crashes in a row on one thread still end with every effect exactly once",
    {
      hint: "A resume is itself a run that can crash: it must checkpoint and key its work exactly like the first run.",
      section: "the-crash-matrix",
      weight: 1,
      visibility: "hidden",
      category: "repeated crashes",
      timeout: 15_000,
    },
    async () => {
      const input = orderInput();
      const expected = finalState("order", input);
      const files = scratch();
      try {
        const run: ThreadRun = { workflow: "order", dbFile: files.dbFile, ledgerFile: files.ledger.file, threadId: newThreadId("twice"), input };
        for (const crashAt of ["after-work:charge", "after-work:notify"]) {
          const crashed = await runThreads([run], crashAt);
          if (crashed.kind !== "crashed") fail(`The run meant to crash at "${crashAt}" did not: ${describeMiss(crashed)}.`);
        }
        const resumed = await finishedThread(await runThreads([run]), "After two crashes, the third process");
        expectSameState(resumed, expected, "After crashes at after-work:charge and after-work:notify");
        expectEachEffectOnce(files.ledger, Object.values(ORDER_EFFECTS), "After two crashes in a row");
      } finally {
        files.remove();
      }
    },
  );
}

function finishedThread(outcome: ChildOutcome<ThreadOutcome[]>, what: string): RunResult {
  const thread = outcome.kind === "finished" ? outcome.result[0] : undefined;
  if (!thread?.ok) return fail(`${what} did not finish: ${thread ? thread.message : describeOutcome(outcome)}.`);
  return thread.result;
}
