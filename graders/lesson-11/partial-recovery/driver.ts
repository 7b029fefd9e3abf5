/**
 * What the partial-recovery checks do over and over: seeded inputs, the expected final state,
 * a thread run in a learner process, and "crash a learner process at point X, then resume in a
 * fresh one" with its evidence collected. A resume process shares nothing with the crashed one
 * but the SQLite file in the unit's scratch folder (and the trusted side's ledger).
 */
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { CheckContext } from "#harness/check.ts";
import { describeOutcome, inParallel, untilCrash, type CrashOutcome } from "#harness/crash.ts";
import { failWithSeed as fail, seededRandom } from "#harness/seed.ts";
import type { LearnerProcess } from "../../../kit/sandbox/learner.ts";
import { allCheckpoints, expectedStates, label, Ledger, newDbFile, withStore, World, type CrashPoint, type LearnerFixture, type LedgerEntry, type OrderInput, type RecoveryApi, type RunReport, type RunResult, type WorkflowName } from "./fixture.ts";
import type { WorkflowOptions } from "./learner-fixture.ts";

const random = seededRandom();

/** An opaque thread id: names no check and no crash point. */
export function newThreadId(): string {
  return randomBytes(6).toString("hex");
}

/** A seeded order: amounts with cents, from small to large. */
export function orderInput(): OrderInput {
  return { orderId: `order-${Math.floor(random() * 1e5)}`, amount: Math.round((5 + random() * 495) * 100) / 100 };
}

export { fail };

export function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

/** The state an uncrashed run of the workflow ends with, for this input. */
export function finalState(workflow: WorkflowName, input: OrderInput): Record<string, unknown> {
  return expectedStates(workflow, input).at(-1)!;
}

/** A learner process with the unit and the grader's learner-side fixture loaded. */
export interface Proc {
  learner: LearnerProcess;
  api: RecoveryApi;
  f: LearnerFixture;
}

export const FIXTURE = "recovery";

export async function sharedProc(api: RecoveryApi, check: CheckContext<RecoveryApi>): Promise<Proc> {
  return { learner: check.learner, api, f: await check.fixture<LearnerFixture>(FIXTURE) };
}

export async function freshProc(check: CheckContext<RecoveryApi>): Promise<Proc> {
  const { learner, api } = await check.spawn();
  return { learner, api, f: await check.fixture<LearnerFixture>(FIXTURE, learner) };
}

export interface ThreadCase {
  world: World;
  file: string;
  input?: Record<string, unknown>;
}

export function newCase(check: CheckContext<RecoveryApi>, workflow: WorkflowName, input: OrderInput, options: { ledger?: Ledger; workflow?: WorkflowOptions } = {}): ThreadCase {
  const world = new World(workflow, newThreadId(), options.ledger ?? new Ledger(), options.workflow ?? {});
  world.waitLimitMs *= check.slowness;
  return { world, file: newDbFile(check.scratch), input };
}

/** Runs (or resumes) one thread in `proc`, armed to crash at `point` if given. */
export async function runThread(proc: Proc, thread: ThreadCase, extra: { point?: CrashPoint; checkpointId?: string; workflow?: WorkflowOptions; noReport?: boolean } = {}): Promise<CrashOutcome<RunResult>> {
  const { world } = thread;
  if (extra.workflow) world.options = extra.workflow;
  world.arm(proc.learner, extra.point);
  const hooks = world.hooks();
  const saver = await proc.f.openSaver(thread.file, hooks);
  const workflow = await proc.f.workflow(world.workflow, hooks, world.options);
  const options = {
    saver,
    sqliteFile: thread.file,
    threadId: world.threadId,
    ...(thread.input !== undefined && { input: thread.input }),
    ...(extra.checkpointId !== undefined && { checkpointId: extra.checkpointId }),
    ...(!extra.noReport && { onReport: (report: RunReport) => void world.reports.push(report) }),
  };
  world.timing.sent = performance.now();
  delete world.timing.firstRun;
  delete world.timing.ended;
  const outcome = await untilCrash(proc.learner, proc.api.runWorkflow(workflow as never, options as never) as Promise<RunResult>);
  world.timing.ended = performance.now();
  return outcome;
}

/** The run's result, or a failure saying what happened instead. */
export function resultOf(outcome: CrashOutcome<RunResult>, what: string): RunResult {
  if (outcome.kind === "finished") return outcome.result;
  return fail(`${what}, ${describeOutcome(outcome)}.`);
}

export interface CrashEvidence {
  point: CrashPoint;
  thread: ThreadCase;
  /** Ledger entries made by the process that crashed. */
  beforeResume: LedgerEntry[];
  resumed: CrashOutcome<RunResult>;
}

/**
 * For each crash point: a fresh learner process runs the workflow on a thread of its own and is
 * killed at that point. Then fresh processes (two, sharing the work) resume every crashed thread
 * from its SQLite file alone: they never ran any of them.
 */
export async function crashAndResume(check: CheckContext<RecoveryApi>, workflow: WorkflowName, input: OrderInput, points: readonly CrashPoint[]): Promise<CrashEvidence[]> {
  const cases = points.map((point) => ({ point, thread: newCase(check, workflow, input) }));
  const crashes = await inParallel(
    cases.map(({ point, thread }) => async () => {
      const victim = await freshProc(check);
      const outcome = await runThread(victim, thread, { point });
      // An executor that saves through its own connection reaches the end of the last step without
      // telling the given saver: the crash after the last checkpoint is then a crash after the run.
      if (outcome.kind === "finished" && point.moment === "after-checkpoint" && thread.world.checkpointCrashPending) {
        victim.learner.kill("SIGKILL");
        await victim.learner.exited;
        return { kind: "crashed" } as const;
      }
      return outcome;
    }),
  );
  for (const [index, crashed] of crashes.entries()) {
    if (crashed.kind === "crashed") continue;
    const { point } = cases[index]!;
    return fail(`The "${workflow}" workflow was started to crash at "${label(point)}", but ${crashed.kind === "finished" ? `the run finished without reaching it. ${hintFor(point)}` : describeOutcome(crashed)}.`);
  }
  const beforeResume = cases.map(({ thread }) => [...thread.world.ledger.entries]);
  const half = Math.ceil(cases.length / 2);
  const batches = [cases.slice(0, half), cases.slice(half)].filter((batch) => batch.length > 0);
  const resumed = await inParallel(
    batches.map((batch) => async () => {
      const proc = await freshProc(check);
      const outcomes: Array<CrashOutcome<RunResult>> = [];
      for (const { thread } of batch) outcomes.push(await runThread(proc, thread));
      return outcomes;
    }),
  );
  const outcomes = resumed.flat();
  return cases.map((item, index) => ({ ...item, beforeResume: beforeResume[index]!, resumed: outcomes[index]! }));
}

function hintFor(point: CrashPoint): string {
  if (point.moment === "after-checkpoint") return `That point is the checkpoint saved after node "${point.node}" returned: save one when each step ends.`;
  return "Every node of the workflow must run once in an uncrashed run.";
}

/** The resumed run's result, or a failure naming the crash point and what the fresh process did. */
export function resumedResult(evidence: CrashEvidence): RunResult {
  return resultOf(evidence.resumed, `After a crash at "${label(evidence.point)}", a fresh process called runWorkflow on the same thread and SQLite file, and`);
}

export function expectSameState(actual: RunResult, expected: Record<string, unknown>, situation: string): void {
  if (!isDeepStrictEqual(actual.state, expected)) {
    fail(`${situation}, runWorkflow resolved with status ${show(actual.status)}${actual.error ? ` (${actual.error})` : ""} and the final state was ${show(actual.state)}; an uncrashed run of the same input ends with ${show(expected)}, each effect executed once.`);
  }
  if (actual.status !== "completed") fail(`${situation}, runWorkflow reported status ${show(actual.status)}; the run completed, so it must be "completed".`);
}

/** Every provider of the workflow executed exactly one call, whatever was retried. */
export function expectEachEffectOnce(ledger: Ledger, services: readonly string[], situation: string, times = 1): void {
  for (const service of services) {
    const calls = ledger.calls(service);
    const executed = ledger.executed(service);
    if (executed.length !== times) {
      const keys = [...new Set(calls.map((call) => call.key))];
      fail(
        `${situation}, the ${service} provider executed ${executed.length} request(s) (keys ${show(keys)}); it must execute exactly ${times}. ` +
          (executed.length > times && keys.length > 1 ? "A retry came with a different idempotency key, so the provider could not recognise it." : "") +
          (executed.length < times ? "Separate effects were sent with the same idempotency key, so the provider took one for a retry of the other." : ""),
      );
    }
  }
}

/** The error a call that must be refused rejected with (checked by `check`), or a failure saying what it did instead. */
export function expectRejects(outcome: CrashOutcome<RunResult>, check: (error: unknown) => boolean, what: string): unknown {
  if (outcome.kind === "finished") return fail(`${what}, runWorkflow resolved; it must reject with the unit's error.`);
  if (outcome.kind !== "failed") return fail(`${what}, ${describeOutcome(outcome)}.`);
  const { error } = outcome;
  if (!check(error)) fail(`${what}, runWorkflow threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}, not the unit's error (RecoveryError or its subclass).`);
  return error;
}

/** How many checkpoints the thread's SQLite file holds, read from the trusted side. */
export function countCheckpoints(thread: ThreadCase): Promise<number> {
  return withStore(thread.file, async (saver) => (await allCheckpoints(saver, thread.world.threadId)).length);
}
