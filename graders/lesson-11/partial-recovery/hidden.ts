/**
 * Hidden checks of lesson-11 / partial-recovery (interviewer grading only). They probe what a
 * candidate who read the public checks might still miss: a crash in the middle of a saga, and
 * two crashes in a row on one thread.
 */
import type { Grader } from "#harness/check.ts";
import { describeOutcome } from "#harness/crash.ts";
import { expectEachEffectOnce, expectSameState, fail, finalState, freshProc, newCase, orderInput, resultOf, runThread, show } from "./driver.ts";
import { ORDER_EFFECTS, type CrashPoint, type RecoveryApi } from "./fixture.ts";

export function registerHiddenChecks(grader: Grader<RecoveryApi>): void {
  grader.excellence(
    "a crash in the middle of compensation resumes it without repeating an undo",
    {
      hint: "Record each finished compensation (e.g. a pending write on the failing step's checkpoint) and give each a stable key, so a resumed saga skips or deduplicates the undos already done.",
      section: "compensation-saga",
      weight: 2,
      visibility: "hidden",
      category: "saga under crashes",
      timeout: 25_000,
    },
    async (_api, check) => {
      const thread = newCase(check, "saga", orderInput());
      const crashed = await runThread(await freshProc(check), thread, { point: { moment: "after-compensate", node: "charge" } });
      if (crashed.kind !== "crashed") fail(`The saga run was meant to crash right after refunding the charge, but ${crashed.kind === "finished" ? "it ended without compensating the charge" : describeOutcome(crashed)}.`);
      const resumed = resultOf(await runThread(await freshProc(check), { ...thread, input: undefined }), "Resuming a saga that crashed mid-compensation did not finish:");
      if (resumed.status !== "compensated") fail(`The resumed saga reported ${show(resumed.status)}; expected "compensated".`);
      const ledger = thread.world.ledger;
      const refunds = ledger.executed("refunds").length;
      const releases = ledger.executed("releases").length;
      if (refunds !== 1 || releases !== 1) fail(`Across the crash, the saga executed ${refunds} refund(s) and ${releases} release(s); expected exactly one of each.`);
      if (ledger.runs("reserve") !== 1 || ledger.runs("charge") !== 1) fail("The resumed saga ran reserve or charge again; a failed thread is only compensated.");
      if (ledger.runs("ship") !== 2) fail(`Across the crash, "ship" (maxAttempts 2) ran ${ledger.runs("ship")} time(s); it had already failed for good before the crash (its failure was recorded), so the resume only compensates: 2 runs in all.`);
      // A crash once the refund had returned (the release about to start): the refund is done, not in flight.
      const second = newCase(check, "saga", orderInput());
      const halfway = await runThread(await freshProc(check), second, { point: { moment: "before-compensate", node: "reserve" } });
      if (halfway.kind !== "crashed") fail(`The saga run was meant to crash once the charge was refunded, before the reservation's release, but ${halfway.kind === "finished" ? "it ended without releasing the reservation" : describeOutcome(halfway)}.`);
      const finished = resultOf(await runThread(await freshProc(check), { ...second, input: undefined }), "Resuming a saga that crashed between two compensations did not finish:");
      if (finished.status !== "compensated") fail(`The saga resumed between two compensations reported ${show(finished.status)}; expected "compensated".`);
      const refundCalls = second.world.ledger.calls("refunds").length;
      const released = second.world.ledger.executed("releases").length;
      if (refundCalls !== 1 || released !== 1) {
        fail(`A saga crashed after the refund had returned and before the release started; across the crash, refund was called ${refundCalls} time(s) and the release executed ${released} time(s): record each finished undo before starting the next, so the resume calls only the ones not done (refund once, release once).`);
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
    async (_api, check) => {
      const input = orderInput();
      const thread = newCase(check, "order", input);
      const points: CrashPoint[] = [
        { moment: "after-work", node: "charge" },
        { moment: "after-work", node: "notify" },
      ];
      for (const point of points) {
        const crashed = await runThread(await freshProc(check), thread, { point });
        if (crashed.kind !== "crashed") fail(`The run meant to crash at "${point.moment}:${point.node}" did not: ${describeOutcome(crashed)}.`);
      }
      const resumed = resultOf(await runThread(await freshProc(check), thread), "After two crashes, the third process did not finish:");
      expectSameState(resumed, finalState("order", input), "After crashes at after-work:charge and after-work:notify");
      expectEachEffectOnce(thread.world.ledger, Object.values(ORDER_EFFECTS), "After two crashes in a row");
    },
  );
}
