/**
 * Grader of lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 *
 * The submission's runWorkflow runs the grader's workflows (learner-fixture.ts) in a learner
 * process: pure nodes (a priced quote, a summary) and effect nodes whose bodies are the trusted
 * side's functions calling fake providers with an idempotency-key API (fixture.ts), so every node
 * entry and every provider call is recorded on the trusted side. Crash checks SIGKILL a learner
 * process (`check.spawn()`) at a crash point the trusted side observes, then resume the thread in
 * a fresh process that shares only the SQLite file. Core: checkpoint contents, resume to the same
 * final state, effects not repeated across the effect/checkpoint gap, keys that are stable across
 * retries and distinct across threads and loop iterations, finished threads, bad input.
 * Excellence: the full crash matrix, pending writes of parallel branches, saga, forks, schema
 * versions, checkpoint metadata.
 */
import { isDeepStrictEqual } from "node:util";
import type { CheckpointTuple } from "#runtime";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeOutcome } from "#harness/crash.ts";
import {
  countCheckpoints,
  crashAndResume,
  expectEachEffectOnce,
  expectRejects,
  expectSameState,
  fail,
  FIXTURE,
  finalState,
  freshProc,
  newCase,
  orderInput,
  resultOf,
  resumedResult,
  runThread,
  sharedProc,
  show,
} from "./partial-recovery/driver.ts";
import { allCheckpoints, chainFrom, expectedStates, label, Ledger, ORDER_EFFECTS, ORDER_NODES, withStore, type CrashPoint, type Moment, type RecoveryApi, type RunReport, type World } from "./partial-recovery/fixture.ts";
import { MIGRATION_MS } from "./partial-recovery/learner-fixture.ts";

const grader = defineGrader<RecoveryApi>({
  lesson: "lesson-11",
  unit: "partial-recovery",
  exports: ["runWorkflow", "RecoveryError", "SchemaMismatchError"],
  fixtures: { [FIXTURE]: new URL("./partial-recovery/learner-fixture.ts", import.meta.url).pathname },
});
const EFFECT_SERVICES = Object.values(ORDER_EFFECTS);
const at = (moment: Moment, node: string): CrashPoint => ({ moment, node });

grader.core(
  "each checkpoint stores the state, the node(s) to run next (not the one just finished) and its parent",
  {
    hint: "When a step ends, save one checkpoint: channelValues = the merged state and nothing else, next = the successors of the nodes that just ran ([] at the end), parent = the checkpoint the step started from (pass its id in the config of put()).",
    section: "minimal-state-routing-position-parent-pointer",
    weight: 2,
  },
  async (api, check) => {
    const input = orderInput();
    const thread = newCase(check, "order", input);
    const result = resultOf(await runThread(await sharedProc(api, check), thread), "An uncrashed run of the order workflow did not finish:");
    const threadId = thread.world.threadId;
    await withStore(thread.file, async (saver) => {
      const chain = (await chainFrom(saver, { threadId })).reverse(); // oldest first
      const all = await allCheckpoints(saver, threadId);
      if (chain.length !== all.length) {
        fail(`Following parent pointers from the latest checkpoint reaches ${chain.length} checkpoint(s), but the thread has ${all.length}: every checkpoint after the first must name the one before it as its parent.`);
      }
      const states = expectedStates("order", input);
      const steps = ["the input", ...ORDER_NODES];
      if (chain.length !== states.length) {
        fail(`A run of quote -> charge -> notify -> summarize saved ${chain.length} checkpoint(s) (next: ${show(chain.map((t) => t.checkpoint.next))}); expected ${states.length}: the input checkpoint and one per step.`);
      }
      for (const [index, tuple] of chain.entries()) {
        const after = steps[index]!;
        const next = index < ORDER_NODES.length ? [ORDER_NODES[index]!] : [];
        if (!isDeepStrictEqual(tuple.checkpoint.next, next)) {
          const savedFinished = index > 0 && isDeepStrictEqual(tuple.checkpoint.next, [after]);
          fail(
            `The checkpoint saved after ${after} has next = ${show(tuple.checkpoint.next)}; it must be ${show(next)}, the node(s) to run next. ` +
              (savedFinished ? `That is the node that just finished: a resume from it would run "${after}" again.` : ""),
          );
        }
        if (!isDeepStrictEqual(tuple.checkpoint.channelValues, states[index])) {
          fail(`The checkpoint saved after ${after} holds ${show(tuple.checkpoint.channelValues)}; it must hold exactly the workflow state at that point, ${show(states[index])} (no copies of earlier states, no bookkeeping).`);
        }
        const parent = tuple.parentConfig?.checkpointId;
        const previous = chain[index - 1]?.config.checkpointId;
        if (parent !== previous) fail(`The checkpoint saved after ${after} has parent ${show(parent)}; expected ${show(previous)}, the checkpoint its step started from.`);
      }
      if (!isDeepStrictEqual(result.state, states.at(-1))) fail(`runWorkflow resolved with state ${show(result.state)}; expected the final state ${show(states.at(-1))}.`);
    });
  },
);

grader.core(
  "after a crash, a fresh process resumes from the last checkpoint and reaches the same final state",
  {
    hint: "On start, load the thread's latest checkpoint and continue with its next nodes on its state; use options.input only when the thread has no checkpoint yet.",
    section: "save-the-node-to-run-next",
    weight: 3,
    timeout: 20_000,
  },
  async (_api, check) => {
    const input = orderInput();
    const expected = finalState("order", input);
    const runs = await crashAndResume(check, "order", input, [at("before", "notify"), at("after-checkpoint", "charge"), at("after-checkpoint", "summarize")]);
    for (const evidence of runs) {
      expectSameState(resumedResult(evidence), expected, `After a crash at "${label(evidence.point)}" and a resume in a fresh process`);
      // At these points every node that ran before the crash had its checkpoint saved: a resume starts after them.
      // (The order workflow runs each node once, so a node seen again is a replay.)
      const ranBefore = new Set(evidence.beforeResume.flatMap((entry) => (entry.kind === "run" ? [entry.node] : [])));
      const replayed = evidence.thread.world.ledger.entries
        .slice(evidence.beforeResume.length)
        .flatMap((entry) => (entry.kind === "run" && ranBefore.has(entry.node) ? [entry.node] : []));
      if (replayed.length > 0) {
        fail(`After a crash at "${label(evidence.point)}", the resume ran ${show([...new Set(replayed)])} again although ${replayed.length === 1 ? "its" : "their"} result was already checkpointed: resume from the last checkpoint's next nodes instead of replaying from the start.`);
      }
    }
  },
);

grader.core(
  "a side effect done before the crash is not repeated, even when the crash falls between the effect and its checkpoint",
  {
    hint: "Give each effect an idempotency key that is the same on every retry and after a crash: derive it from (threadId, checkpointId, node), or generate it once and persist it before the call, so the retry sends the same key and the provider deduplicates it.",
    section: "exactly-once-idempotency-keys-and-a-ledger",
    weight: 3,
    timeout: 20_000,
  },
  async (_api, check) => {
    const input = orderInput();
    const expected = finalState("order", input);
    const runs = await crashAndResume(check, "order", input, [at("after-work", "charge"), at("after-work", "notify")]);
    for (const evidence of runs) {
      const { point } = evidence;
      const situation = `After a crash at "${label(point)}" and a resume`;
      const ledger = evidence.thread.world.ledger;
      const result = resumedResult(evidence);
      const service = ORDER_EFFECTS[point.node as keyof typeof ORDER_EFFECTS];
      const keysBefore = evidence.beforeResume.flatMap((entry) => (entry.kind === "call" && entry.service === service ? [entry.key] : []));
      const keysAfter = ledger.calls(service).slice(keysBefore.length).map((call) => call.key);
      if (keysAfter.some((key) => !keysBefore.includes(key))) {
        fail(`${situation}, "${point.node}" called the provider with key ${show(keysBefore)} before the crash and ${show(keysAfter)} after it: the retry of one effect must send the key the first attempt sent (no time, no fresh random value, no attempt number, unless it was persisted before the call).`);
      }
      expectEachEffectOnce(ledger, EFFECT_SERVICES, situation);
      const keys = EFFECT_SERVICES.map((s) => ledger.calls(s)[0]?.key);
      if (keys[0] === keys[1]) fail(`${situation}, charge and notify used the same idempotency key ${show(keys[0])}: two effects need two keys.`);
      expectSameState(result, expected, situation);
    }
  },
);

grader.core(
  "retries of a failed attempt reuse the idempotency key (the provider charged, the answer timed out)",
  {
    hint: "Retries of one task (node.maxAttempts) are the same effect: send the key of the first attempt, never one with the attempt number or the time in it.",
    section: "exactly-once-idempotency-keys-and-a-ledger",
    weight: 2,
  },
  async (api, check) => {
    const thread = newCase(check, "flaky", orderInput());
    const result = resultOf(await runThread(await sharedProc(api, check), thread), "When the first attempt of charge timed out after the provider charged, runWorkflow did not finish:");
    const ledger = thread.world.ledger;
    const keys = ledger.calls("payments").map((call) => call.key);
    expectEachEffectOnce(ledger, ["payments"], `When the first attempt of charge timed out after the provider charged and the retry succeeded (keys sent: ${show(keys)})`);
    if (result.state.receipt !== "payments#1") fail(`The retried charge ended with receipt ${show(result.state.receipt)}; the provider's first (and only) charge was payments#1.`);
  },
);

grader.core(
  "keys tell separate effects apart: two threads sharing one provider, and a node that runs twice in a loop, each execute every effect",
  {
    hint: "An idempotency key must be distinct for every separate effect: another thread, another loop iteration (a later checkpoint) or another branch is a new request. The node name alone collides; add the thread and the checkpoint that scheduled the task, or a random value generated once per task and persisted.",
    section: "exactly-once-idempotency-keys-and-a-ledger",
    weight: 3,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const shared = new Ledger();
    const input = orderInput();
    const threads = [newCase(check, "order", input, { ledger: shared }), newCase(check, "order", { ...input, orderId: `${input.orderId}-b` }, { ledger: shared })];
    for (const thread of threads) resultOf(await runThread(proc, thread), "A run of the order workflow did not finish:");
    expectEachEffectOnce(shared, EFFECT_SERVICES, "After two threads (two customers) ran the order workflow against the same providers", 2);
    const loop = newCase(check, "loop", input);
    const looped = resultOf(await runThread(proc, loop), "A run of the reminder loop did not finish:");
    expectEachEffectOnce(loop.world.ledger, ["reminders"], 'After "remind" ran twice in a loop (two reminders are two effects)', 2);
    expectSameState(looped, finalState("loop", input), 'After "remind" ran twice in a loop');
  },
);

grader.core(
  "resuming a finished thread in a fresh process runs nothing and returns the final state",
  {
    hint: "When the loaded checkpoint's next is empty, return its state (and status) at once: no node, no new checkpoint.",
    section: "save-the-node-to-run-next",
    weight: 2,
  },
  async (api, check) => {
    const thread = newCase(check, "order", orderInput());
    const finished = resultOf(await runThread(await sharedProc(api, check), thread), "An uncrashed run of the order workflow did not finish:");
    const count = () => countCheckpoints(thread);
    const checkpoints = await count();
    const ledger = thread.world.ledger;
    const entries = ledger.entries.length;
    const again = resultOf(await runThread(await freshProc(check), thread), "Calling runWorkflow again on a finished thread in a fresh process did not return:");
    const fresh = ledger.entries.slice(entries);
    if (fresh.length > 0) fail(`Resuming a finished thread ran nodes or called providers again: ${show(fresh.map((e) => (e.kind === "run" ? `run ${e.node}` : `call ${e.service}`)))}. A checkpoint with next = [] means the run is over.`);
    if (!isDeepStrictEqual(again.state, finished.state)) fail(`Resuming a finished thread returned ${show(again.state)}; it must return the final state ${show(finished.state)}.`);
    const now = await count();
    if (now !== checkpoints) fail(`Resuming a finished thread wrote ${now - checkpoints} new checkpoint(s); it must write none.`);
  },
);

grader.core(
  "bad input is refused with RecoveryError before anything runs or is saved",
  {
    hint: "Validate the workflow and the options at the boundary (zod): unique node names, known start/next names, a non-empty threadId, input for a new thread, a checkpointId that exists; a router that names an unknown node fails the run with RecoveryError before a checkpoint points at it.",
    section: "minimal-state-routing-position-parent-pointer",
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const isUnitError = (error: unknown) => error instanceof api.RecoveryError && error.message.length > 15;
    const refused = async (what: string, thread: ReturnType<typeof newCase>, extra: Parameters<typeof runThread>[2] = {}) => {
      const outcome = await runThread(proc, thread, extra);
      expectRejects(outcome, isUnitError, what);
      if (thread.world.ledger.entries.length > 0) fail(`${what}, the refused call still ran nodes: ${show(thread.world.ledger.entries.map((e) => (e.kind === "run" ? e.node : e.service)))}. Validate before running anything.`);
      const saved = thread.world.threadId === "" ? [] : await withStore(thread.file, (saver) => allCheckpoints(saver, thread.world.threadId));
      if (saved.length > 0) fail(`${what}, the refused call still saved ${saved.length} checkpoint(s). Validate before saving anything.`);
    };
    const input = orderInput();
    const noInput = newCase(check, "order", input);
    delete noInput.input;
    await refused("For a new thread without options.input", noInput);
    await refused('For a workflow with two nodes named "quote"', newCase(check, "order", input), { workflow: { variant: "duplicate" } });
    await refused("For a workflow whose start names a node it does not define", newCase(check, "order", input), { workflow: { variant: "unknown-start" } });
    await refused("For a workflow whose static next names a node it does not define", newCase(check, "order", input), { workflow: { variant: "unknown-next" } });
    await refused("For a checkpointId the thread does not have", newCase(check, "order", input), { checkpointId: "0190a0f0-0000-7000-8000-000000000000" });
    const empty = newCase(check, "order", input);
    (empty.world as { threadId: string }).threadId = "";
    await refused("For an empty threadId", empty);
    // A router is only known when it runs: the run fails there, and no checkpoint schedules the unknown node.
    const routed = newCase(check, "order", input);
    const outcome = await runThread(proc, routed, { workflow: { variant: "router-unknown" } });
    expectRejects(outcome, isUnitError, 'When the router of "quote" returned a node the workflow does not define');
    const schedules = await withStore(routed.file, async (saver) => (await allCheckpoints(saver, routed.world.threadId)).flatMap((t) => t.checkpoint.next));
    if (schedules.includes("refundDesk")) fail('When the router of "quote" returned the unknown node "refundDesk", a checkpoint was saved with it in next: a resume would then fail on every attempt.');
  },
);

grader.excellence(
  "refusals say what is wrong: the RecoveryError names the missing input, the offending node, field or checkpoint id",
  {
    hint: 'Throw the unit\'s RecoveryError (name "RecoveryError") with a message that names what is wrong: the duplicate or unknown node, the field that fails validation (e.g. a node whose run is not a function), the checkpoint id the thread does not have.',
    section: "minimal-state-routing-position-parent-pointer",
    weight: 1,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const input = orderInput();
    const missing = "0190a0f0-0000-7000-8000-000000000000";
    const noInput = newCase(check, "order", input);
    delete noInput.input;
    const empty = newCase(check, "order", input);
    (empty.world as { threadId: string }).threadId = "";
    const cases: Array<[string, ReturnType<typeof newCase>, Parameters<typeof runThread>[2], RegExp]> = [
      ["For a new thread without options.input", noInput, {}, /input/],
      ['For a workflow with two nodes named "quote"', newCase(check, "order", input), { workflow: { variant: "duplicate" } }, /quote/],
      ['For a workflow whose start names "checkout", which it does not define', newCase(check, "order", input), { workflow: { variant: "unknown-start" } }, /checkout/],
      ['For a workflow whose static next names "refundDesk", which it does not define', newCase(check, "order", input), { workflow: { variant: "unknown-next" } }, /refundDesk/],
      [`For checkpointId ${missing}, which the thread does not have`, newCase(check, "order", input), { checkpointId: missing }, new RegExp(missing)],
      ["For an empty threadId", empty, {}, /threadId/],
      ['For a workflow whose node "quote" has a string instead of a run function', newCase(check, "order", input), { workflow: { variant: "run-not-function" } }, /\brun\b[\s\S]*function|function[\s\S]*\brun\b/],
    ];
    for (const [what, thread, extra, names] of cases) {
      const outcome = await runThread(proc, thread, extra);
      const error = expectRejects(outcome, (e) => e instanceof api.RecoveryError, what);
      const { name, message } = error as Error;
      if (name !== "RecoveryError") fail(`${what}, the error's name is ${show(name)}; the unit's error is named "RecoveryError" (logs and callers tell it apart by name).`);
      if (!names.test(message)) fail(`${what}, the RecoveryError said ${show(message)}; it must say what is wrong, naming ${show(names.source.replace(/\\b/g, ""))}.`);
      if (thread.world.ledger.entries.length > 0) fail(`${what}, the refused call still ran nodes: validate before running anything.`);
    }
    // Found only while running: what a router or a node returned, or a fork of a checkpoint that schedules a node the workflow no longer has.
    const done = newCase(check, "order", input);
    const finished = resultOf(await runThread(proc, done), "An uncrashed run of the order workflow did not finish:");
    const beforeCharge = await withStore(done.file, async (saver) => (await chainFrom(saver, { threadId: done.world.threadId, checkpointId: finished.checkpointId })).find((t) => isDeepStrictEqual(t.checkpoint.next, ["charge"])));
    if (!beforeCharge) return fail('The finished order thread has no checkpoint with next = ["charge"].');
    const running: Array<[string, ReturnType<typeof newCase>, Parameters<typeof runThread>[2], RegExp[]]> = [
      ['When the router of "quote" returned "refundDesk", a node the workflow does not define', newCase(check, "order", input), { workflow: { variant: "router-unknown" } }, [/quote/, /refundDesk/]],
      ['When the router of "quote" returned the string "charge" instead of a list of names', newCase(check, "order", input), { workflow: { variant: "router-string" } }, [/quote/, /"charge"|'charge'/]],
      ['When node "quote" returned an array instead of an object of state updates', newCase(check, "order", input), { workflow: { variant: "bad-update" } }, [/quote/]],
      ['When node "quote" returned a string instead of an object of state updates', newCase(check, "order", input), { workflow: { variant: "text-update" } }, [/quote/]],
      [`When forking checkpoint ${beforeCharge.config.checkpointId}, whose next is ["charge"], with a workflow in which "charge" is now called "payment"`, { ...done, input: undefined }, { checkpointId: beforeCharge.config.checkpointId, workflow: { variant: "renamed" } }, [/charge/]],
    ];
    for (const [what, thread, extra, names] of running) {
      // (A new thread's file does not exist yet: opening it here would create it, owned by the grader.)
      const checkpoints = thread.file !== done.file ? 0 : await countCheckpoints(thread);
      const outcome = await runThread(proc, thread, extra);
      const error = expectRejects(outcome, (e) => e instanceof api.RecoveryError, what);
      const { message } = error as Error;
      if (!names.every((name) => name.test(message))) fail(`${what}, the RecoveryError said ${show(message)}; it must say what is wrong, naming ${names.map((n) => n.source).join(" and ")}.`);
      // A new thread keeps only its input checkpoint; the fork saves nothing at all.
      const added = (await countCheckpoints(thread)) - checkpoints;
      const allowed = checkpoints === 0 ? 1 : 0;
      if (added > allowed) fail(`${what}, the call saved ${added - allowed} checkpoint(s)${allowed ? " besides the input one" : ""}: fail before saving a step (or a fork) that holds what went wrong.`);
    }
  },
);

grader.excellence(
  "checkpoint metadata says where each checkpoint came from: source (input, loop, fork), step and node",
  {
    hint: 'Save metadata with every checkpoint: { source: "input", step: -1 } for the input, { source: "loop", step, node } after each step (node: the step\'s nodes joined by ","), { source: "fork" } for the first checkpoint of a fork. Tools list and filter history by it.',
    section: "minimal-state-routing-position-parent-pointer",
    weight: 1,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const thread = newCase(check, "order", orderInput());
    const threadId = thread.world.threadId;
    const original = resultOf(await runThread(proc, thread), "An uncrashed run of the order workflow did not finish:");
    const chain = await withStore(thread.file, async (saver) => (await chainFrom(saver, { threadId, checkpointId: original.checkpointId })).reverse());
    const expected = [{ source: "input", step: -1 }, ...ORDER_NODES.map((node, step) => ({ source: "loop", step, node }))];
    for (const [index, tuple] of chain.entries()) {
      const want = expected[index];
      const got = Object.fromEntries(Object.keys(want ?? {}).map((key) => [key, (tuple.metadata as Record<string, unknown>)[key]]));
      if (!want || !isDeepStrictEqual(got, want)) fail(`Checkpoint ${index + 1} of the run (next ${show(tuple.checkpoint.next)}) has metadata ${show(tuple.metadata)}; expected ${show(want)} among it.`);
    }
    const forkFrom = chain.find((tuple) => isDeepStrictEqual(tuple.checkpoint.next, ["summarize"]))!;
    const forked = resultOf(await runThread(proc, { ...thread, input: undefined }, { checkpointId: forkFrom.config.checkpointId }), "Forking from an earlier checkpoint did not finish:");
    const branch = await withStore(thread.file, async (saver) => (await chainFrom(saver, { threadId, checkpointId: forked.checkpointId })).reverse());
    const first = branch.find((tuple) => tuple.parentConfig?.checkpointId === forkFrom.config.checkpointId);
    if (first?.metadata.source !== "fork") fail(`The first checkpoint of the fork has metadata ${show(first?.metadata)}; its source must be "fork", so history tools can tell a branch from a step.`);
    // A parallel step: node names every node of the step, in next order, joined by ",".
    const parallel = newCase(check, "parallel", orderInput());
    const done = resultOf(await runThread(proc, parallel), "An uncrashed run of the parallel workflow did not finish:");
    const steps = await withStore(parallel.file, async (saver) => (await chainFrom(saver, { threadId: parallel.world.threadId, checkpointId: done.checkpointId })).reverse());
    const branches = steps.findIndex((tuple) => isDeepStrictEqual(tuple.checkpoint.next, ["fraudCheck", "inventory"]));
    const merged = steps[branches + 1];
    if (branches < 0 || merged?.metadata.node !== "fraudCheck,inventory" || merged.metadata.step !== branches) {
      fail(`In the parallel workflow, the checkpoint saved after the step [fraudCheck, inventory] has metadata ${show(merged?.metadata)}; expected ${show({ source: "loop", step: branches, node: "fraudCheck,inventory" })} among it (node: the step's nodes joined by ",").`);
    }
  },
);

grader.excellence(
  "crash matrix: a crash before, inside or after each of 4 nodes; effects exactly once, pure nodes re-run only when in flight",
  {
    hint: "Only the task in flight at the crash may run again: everything a saved checkpoint or pending write covers must be read back, not recomputed; an effect in flight is retried with its stable key.",
    section: "the-crash-matrix",
    weight: 3,
    timeout: 60_000,
  },
  async (_api, check) => {
    const input = orderInput();
    const expected = finalState("order", input);
    const moments: Moment[] = ["before", "after-work", "after-checkpoint"];
    const points = ORDER_NODES.flatMap((node) => moments.map((moment) => at(moment, node)));
    const runs = await crashAndResume(check, "order", input, points);
    for (const evidence of runs) {
      const { point } = evidence;
      const situation = `After a crash at "${label(point)}" and a resume`;
      const ledger = evidence.thread.world.ledger;
      expectSameState(resumedResult(evidence), expected, situation);
      expectEachEffectOnce(ledger, EFFECT_SERVICES, situation);
      for (const node of ORDER_NODES) {
        const count = ledger.runs(node);
        const allowed = node === point.node && point.moment === "after-work" ? 2 : 1;
        if (count > allowed) {
          fail(`${situation}, node "${node}" ran ${count} times; ${allowed === 2 ? "it was in flight at the crash, so at most twice" : "its result was already saved (or it had not started), so exactly once"}.`);
        }
      }
    }
  },
);

grader.excellence(
  "parallel branches: a branch that finished before the crash is reused from its pending writes, not recomputed",
  {
    hint: "Persist each task's update as soon as it returns (saver.putWrites(config, writes, taskId), taskId from checkpointId + node); on resume, take finished tasks' updates from tuple.pendingWrites and run only the others.",
    section: "parallel-branches-and-pending-writes",
    weight: 2,
    timeout: 15_000,
  },
  async (_api, check) => {
    const input = orderInput();
    const [evidence] = await crashAndResume(check, "parallel", input, [at("before", "inventory")]);
    const situation = `After "fraudCheck" finished and "inventory" crashed in the same step, and a resume`;
    expectSameState(resumedResult(evidence!), finalState("parallel", input), situation);
    const ledger = evidence!.thread.world.ledger;
    const fraudChecks = ledger.runs("fraudCheck");
    if (fraudChecks !== 1) fail(`${situation}, "fraudCheck" ran ${fraudChecks} times: its update was finished before the crash and must be reused from the pending writes.`);
    expectEachEffectOnce(ledger, ["payments"], situation);
  },
);

grader.excellence(
  "a permanently failing step compensates the effects already done, newest first, once each (saga)",
  {
    hint: 'When a node fails for good (after maxAttempts), walk the timeline\'s finished effect tasks and call their compensate() in reverse order, each with a stable key; then save a final checkpoint (next = []) and resolve with status "compensated".',
    section: "compensation-saga",
    weight: 2,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const thread = newCase(check, "saga", orderInput());
    const outcome = await runThread(proc, thread);
    if (outcome.kind !== "finished") fail(`When "ship" failed for good, ${describeOutcome(outcome)}; it must compensate and resolve with status "compensated".`);
    const result = outcome.result;
    if (result.status !== "compensated") fail(`When "ship" failed for good, runWorkflow resolved with status ${show(result.status)}; expected "compensated".`);
    const ledger = thread.world.ledger;
    const ships = ledger.runs("ship");
    if (ships !== 2) fail(`"ship" (maxAttempts 2) ran ${ships} time(s) before the run gave up; expected 2.`);
    const reserveKey = ledger.calls("stock")[0]?.key;
    const chargeKey = ledger.calls("payments")[0]?.key;
    const order = ledger.entries.flatMap((entry) => (entry.kind === "call" && (entry.service === "refunds" || entry.service === "releases") ? [`${entry.service}: ${entry.about}`] : []));
    if (ledger.executed("refunds").length !== 1 || ledger.executed("releases").length !== 1) {
      fail(`Compensation executed ${ledger.executed("refunds").length} refund(s) and ${ledger.executed("releases").length} release(s) (${show(order)}); expected one of each.`);
    }
    if (!isDeepStrictEqual(order, [`refunds: refund ${chargeKey}`, `releases: release ${reserveKey}`])) {
      fail(`The compensations were ${show(order)}; expected the charge refunded first, then the reservation released (reverse order), each naming the key its effect ran with.`);
    }
    expectHonestCompensations(thread.world, "When \"ship\" failed for good");
    if (typeof result.error !== "string" || !result.error.includes("the carrier rejected the parcel")) {
      fail(`The compensated run resolved with error ${show(result.error)}; it must say why the run was compensated: the failing node's error ("the carrier rejected the parcel").`);
    }
    const closing = await withStore(thread.file, async (sv) => {
      const last = await sv.getTuple({ threadId: thread.world.threadId, checkpointId: result.checkpointId });
      return { last, parent: last?.parentConfig && (await sv.getTuple(last.parentConfig)) };
    });
    const meta = (closing.last?.metadata ?? {}) as Record<string, unknown>;
    const parentStep = (closing.parent?.metadata as Record<string, unknown> | undefined)?.step;
    if (!closing.last || closing.last.checkpoint.next.length > 0 || meta.status !== "compensated" || typeof meta.error !== "string" || meta.source !== "loop" || typeof parentStep !== "number" || meta.step !== parentStep + 1) {
      fail(
        `The compensated run ended on checkpoint ${show(result.checkpointId)} with next ${show(closing.last?.checkpoint.next)} and metadata ${show(closing.last?.metadata)} (its parent's step: ${show(parentStep)}); ` +
          `expected the final checkpoint of the thread: next = [], metadata { source: "loop", step: the parent's step + 1, status: "compensated", error }.`,
      );
    }
    const entries = ledger.entries.length;
    const again = resultOf(await runThread(proc, { ...thread, input: undefined }), "Resuming the compensated thread did not return:");
    if (ledger.entries.length !== entries || again.status !== "compensated") {
      fail(`Resuming the compensated thread ran more work or reported ${show(again.status)}; it is finished: return its state with status "compensated".`);
    }
    if (again.error !== result.error) fail(`Resuming the compensated thread returned error ${show(again.error)}; the run that compensated returned ${show(result.error)}: a finished thread returns the same result every time.`);
  },
);

grader.excellence(
  "saga with parallel effects and after a fork: every effect of this timeline is compensated, the parallel ones before the earlier ones, a fork's own effects included",
  {
    hint: "Compensate every finished effect of the failing run's timeline (follow the parent pointers; all tasks of a parallel step), newest step first, with the key each effect ran with. On a fork, the effects the fork itself ran are its own: refund those.",
    section: "compensation-saga",
    weight: 2,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const thread = newCase(check, "sagaParallel", orderInput());
    const outcome = await runThread(proc, thread);
    if (outcome.kind !== "finished" || outcome.result.status !== "compensated") fail(`When "ship" failed for good after two parallel effects, ${outcome.kind === "finished" ? `runWorkflow resolved with status ${show(outcome.result.status)}` : describeOutcome(outcome)}; expected status "compensated".`);
    const ledger = thread.world.ledger;
    const undo = ledger.entries.flatMap((entry) => (entry.kind === "call" && ["voids", "refunds", "cancellations", "releases"].includes(entry.service) ? [entry] : []));
    const services = undo.filter((call) => !call.deduplicated).map((call) => call.service);
    // insure runs beside the failing ship: an executor that stops a step at its first failure may never start it.
    const insured = ledger.executed("insurance").length > 0;
    const middle = insured ? services.slice(1, 3) : services.slice(0, 2);
    if (services.length !== (insured ? 4 : 3) || (insured && services[0] !== "voids") || new Set(middle).size !== 2 || !middle.every((s) => s === "refunds" || s === "cancellations") || services.at(-1) !== "releases") {
      fail(
        `After reserve, then charge and book in parallel, then ship and insure in parallel (ship failing${insured ? ", insure done" : ", insure never started"}), the compensations executed were ${show(undo.map((c) => `${c.service}: ${c.about}`))}; ` +
          `expected ${insured ? "the insurance voided first (it finished in the failing step: an effect done beside the failing task is undone too), then " : ""}one refund and one courier cancellation (either order), then the reservation released last.`,
      );
    }
    expectHonestCompensations(thread.world, "In the saga with parallel effects");
    // A saga after a fork: the original run failed and was compensated; a fork from before the charge charges again and fails again.
    const saga = newCase(check, "saga", orderInput());
    const first = resultOf(await runThread(proc, saga), "The saga workflow did not finish:");
    if (first.status !== "compensated") fail(`The saga workflow ended with status ${show(first.status)}; expected "compensated".`);
    const beforeCharge = await withStore(saga.file, async (sv) => (await chainFrom(sv, { threadId: saga.world.threadId, checkpointId: first.checkpointId })).find((t) => isDeepStrictEqual(t.checkpoint.next, ["charge"])));
    if (!beforeCharge) return fail('The compensated saga thread has no checkpoint with next = ["charge"] to fork from.');
    const forked = resultOf(await runThread(proc, { ...saga, input: undefined }, { checkpointId: beforeCharge.config.checkpointId }), "A fork of the saga from before the charge did not finish:");
    if (forked.status !== "compensated") fail(`The fork of the saga ended with status ${show(forked.status)}; its ship fails too, so expected "compensated".`);
    const charges = saga.world.ledger.executed("payments");
    const refunds = saga.world.ledger.executed("refunds").map((call) => call.about);
    if (charges.length !== 2) fail(`The fork from before the charge executed ${charges.length} charge(s) in all; the original branch charged once and the fork, a branch of its own, once more.`);
    if (!refunds.includes(`refund ${charges[1]!.key}`)) fail(`After the fork's ship failed, the refunds executed were ${show(refunds)}; the fork's own charge (key ${charges[1]!.key}) must be refunded.`);
    // A fork that fails while the original branch completed: the fork's timeline is the shared history up to the fork
    // point (the reservation) and what the fork itself ran (its charge), never the original branch's own effects after
    // the fork point. Collecting every write along the ancestry reaches the original's charge (its task hangs off the
    // checkpoint the fork starts from) and refunds a completed order's payment; above, the original had already
    // been refunded, which hid it.
    const completed = newCase(check, "saga", orderInput());
    completed.world.carrierAccepts = true;
    const done = resultOf(await runThread(proc, completed), "The saga workflow with a carrier that accepts the parcel did not finish:");
    if (done.status !== "completed") fail(`With a carrier that accepts the parcel, the saga workflow ended with status ${show(done.status)}; expected "completed".`);
    const forkFrom = await withStore(completed.file, async (sv) => (await chainFrom(sv, { threadId: completed.world.threadId, checkpointId: done.checkpointId })).find((t) => isDeepStrictEqual(t.checkpoint.next, ["charge"])));
    if (!forkFrom) return fail('The completed saga thread has no checkpoint with next = ["charge"] to fork from.');
    completed.world.carrierAccepts = false;
    const failedFork = resultOf(await runThread(proc, { ...completed, input: undefined }, { checkpointId: forkFrom.config.checkpointId }), "A fork of the completed saga from before the charge did not finish:");
    if (failedFork.status !== "compensated") fail(`A fork of the completed saga whose ship fails ended with status ${show(failedFork.status)}; expected "compensated".`);
    const ledger2 = completed.world.ledger;
    const [originalCharge, forkCharge] = ledger2.executed("payments");
    const [reservation] = ledger2.executed("stock");
    const undone = ledger2.entries.flatMap((entry) => (entry.kind === "call" && !entry.deduplicated && ["refunds", "releases", "cancellations"].includes(entry.service) ? [`${entry.service}: ${entry.about}`] : []));
    if (!originalCharge || !forkCharge || !reservation) return fail(`The completed saga and its fork executed ${ledger2.executed("payments").length} charge(s) and ${ledger2.executed("stock").length} reservation(s); expected two charges, one per branch, and one reservation before the fork point.`);
    const expected = [`refunds: refund ${forkCharge.key}`, `releases: release ${reservation.key}`];
    expectHonestCompensations(saga.world, "In the fork of the compensated saga");
    expectHonestCompensations(completed.world, "In the fork of the completed saga");
    if (!isDeepStrictEqual(undone, expected)) {
      fail(`The original branch completed (reserved, charged with key ${originalCharge.key}, shipped); a fork from before its charge charged again (key ${forkCharge.key}) and failed at ship. The compensations executed were ${show(undone)}; expected ${show(expected)}: the fork's charge, then the reservation its timeline shares, newest first, and never the original branch's charge, which belongs to a completed order.`);
    }
  },
);

grader.excellence(
  "resuming from an earlier checkpoint id forks a new branch; the original history is unchanged and both are reachable through parent pointers",
  {
    hint: "With options.checkpointId older than the latest, save a new checkpoint whose parent is that id (same state and next) and continue from it; never rewrite or delete the checkpoints after it.",
    section: "forks-and-time-travel",
    weight: 2,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const input = orderInput();
    const thread = newCase(check, "order", input);
    const threadId = thread.world.threadId;
    const ledger = thread.world.ledger;
    const original = resultOf(await runThread(proc, thread), "An uncrashed run of the order workflow did not finish:");
    const { before, originalChain } = await withStore(thread.file, async (saver) => ({
      before: await allCheckpoints(saver, threadId),
      originalChain: await chainFrom(saver, { threadId, checkpointId: original.checkpointId }),
    }));
    // checkpointId equal to the latest is a plain resume: on a finished thread, nothing runs and nothing is saved.
    const entriesBefore = ledger.entries.length;
    const plain = resultOf(await runThread(proc, { ...thread, input: undefined }, { checkpointId: original.checkpointId }), "Running a finished thread from its latest checkpoint id did not finish:");
    const afterPlain = await withStore(thread.file, (saver) => allCheckpoints(saver, threadId));
    if (afterPlain.length !== before.length || ledger.entries.length !== entriesBefore || plain.checkpointId !== original.checkpointId) {
      fail(
        `Passing checkpointId = the thread's latest checkpoint (${original.checkpointId}, next = []) ran ${ledger.entries.length - entriesBefore} node/provider call(s), saved ${afterPlain.length - before.length} checkpoint(s) and ended on ${show(plain.checkpointId)}; ` +
          "the latest checkpoint is a plain resume, not a fork: a finished thread returns its result, running and saving nothing.",
      );
    }
    const forkPoint = originalChain.find((tuple) => isDeepStrictEqual(tuple.checkpoint.next, ["summarize"]));
    if (!forkPoint) return fail(`The finished thread has no checkpoint with next = ["summarize"] to fork from (next values: ${show(originalChain.map((t) => t.checkpoint.next))}).`);
    const summaries = ledger.runs("summarize");
    const forked = resultOf(await runThread(proc, { ...thread, input: undefined }, { checkpointId: forkPoint.config.checkpointId }), "Running from an earlier checkpoint did not finish:");
    if (ledger.runs("summarize") !== summaries + 1) {
      fail(`Running from the checkpoint before "summarize" (${forkPoint.config.checkpointId}) ran "summarize" ${ledger.runs("summarize") - summaries} time(s); it must run it once, on a new branch.`);
    }
    if (!isDeepStrictEqual(forked.state, original.state)) fail(`The fork ended with ${show(forked.state)}; replaying "summarize" on the same state must end as the original did: ${show(original.state)}.`);
    await withStore(thread.file, async (saver) => {
      const after = await allCheckpoints(saver, threadId);
      for (const old of before) {
        const still = after.find((tuple) => tuple.config.checkpointId === old.config.checkpointId);
        if (!still || !sameCheckpoint(still, old)) fail(`Forking changed or removed checkpoint ${old.config.checkpointId} of the original history; a fork must only add checkpoints.`);
      }
      if (forked.checkpointId === original.checkpointId || before.some((t) => t.config.checkpointId === forked.checkpointId)) {
        fail(`The fork's result names checkpoint ${forked.checkpointId}, which belongs to the original history: a fork must end on a new checkpoint.`);
      }
      const forkChain = (await chainFrom(saver, { threadId, checkpointId: forked.checkpointId })).map((t) => t.config.checkpointId);
      if (!forkChain.includes(forkPoint.config.checkpointId)) fail(`Following parent pointers from the fork's last checkpoint does not reach the checkpoint it was forked from (${forkPoint.config.checkpointId}).`);
      const stillOriginal = (await chainFrom(saver, { threadId, checkpointId: original.checkpointId })).map((t) => t.config.checkpointId);
      if (!isDeepStrictEqual(stillOriginal, originalChain.map((t) => t.config.checkpointId))) fail("After the fork, the original branch's parent chain changed; it must stay listable as it was.");
    });
    // A fork from before the charge replays it: on the new branch that is a new request, not a retry.
    const beforeCharge = originalChain.find((tuple) => isDeepStrictEqual(tuple.checkpoint.next, ["charge"]));
    if (!beforeCharge) return fail(`The finished thread has no checkpoint with next = ["charge"] to fork from (next values: ${show(originalChain.map((t) => t.checkpoint.next))}).`);
    const replay = resultOf(await runThread(proc, { ...thread, input: undefined }, { checkpointId: beforeCharge.config.checkpointId }), "Forking from the checkpoint before charge did not finish:");
    expectEachEffectOnce(ledger, EFFECT_SERVICES, 'After a fork from the checkpoint before "charge" (the original branch charged once, the fork replays the charge on a branch of its own)', 2);
    if (replay.state.receipt !== "payments#2") fail(`The fork from before "charge" ended with receipt ${show(replay.state.receipt)}; its charge is a separate effect with a key of its own, so the provider's second charge (payments#2).`);
  },
);

/** compensate() was only called for effects that happened, with the key each ran with and the update it returned. */
function expectHonestCompensations(world: World, situation: string): void {
  if (world.compensationIssues.length > 0) fail(`${situation}, ${world.compensationIssues.join("; ")}. CompensationContext.effectKey is the key the effect ran with and effectUpdate the update it returned.`);
}

function sameCheckpoint(a: CheckpointTuple, b: CheckpointTuple): boolean {
  return isDeepStrictEqual(a.checkpoint, b.checkpoint) && a.parentConfig?.checkpointId === b.parentConfig?.checkpointId;
}

grader.excellence(
  "a paused run written by another schema version is never resumed silently: SchemaMismatchError without migrate(), explicit migration with it",
  {
    hint: "Stamp every checkpoint with workflow.schemaVersion; on resume, compare it: migrate(state, fromVersion) when the workflow has one, otherwise throw SchemaMismatchError before running anything.",
    section: "schema-versions-restart-or-migrate",
    weight: 2,
    timeout: 15_000,
  },
  async (api, check) => {
    const input = orderInput();
    const thread = newCase(check, "order", input);
    const point = at("after-checkpoint", "charge");
    const crashed = await runThread(await freshProc(check), thread, { point });
    if (crashed.kind !== "crashed") fail(`The version-1 run was meant to crash at "${label(point)}", but ${describeOutcome(crashed)}.`);
    const threadId = thread.world.threadId;
    const paused = await withStore(thread.file, (saver) => saver.getTuple({ threadId }));
    const stamped = paused?.checkpoint.stateSchemaVersion;
    if (stamped !== 1) fail(`The paused run's latest checkpoint has stateSchemaVersion ${show(stamped)}; stamp each checkpoint with the workflow's schemaVersion (1 here).`);
    const ledger = thread.world.ledger;
    const entries = ledger.entries.length;
    const count = () => countCheckpoints(thread);
    const checkpoints = await count();
    const proc = await sharedProc(api, check);
    const refused = await runThread(proc, thread, { workflow: { version: 2 } });
    const mismatch = expectRejects(refused, (error) => error instanceof api.SchemaMismatchError, "Resuming a version-1 checkpoint with a version-2 workflow that has no migrate()") as InstanceType<RecoveryApi["SchemaMismatchError"]>;
    const pausedId = paused?.config.checkpointId ?? "";
    if (mismatch.name !== "SchemaMismatchError" || mismatch.checkpointVersion !== 1 || mismatch.workflowVersion !== 2 || !mismatch.message.includes(pausedId) || !/migrate/.test(mismatch.message)) {
      fail(
        `Resuming the version-1 checkpoint ${pausedId} with a version-2 workflow threw ${show({ name: mismatch.name, checkpointVersion: mismatch.checkpointVersion, workflowVersion: mismatch.workflowVersion, message: mismatch.message })}; ` +
          'expected the given SchemaMismatchError(1, 2, checkpointId): name "SchemaMismatchError", both versions, and a message naming the checkpoint and the way out (migrate).',
      );
    }
    if (ledger.entries.length !== entries || (await count()) !== checkpoints) fail("The refused version-2 resume still ran nodes or saved checkpoints; refuse before doing anything.");
    // The migrated run crashes again; every checkpoint it wrote must carry version 2, and a second resume must not migrate twice.
    const checkpointsBefore = await withStore(thread.file, async (saver) => new Set((await allCheckpoints(saver, threadId)).map((t) => t.config.checkpointId)));
    const second = at("before", "summarize");
    const again = await runThread(await freshProc(check), thread, { workflow: { version: 2, migrate: true }, point: second });
    if (again.kind !== "crashed") fail(`The migrated version-2 resume was meant to crash at "${label(second)}", but ${describeOutcome(again)}.`);
    const written = await withStore(thread.file, async (saver) => (await allCheckpoints(saver, threadId)).filter((t) => !checkpointsBefore.has(t.config.checkpointId)));
    if (written.length === 0) fail("The migrated resume ran notify but saved no checkpoint after it.");
    const stale = written.filter((t) => t.checkpoint.stateSchemaVersion !== 2);
    if (stale.length > 0) fail(`After migrating to version 2, the resume saved ${stale.length} checkpoint(s) stamped ${show(stale.map((t) => t.checkpoint.stateSchemaVersion))}: every checkpoint written after a migration holds a version-2 state and must say so, or the next resume migrates it again.`);
    const migrated = resultOf(await runThread(await freshProc(check), thread, { workflow: { version: 2, migrate: true } }), "Resuming a second time after the migration");
    const due = migrated.state.amountDue;
    if ("total" in migrated.state || typeof due !== "number" || !String(migrated.state.summary).includes(`${due} paid`)) {
      fail(`Resuming with migrate() (and once more after a crash) ended with ${show(migrated.state)}; the version-1 state must be migrated once (total -> amountDue) before the version-2 nodes run, and a version-2 checkpoint not again.`);
    }
    expectEachEffectOnce(ledger, EFFECT_SERVICES, "After the migrated resume");
  },
);

grader.excellence(
  "recovery-point drift: a resume revalidates the facts a node acts on; when they changed (or cannot be checked) it stops as stale, acting on nothing, and a fork from before the quote re-quotes",
  {
    hint: 'On a resume, call node.revalidate(state, { threadId, checkpointId, node }) before the node\'s first run in that call. false or a throw: run nothing of the step, save nothing, resolve { status: "stale", state, checkpointId, error naming the node }.',
    section: "recovery-point-drift",
    weight: 2,
    timeout: 20_000,
  },
  async (api, check) => {
    const input = orderInput();
    const point = at("after-checkpoint", "quote");
    // Facts unchanged: revalidation says yes and the resume goes on.
    const [calm] = await crashAndResume(check, "order", input, [point]);
    expectSameState(resumedResult(calm!), finalState("order", input), `After a crash at "${label(point)}" and a resume with the price unchanged (charge's revalidate() says the quote is current)`);
    // The tax rate changes while the run is paused: the quote in the checkpoint is stale.
    const thread = newCase(check, "order", input);
    const crashed = await runThread(await freshProc(check), thread, { point });
    if (crashed.kind !== "crashed") fail(`The run was meant to crash at "${label(point)}", but ${describeOutcome(crashed)}.`);
    const { world } = thread;
    const threadId = world.threadId;
    const paused = await withStore(thread.file, (saver) => saver.getTuple({ threadId }));
    if (!paused || !isDeepStrictEqual(paused.checkpoint.next, ["charge"])) return fail(`After a crash at "${label(point)}", the latest checkpoint has next ${show(paused?.checkpoint.next)}; expected ["charge"].`);
    const count = () => countCheckpoints(thread);
    const checkpoints = await count();
    world.taxRate = 110;
    const expectStale = async (outcome: Awaited<ReturnType<typeof runThread>>, situation: string, reason?: RegExp) => {
      const result = resultOf(outcome, `${situation}, the resume`);
      if (result.status !== "stale") fail(`${situation}, the resume ended with status ${show(result.status)} and state ${show(result.state)}; the quote it would charge is stale, so it must stop with status "stale" before charging.`);
      if (!world.revalidations.some((call) => call.node === "charge")) fail(`${situation}, charge's revalidate() was never called; a resume asks it before charge runs.`);
      if (world.ledger.runs("charge") > 0 || world.ledger.calls("payments").length > 0) fail(`${situation}, the resume still ran charge (${world.ledger.calls("payments").length} payment request(s)): a stale step runs nothing.`);
      if (!isDeepStrictEqual(result.state, paused.checkpoint.channelValues) || result.checkpointId !== paused.config.checkpointId) {
        fail(`${situation}, the stale result was state ${show(result.state)} at checkpoint ${show(result.checkpointId)}; expected the state and id of the checkpoint the run stopped at, ${show(paused.checkpoint.channelValues)} at ${paused.config.checkpointId}.`);
      }
      if (typeof result.error !== "string" || !result.error.includes("charge") || (reason && !reason.test(result.error))) {
        fail(`${situation}, the stale result's error was ${show(result.error)}; it must name the node whose facts went stale ("charge")${reason ? ` and say why (${reason.source})` : ""}.`);
      }
      const added = (await count()) - checkpoints;
      if (added !== 0) fail(`${situation}, the resume saved ${added} checkpoint(s); a stale run saves nothing, so the thread stays where it was.`);
    };
    await expectStale(await runThread(await freshProc(check), thread), "When the price changed while the run was paused");
    const context = world.revalidations.at(-1)?.context as Record<string, unknown> | undefined;
    const want = { threadId, checkpointId: paused.config.checkpointId, node: "charge" };
    if (!context || Object.keys(want).some((key) => context[key] !== want[key as keyof typeof want])) {
      fail(`charge's revalidate() got the context ${show(context)}; expected ${show(want)} among it: the thread, the checkpoint that scheduled the node, and the node.`);
    }
    // Still stale on the next resume: nothing was recorded that skips the check.
    const proc = await sharedProc(api, check);
    world.revalidations.length = 0;
    await expectStale(await runThread(proc, thread), "On a second resume with the price still changed");
    world.revalidations.length = 0;
    world.pricingDown = true;
    await expectStale(await runThread(proc, thread), "When the pricing service is down and the quote cannot be revalidated", /pricing service is unavailable/);
    world.pricingDown = false;
    // A fork from before the quote gathers the facts afresh: one charge, at today's price.
    const beforeQuote = await withStore(thread.file, async (saver) => (await chainFrom(saver, { threadId })).find((t) => isDeepStrictEqual(t.checkpoint.next, ["quote"])));
    if (!beforeQuote) return fail('The thread has no checkpoint with next = ["quote"] to fork from.');
    const forked = resultOf(await runThread(proc, { ...thread, input: undefined }, { checkpointId: beforeQuote.config.checkpointId }), "A fork from before the quote, with the new price, did not finish:");
    const total = Math.round(input.amount * 110) / 100;
    if (forked.status !== "completed" || forked.state.total !== total) fail(`The fork from before the quote ended with status ${show(forked.status)} and total ${show(forked.state.total)}; it quotes again at today's rate (${total}) and completes.`);
    const charges = world.ledger.executed("payments");
    if (charges.length !== 1 || !charges[0]!.about.startsWith(`charge ${total} `)) fail(`After the fork, the payments provider executed ${show(charges.map((c) => c.about))}; expected one charge of the fresh total ${total}.`);
  },
);

grader.excellence(
  "recovery is measured: each call reports whether it resumed, from which checkpoint, how it ended and its recovery time; recoveryMetrics gives the hit rate, failure rate, mean and p95 recovery time",
  {
    hint: 'Call options.onReport once per call, refusals included: { threadId, schemaVersion, kind: "start" | "resume", outcome: status or "failed", resumedFrom, recoveryMs (call start to the first node, or to the result) }. recoveryMetrics: over the resumes only; p95 by nearest rank; null when there is nothing to count.',
    section: "measuring-recovery-metrics-and-slos",
    weight: 1,
    timeout: 20_000,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const lastReport = (thread: ReturnType<typeof newCase>, situation: string): RunReport => {
      const { reports } = thread.world;
      if (reports.length !== 1) fail(`${situation}, options.onReport was called ${reports.length} time(s); every call reports once, when it ends.`);
      return reports.pop()!;
    };
    const expectReport = (report: RunReport, want: Omit<RunReport, "recoveryMs">, situation: string) => {
      const got = { threadId: report.threadId, schemaVersion: report.schemaVersion, kind: report.kind, outcome: report.outcome, resumedFrom: report.resumedFrom };
      if (!isDeepStrictEqual(got, want)) fail(`${situation}, the report was ${show(report)}; expected ${show(want)} (and recoveryMs).`);
    };
    /** recoveryMs lies within what the trusted side saw: from sending the call to the first node entering (or the result). */
    const expectRecoveryTime = (thread: ReturnType<typeof newCase>, report: RunReport, situation: string, atLeast = 0) => {
      const { timing } = thread.world;
      const window = (timing.firstRun ?? timing.ended!) - timing.sent;
      const ms = report.recoveryMs;
      if (typeof ms !== "number" || !Number.isFinite(ms) || ms < atLeast || ms > window + 2) {
        fail(`${situation}, recoveryMs was ${show(ms)}; the grader saw ${window.toFixed(1)} ms from the call to ${timing.firstRun === undefined ? "its result" : "the first node starting"}${atLeast > 0 ? `, of which the migration alone took ${atLeast} ms` : ""}: measure from the call's start to the first node (loading and migrating included).`);
      }
    };
    const input = orderInput();
    const started = newCase(check, "order", input);
    const first = resultOf(await runThread(proc, started), "An uncrashed run of the order workflow did not finish:");
    const startReport = lastReport(started, "After a run of a new thread");
    expectReport(startReport, { threadId: started.world.threadId, schemaVersion: 1, kind: "start", outcome: "completed", resumedFrom: null }, "After a run of a new thread");
    if (startReport.recoveryMs !== null) fail(`After a run of a new thread, recoveryMs was ${show(startReport.recoveryMs)}; a start recovers nothing: null.`);
    // A finished thread: a resume that runs nothing, timed to its result.
    resultOf(await runThread(proc, { ...started, input: undefined }), "Resuming the finished thread did not return:");
    const finished = lastReport(started, "After resuming a finished thread");
    expectReport(finished, { threadId: started.world.threadId, schemaVersion: 1, kind: "resume", outcome: "completed", resumedFrom: first.checkpointId }, "After resuming a finished thread");
    expectRecoveryTime(started, finished, "After resuming a finished thread");
    // A checkpoint id the thread does not have: a resume that found nothing usable.
    const missing = "0190a0f0-0000-7000-8000-000000000000";
    await runThread(proc, { ...started, input: undefined }, { checkpointId: missing });
    const miss = lastReport(started, `After a call with checkpointId ${missing}, which the thread does not have`);
    expectReport(miss, { threadId: started.world.threadId, schemaVersion: 1, kind: "resume", outcome: "failed", resumedFrom: null }, `After a call with checkpointId ${missing}, which the thread does not have`);
    if (miss.recoveryMs !== null) fail(`After a refused resume, recoveryMs was ${show(miss.recoveryMs)}; nothing was recovered: null.`);
    // A crash, then resumes in fresh processes: refused for its schema version, then migrated.
    const thread = newCase(check, "order", input);
    const crashed = await runThread(await freshProc(check), thread, { point: at("after-checkpoint", "charge") });
    if (crashed.kind !== "crashed") fail(`The run was meant to crash at "after-checkpoint:charge", but ${describeOutcome(crashed)}.`);
    thread.world.reports.length = 0; // a killed process reports nothing; be lenient about what it sent before
    const paused = await withStore(thread.file, (saver) => saver.getTuple({ threadId: thread.world.threadId }));
    await runThread(proc, thread, { workflow: { version: 2 } });
    const refused = lastReport(thread, "After a version-2 resume of a version-1 checkpoint without migrate()");
    expectReport(refused, { threadId: thread.world.threadId, schemaVersion: 2, kind: "resume", outcome: "failed", resumedFrom: null }, "After a version-2 resume of a version-1 checkpoint without migrate()");
    resultOf(await runThread(await freshProc(check), thread, { workflow: { version: 2, migrate: true } }), "The migrated resume did not finish:");
    const migrated = lastReport(thread, "After a migrated resume in a fresh process");
    expectReport(migrated, { threadId: thread.world.threadId, schemaVersion: 2, kind: "resume", outcome: "completed", resumedFrom: paused?.config.checkpointId ?? "" }, "After a migrated resume in a fresh process");
    expectRecoveryTime(thread, migrated, "After a migrated resume in a fresh process", MIGRATION_MS);
    // A fork continues from the checkpoint it branches off.
    const history = await withStore(started.file, async (saver) => chainFrom(saver, { threadId: started.world.threadId, checkpointId: first.checkpointId }));
    const forkFrom = history.find((t) => isDeepStrictEqual(t.checkpoint.next, ["summarize"]))!;
    resultOf(await runThread(proc, { ...started, input: undefined }, { checkpointId: forkFrom.config.checkpointId }), "A fork from before summarize did not finish:");
    const fork = lastReport(started, "After a fork from before summarize");
    expectReport(fork, { threadId: started.world.threadId, schemaVersion: 1, kind: "resume", outcome: "completed", resumedFrom: forkFrom.config.checkpointId }, "After a fork from the checkpoint before summarize (resumedFrom: the checkpoint forked from)");
    expectRecoveryTime(started, fork, "After a fork from before summarize");
    // onReport is optional: without it a call runs as usual.
    const quiet = newCase(check, "order", input);
    const plain = resultOf(await runThread(proc, quiet, { noReport: true }), "A run without options.onReport did not finish:");
    expectSameState(plain, finalState("order", input), "A run without options.onReport");
    // The dashboard's numbers, from the reports above and from lists made to tell the definitions apart.
    if (!("recoveryMetrics" in api)) fail("The module does not export recoveryMetrics(reports).");
    const real = [startReport, finished, miss, refused, migrated, fork];
    const lists: RunReport[][] = [real, [], [startReport], syntheticReports(20), syntheticReports(7), syntheticReports(13)];
    for (const reports of lists) {
      const got = (await api.recoveryMetrics(reports)) as unknown as Record<string, unknown>;
      const want = expectedMetrics(reports);
      const close = (a: unknown, b: number | null) => (b === null ? a === null : typeof a === "number" && Math.abs(a - b) < 1e-9);
      if (got?.resumes !== want.resumes || !(["hitRate", "failureRate", "meanRecoveryMs", "p95RecoveryMs"] as const).every((k) => close(got[k], want[k]))) {
        fail(`recoveryMetrics of ${reports.length} report(s) (${reports.filter((r) => r.kind === "resume").length} resumes; recoveryMs ${show(reports.map((r) => r.recoveryMs))}) returned ${show(got)}; expected ${show(want)}: over the resumes only, p95 by nearest rank, null when there is nothing to count.`);
      }
    }
  },
);

/** Reports with seeded, unsorted recovery times: failed resumes without one, a stale resume, a 0 ms resume, starts to ignore. */
function syntheticReports(timed: number): RunReport[] {
  const base = { threadId: "t", schemaVersion: 1 } as const;
  const times = Array.from({ length: timed }, (_, i) => (i * 37) % (timed + 11));
  return [
    { ...base, kind: "start", outcome: "completed", resumedFrom: null, recoveryMs: null },
    ...times.map((ms, i): RunReport => ({ ...base, kind: "resume", outcome: i % 5 === 1 ? "stale" : i % 7 === 3 ? "compensated" : "completed", resumedFrom: `c${i}`, recoveryMs: ms })),
    { ...base, kind: "resume", outcome: "failed", resumedFrom: null, recoveryMs: null },
    { ...base, kind: "resume", outcome: "failed", resumedFrom: "c-late", recoveryMs: null },
    { ...base, kind: "start", outcome: "failed", resumedFrom: null, recoveryMs: null },
  ];
}

function expectedMetrics(reports: readonly RunReport[]) {
  const resumes = reports.filter((r) => r.kind === "resume");
  const times = resumes.flatMap((r) => (r.recoveryMs === null ? [] : [r.recoveryMs])).sort((a, b) => a - b);
  const rate = (n: number) => (resumes.length === 0 ? null : n / resumes.length);
  return {
    resumes: resumes.length,
    hitRate: rate(resumes.filter((r) => r.resumedFrom !== null).length),
    failureRate: rate(resumes.filter((r) => r.outcome === "failed").length),
    meanRecoveryMs: times.length === 0 ? null : times.reduce((a, b) => a + b, 0) / times.length,
    p95RecoveryMs: times.length === 0 ? null : times[Math.ceil(0.95 * times.length) - 1]!,
  };
}

if (hiddenChecksEnabled()) (await import("./partial-recovery/hidden.ts")).registerHiddenChecks(grader);
