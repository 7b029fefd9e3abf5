/**
 * Grader of lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 *
 * The submission's runWorkflow runs the grader's workflows: pure nodes (a priced quote, a
 * summary) and effect nodes calling fake providers with an idempotency-key API, all of which
 * append to a ledger file. Crash checks run the workflow in a child process that SIGKILLs itself
 * at a named crash point (#harness/crash.ts), then resume it in a fresh child that shares only
 * the SQLite file and the ledger. Core: checkpoint contents, resume to the same final state,
 * effects not repeated across the effect/checkpoint gap, finished threads, bad input. Excellence:
 * the full crash matrix, pending writes of parallel branches, saga, forks, schema versions.
 */
import { isDeepStrictEqual } from "node:util";
import { MemorySaver, SqliteSaver, type CheckpointTuple } from "#runtime";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeOutcome } from "#harness/crash.ts";
import { crashAndResume, describeMiss, expectEachEffectOnce, expectRejects, expectSameState, fail, finalState, newThreadId, orderInput, resumedResult, runThreads, show } from "./partial-recovery/driver.ts";
import {
  allCheckpoints,
  chainFrom,
  ORDER_EFFECTS,
  expectedStates,
  ORDER_NODES,
  orderWorkflow,
  Probe,
  sagaWorkflow,
  scratch,
  type RecoveryApi,
  type RunResult,
} from "./partial-recovery/fixture.ts";

const grader = defineGrader<RecoveryApi>({ lesson: "lesson-11", unit: "partial-recovery", exports: ["runWorkflow", "RecoveryError", "SchemaMismatchError"] });
const EFFECT_SERVICES = Object.values(ORDER_EFFECTS);

grader.core(
  "each checkpoint stores the state, the node(s) to run next (not the one just finished) and its parent",
  {
    hint: "When a step ends, save one checkpoint: channelValues = the merged state and nothing else, next = the successors of the nodes that just ran ([] at the end), parent = the checkpoint the step started from (pass its id in the config of put()).",
    section: "minimal-state-routing-position-parent-pointer",
    weight: 2,
  },
  async (api) => {
    const input = orderInput();
    const files = scratch();
    const saver = new MemorySaver();
    const threadId = newThreadId("shape");
    let result: RunResult;
    try {
      result = await api.runWorkflow(orderWorkflow({ ledger: files.ledger, probe: new Probe() }), { saver, threadId, input });
    } finally {
      files.remove();
    }
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
  async () => {
    const input = orderInput();
    const expected = finalState("order", input);
    const points = ["before:notify", "after-checkpoint:summarize"];
    const runs = await crashAndResume("order", input, points);
    try {
      for (const evidence of runs) {
        expectSameState(resumedResult(evidence), expected, `After a crash at "${evidence.point}" and a resume in a fresh process`);
      }
    } finally {
      runs.forEach((evidence) => evidence.files.remove());
    }
  },
);

grader.core(
  "a side effect done before the crash is not repeated, even when the crash falls between the effect and its checkpoint",
  {
    hint: "Give each effect an idempotency key derived only from (threadId, checkpointId, node) - no time, no randomness - so the retry after a crash sends the same key and the provider deduplicates it.",
    section: "exactly-once-idempotency-keys-and-a-ledger",
    weight: 3,
    timeout: 20_000,
  },
  async () => {
    const input = orderInput();
    const expected = finalState("order", input);
    const points = ["after-work:charge", "after-work:notify"];
    const runs = await crashAndResume("order", input, points);
    try {
      for (const evidence of runs) {
        const { point } = evidence;
        const situation = `After a crash at "${point}" and a resume`;
        const result = resumedResult(evidence);
        const crashedNode = point.split(":")[1]! as keyof typeof ORDER_EFFECTS;
        const service = ORDER_EFFECTS[crashedNode];
        const keysBefore = evidence.beforeResume.flatMap((entry) => (entry.kind === "call" && entry.service === service ? [entry.key] : []));
        const keysAfter = evidence.files.ledger.calls(service).slice(keysBefore.length).map((call) => call.key);
        if (keysAfter.some((key) => !keysBefore.includes(key))) {
          fail(`${situation}, "${crashedNode}" called the provider with key ${show(keysBefore)} before the crash and ${show(keysAfter)} after it: the key of one step must be the same in every process, so it may hold no time, randomness or attempt number.`);
        }
        expectEachEffectOnce(evidence.files.ledger, EFFECT_SERVICES, situation);
        const keys = EFFECT_SERVICES.map((service) => evidence.files.ledger.calls(service)[0]?.key);
        if (keys[0] === keys[1]) fail(`${situation}, charge and notify used the same idempotency key ${show(keys[0])}: the key must name the node.`);
        expectSameState(result, expected, situation);
      }
    } finally {
      runs.forEach((evidence) => evidence.files.remove());
    }
  },
);

grader.core(
  "resuming a finished thread in a fresh process runs nothing and returns the final state",
  {
    hint: "When the loaded checkpoint's next is empty, return its state (and status) at once: no node, no new checkpoint.",
    section: "save-the-node-to-run-next",
    weight: 2,
  },
  async (api) => {
    const files = scratch();
    const input = orderInput();
    const threadId = newThreadId("finished");
    try {
      const saver = new SqliteSaver(files.dbFile);
      let finished: RunResult;
      let checkpoints: number;
      try {
        finished = await api.runWorkflow(orderWorkflow({ ledger: files.ledger, probe: new Probe() }), { saver, threadId, input });
        checkpoints = (await allCheckpoints(saver, threadId)).length;
      } finally {
        saver.close();
      }
      const entries = files.ledger.entries().length;
      const child = await runThreads([{ workflow: "order", dbFile: files.dbFile, ledgerFile: files.ledger.file, threadId, input }]);
      const again = child.kind === "finished" ? child.result[0] : undefined;
      if (!again?.ok) fail(`Calling runWorkflow again on a finished thread in a fresh process did not return: ${again ? again.message : describeOutcome(child)}.`);
      const fresh = files.ledger.entries().slice(entries);
      if (fresh.length > 0) fail(`Resuming a finished thread ran nodes or called providers again: ${show(fresh.map((e) => (e.kind === "run" ? `run ${e.node}` : `call ${e.service}`)))}. A checkpoint with next = [] means the run is over.`);
      if (!isDeepStrictEqual(again.result.state, finished.state)) fail(`Resuming a finished thread returned ${show(again.result.state)}; it must return the final state ${show(finished.state)}.`);
      const reopened = new SqliteSaver(files.dbFile);
      try {
        const now = (await allCheckpoints(reopened, threadId)).length;
        if (now !== checkpoints) fail(`Resuming a finished thread wrote ${now - checkpoints} new checkpoint(s); it must write none.`);
      } finally {
        reopened.close();
      }
    } finally {
      files.remove();
    }
  },
);

grader.core(
  "bad input is refused with RecoveryError before anything runs or is saved",
  {
    hint: "Validate the workflow and the options at the boundary (zod): unique node names, known start/next names, a non-empty threadId, input for a new thread, a checkpointId that exists. Throw RecoveryError saying what is wrong.",
    section: "minimal-state-routing-position-parent-pointer",
  },
  async (api) => {
    const files = scratch();
    try {
      const world = { ledger: files.ledger, probe: new Probe() };
      const saver = new MemorySaver();
      const valid = orderWorkflow(world);
      const isUnitError = (error: unknown) => error instanceof api.RecoveryError && error.message.length > 15;
      const ids = ["no-input", "duplicate", "start", "unknown-id"].map(newThreadId);
      const cases: Array<[string, () => Promise<unknown>]> = [
        ["For a new thread without options.input", () => api.runWorkflow(valid, { saver, threadId: ids[0]! })],
        ["For a workflow with two nodes named \"quote\"", () => api.runWorkflow({ ...valid, nodes: [...valid.nodes, valid.nodes[0]!] }, { saver, threadId: ids[1]!, input: orderInput() })],
        ["For a workflow whose start names a node it does not define", () => api.runWorkflow({ ...valid, start: ["checkout"] }, { saver, threadId: ids[2]!, input: orderInput() })],
        ["For a checkpointId the thread does not have", () => api.runWorkflow(valid, { saver, threadId: ids[3]!, input: orderInput(), checkpointId: "0190a0f0-0000-7000-8000-000000000000" })],
        ["For an empty threadId", () => api.runWorkflow(valid, { saver, threadId: "", input: orderInput() })],
      ];
      for (const [what, run] of cases) await expectRejects(run, isUnitError, what);
      if (files.ledger.entries().length > 0) fail(`Refused calls still ran nodes: ${show(files.ledger.entries())}. Validate before running anything.`);
      for (const threadId of [...ids, ""]) {
        const saved = await allCheckpoints(saver, threadId).catch(() => []);
        if (saved.length > 0) fail(`A refused call still saved ${saved.length} checkpoint(s) on thread ${show(threadId)}. Validate before saving anything.`);
      }
    } finally {
      files.remove();
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
  async () => {
    const input = orderInput();
    const expected = finalState("order", input);
    const points = ORDER_NODES.flatMap((node) => [`before:${node}`, `after-work:${node}`, `after-checkpoint:${node}`]);
    const runs = await crashAndResume("order", input, points);
    try {
      for (const evidence of runs) {
        const { point } = evidence;
        const situation = `After a crash at "${point}" and a resume`;
        expectSameState(resumedResult(evidence), expected, situation);
        expectEachEffectOnce(evidence.files.ledger, EFFECT_SERVICES, situation);
        const [moment, inFlight] = point.split(":") as [string, string];
        for (const node of ORDER_NODES) {
          const runs = evidence.files.ledger.runs(node);
          const allowed = node === inFlight && moment === "after-work" ? 2 : 1;
          if (runs > allowed) {
            fail(`${situation}, node "${node}" ran ${runs} times; ${allowed === 2 ? "it was in flight at the crash, so at most twice" : "its result was already saved (or it had not started), so exactly once"}.`);
          }
        }
      }
    } finally {
      runs.forEach((evidence) => evidence.files.remove());
    }
  },
);

grader.excellence(
  "parallel branches: a branch that finished before the crash is reused from its pending writes, not recomputed",
  {
    hint: "Save each task's update with saver.putWrites(config, writes, taskId) as soon as it returns (taskId from checkpointId + node); on resume, take finished tasks' updates from tuple.pendingWrites and run only the others.",
    section: "parallel-branches-and-pending-writes",
    weight: 2,
    timeout: 15_000,
  },
  async () => {
    const input = orderInput();
    const expected = finalState("parallel", input);
    const [evidence] = await crashAndResume("parallel", input, ["before:inventory"]);
    try {
      const situation = `After "fraudCheck" finished and "inventory" crashed in the same step, and a resume`;
      expectSameState(resumedResult(evidence!), expected, situation);
      const fraudChecks = evidence!.files.ledger.runs("fraudCheck");
      if (fraudChecks !== 1) fail(`${situation}, "fraudCheck" ran ${fraudChecks} times: its update was finished before the crash and must be reused from the pending writes.`);
      expectEachEffectOnce(evidence!.files.ledger, ["payments"], situation);
    } finally {
      evidence!.files.remove();
    }
  },
);

grader.excellence(
  "a permanently failing step compensates the effects already done, newest first, once each (saga)",
  {
    hint: "When a node fails for good (after maxAttempts), walk the timeline's finished effect tasks and call their compensate() in reverse order, each with a stable key; then save a final checkpoint (next = []) and resolve with status \"compensated\".",
    section: "compensation-saga",
    weight: 2,
  },
  async (api) => {
    const files = scratch();
    const threadId = newThreadId("saga");
    try {
      const saver = new MemorySaver();
      const workflow = sagaWorkflow({ ledger: files.ledger, probe: new Probe() });
      let result: RunResult;
      try {
        result = await api.runWorkflow(workflow, { saver, threadId, input: orderInput() });
      } catch (error) {
        return fail(`When "ship" failed for good, runWorkflow threw ${error instanceof Error ? error.message : String(error)}; it must compensate and resolve with status "compensated".`);
      }
      if (result.status !== "compensated") fail(`When "ship" failed for good, runWorkflow resolved with status ${show(result.status)}; expected "compensated".`);
      const ships = files.ledger.runs("ship");
      if (ships !== 2) fail(`"ship" (maxAttempts 2) ran ${ships} time(s) before the run gave up; expected 2.`);
      const reserveKey = files.ledger.calls("stock")[0]?.key;
      const chargeKey = files.ledger.calls("payments")[0]?.key;
      const undo = files.ledger.entries().filter((entry) => entry.kind === "call" && (entry.service === "refunds" || entry.service === "releases"));
      const order = undo.map((entry) => (entry.kind === "call" ? `${entry.service}: ${entry.about}` : ""));
      if (files.ledger.executed("refunds") !== 1 || files.ledger.executed("releases") !== 1) {
        fail(`Compensation executed ${files.ledger.executed("refunds")} refund(s) and ${files.ledger.executed("releases")} release(s) (${show(order)}); expected one of each.`);
      }
      if (!isDeepStrictEqual(order, [`refunds: refund ${chargeKey}`, `releases: release ${reserveKey}`])) {
        fail(`The compensations were ${show(order)}; expected the charge refunded first, then the reservation released (reverse order), each naming the key its effect ran with.`);
      }
      const entries = files.ledger.entries().length;
      const again = await api.runWorkflow(workflow, { saver, threadId });
      if (files.ledger.entries().length !== entries || again.status !== "compensated") {
        fail(`Resuming the compensated thread ran more work or reported ${show(again.status)}; it is finished: return its state with status "compensated".`);
      }
    } finally {
      files.remove();
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
  async (api) => {
    const files = scratch();
    const threadId = newThreadId("fork");
    try {
      const saver = new MemorySaver();
      const workflow = orderWorkflow({ ledger: files.ledger, probe: new Probe() });
      const input = orderInput();
      const original = await api.runWorkflow(workflow, { saver, threadId, input });
      const before = await allCheckpoints(saver, threadId);
      const originalChain = await chainFrom(saver, { threadId, checkpointId: original.checkpointId });
      const forkPoint = originalChain.find((tuple) => isDeepStrictEqual(tuple.checkpoint.next, ["summarize"]));
      if (!forkPoint) return fail(`The finished thread has no checkpoint with next = ["summarize"] to fork from (next values: ${show(originalChain.map((t) => t.checkpoint.next))}).`);
      const summaries = files.ledger.runs("summarize");
      const forked = await api.runWorkflow(workflow, { saver, threadId, checkpointId: forkPoint.config.checkpointId });
      if (files.ledger.runs("summarize") !== summaries + 1) {
        fail(`Running from the checkpoint before "summarize" (${forkPoint.config.checkpointId}) ran "summarize" ${files.ledger.runs("summarize") - summaries} time(s); it must run it once, on a new branch.`);
      }
      if (!isDeepStrictEqual(forked.state, original.state)) fail(`The fork ended with ${show(forked.state)}; replaying "summarize" on the same state must end as the original did: ${show(original.state)}.`);
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
    } finally {
      files.remove();
    }
  },
);

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
  async (api) => {
    const input = orderInput();
    const point = "after-checkpoint:charge";
    const files = scratch();
    const threadId = newThreadId("schema");
    try {
      const crashed = await runThreads([{ workflow: "order", dbFile: files.dbFile, ledgerFile: files.ledger.file, threadId, input }], point);
      if (crashed.kind !== "crashed") fail(`The version-1 run was meant to crash at "${point}", but ${describeMiss(crashed)}.`);
      const saver = new SqliteSaver(files.dbFile);
      try {
        const stamped = (await saver.getTuple({ threadId }))?.checkpoint.stateSchemaVersion;
        if (stamped !== 1) fail(`The paused run's latest checkpoint has stateSchemaVersion ${show(stamped)}; stamp each checkpoint with the workflow's schemaVersion (1 here).`);
        const entries = files.ledger.entries().length;
        const checkpoints = (await allCheckpoints(saver, threadId)).length;
        const world = { ledger: files.ledger, probe: new Probe() };
        await expectRejects(
          () => api.runWorkflow(orderWorkflow(world, { version: 2 }), { saver, threadId, input }),
          (error) => error instanceof api.SchemaMismatchError,
          "Resuming a version-1 checkpoint with a version-2 workflow that has no migrate()",
        );
        if (files.ledger.entries().length !== entries || (await allCheckpoints(saver, threadId)).length !== checkpoints) {
          fail("The refused version-2 resume still ran nodes or saved checkpoints; refuse before doing anything.");
        }
        const migrated = await api.runWorkflow(orderWorkflow(world, { version: 2, migrate: true }), { saver, threadId, input });
        const due = migrated.state.amountDue;
        if ("total" in migrated.state || typeof due !== "number" || !String(migrated.state.summary).includes(`${due} paid`)) {
          fail(`Resuming with migrate() ended with ${show(migrated.state)}; the version-1 state must be migrated (total -> amountDue) before the version-2 nodes run.`);
        }
        expectEachEffectOnce(files.ledger, EFFECT_SERVICES, "After the migrated resume");
      } finally {
        saver.close();
      }
    } finally {
      files.remove();
    }
  },
);

if (hiddenChecksEnabled()) (await import("./partial-recovery/hidden.ts")).registerHiddenChecks(grader);
