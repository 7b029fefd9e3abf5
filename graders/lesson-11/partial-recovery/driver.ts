/**
 * What the partial-recovery checks do over and over: seeded inputs, the expected final state,
 * and "crash a child at point X, then resume in a fresh child" with its evidence collected.
 */
import { isDeepStrictEqual } from "node:util";
import { fileURLToPath } from "node:url";
import { describeOutcome, inParallel, runChild, type ChildOutcome } from "#harness/crash.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import type { ThreadOutcome, ThreadRun } from "./child.ts";
import { expectedStates, scratch, type Ledger, type LedgerEntry, type OrderInput, type RunResult, type Scratch, type WorkflowName } from "./fixture.ts";

export const CHILD_ENTRY = fileURLToPath(new URL("./child.ts", import.meta.url));
const random = seededRandom();
let threads = 0;

export function newThreadId(label: string): string {
  threads += 1;
  return `${label}-${threads}-${Math.floor(random() * 1e6)}`;
}

/** A seeded order: amounts with cents, from small to large. */
export function orderInput(): OrderInput {
  return { orderId: `order-${Math.floor(random() * 1e5)}`, amount: Math.round((5 + random() * 495) * 100) / 100 };
}

export function fail(message: string): never {
  throw new Error(withSeed(message));
}

export function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

/** The state an uncrashed run of the workflow ends with, for this input. */
export function finalState(workflow: WorkflowName, input: OrderInput): Record<string, unknown> {
  return expectedStates(workflow, input).at(-1)!;
}

export interface CrashEvidence {
  point: string;
  files: Scratch;
  run: ThreadRun;
  /** Ledger entries written by the process that crashed. */
  beforeResume: LedgerEntry[];
  resumed: ThreadOutcome;
}

/** Runs threads in one child process (crashing at `crashAt`, if given); one outcome per thread, or the process's own failure. */
export async function runThreads(runs: ThreadRun[], crashAt?: string): Promise<ChildOutcome<ThreadOutcome[]>> {
  return runChild<ThreadOutcome[]>({ entry: CHILD_ENTRY, args: runs, timeoutMs: 5_000 + 2_000 * runs.length, ...(crashAt !== undefined && { crashAt }) });
}

export function newRun(workflow: WorkflowName, input: OrderInput, files: Scratch, label: string): ThreadRun {
  return { workflow, dbFile: files.dbFile, ledgerFile: files.ledger.file, threadId: newThreadId(label), input };
}

/**
 * For each crash point: a child runs the workflow on a thread of its own and kills itself at that
 * point. Then fresh children (two, sharing the work) resume every crashed thread from its SQLite
 * file and ledger alone. The caller removes the evidence's files.
 */
export async function crashAndResume(workflow: WorkflowName, input: OrderInput, points: readonly string[]): Promise<CrashEvidence[]> {
  const cases = points.map((point) => {
    const files = scratch();
    return { point, files, run: newRun(workflow, input, files, `crash-${point.replace(/[^a-z]+/gi, "-")}`) };
  });
  const removeAll = () => cases.forEach(({ files }) => files.remove());
  const crashes = await inParallel(cases.map(({ run, point }) => () => runThreads([run], point)));
  for (const [index, crashed] of crashes.entries()) {
    if (crashed.kind === "crashed") continue;
    removeAll();
    const { point } = cases[index]!;
    const reached = crashed.kind === "finished" && crashed.result[0]?.ok === true;
    return fail(`The "${workflow}" workflow was started to crash at "${point}", but ${describeMiss(crashed)}.${reached ? ` ${hintFor(point)}` : ""}`);
  }
  const beforeResume = cases.map(({ files }) => files.ledger.entries());
  const half = Math.ceil(cases.length / 2);
  const batches = [cases.slice(0, half), cases.slice(half)].filter((batch) => batch.length > 0);
  const resumed = await inParallel(batches.map((batch) => () => runThreads(batch.map(({ run }) => run))));
  const outcomes = batches.flatMap((batch, index) => {
    const outcome = resumed[index]!;
    return batch.map((_, position): ThreadOutcome => (outcome.kind === "finished" ? outcome.result[position]! : { ok: false, message: describeOutcome(outcome) }));
  });
  return cases.map((item, index) => ({ ...item, beforeResume: beforeResume[index]!, resumed: outcomes[index]! }));
}

/** Why a child meant to crash did not: it finished, runWorkflow threw, or the process died otherwise. */
export function describeMiss(outcome: ChildOutcome<ThreadOutcome[]>): string {
  if (outcome.kind !== "finished") return describeOutcome(outcome);
  const thread = outcome.result[0];
  if (!thread) return "the process reported no result";
  return thread.ok ? "the run finished without reaching it" : `runWorkflow threw ${thread.message}`;
}

function hintFor(point: string): string {
  if (point.startsWith("after-checkpoint:")) return `That point is the first checkpoint saved after node "${point.slice(17)}" returned: save one when each step ends.`;
  return "Every node of the workflow must run once in an uncrashed run.";
}

/** The resumed run's result, or a failure naming the crash point and what the fresh process did. */
export function resumedResult(evidence: CrashEvidence): RunResult {
  if (!evidence.resumed.ok) {
    return fail(`After a crash at "${evidence.point}", a fresh process called runWorkflow on the same thread and SQLite file, and ${evidence.resumed.message.startsWith("it ") ? evidence.resumed.message : `it threw ${evidence.resumed.message}`}.`);
  }
  return evidence.resumed.result;
}

export function expectSameState(actual: RunResult, expected: Record<string, unknown>, situation: string): void {
  if (!isDeepStrictEqual(actual.state, expected)) {
    fail(`${situation}, the final state was ${show(actual.state)}; an uncrashed run of the same input ends with ${show(expected)}, each effect executed once.`);
  }
  if (actual.status !== "completed") fail(`${situation}, runWorkflow reported status ${show(actual.status)}; the run completed, so it must be "completed".`);
}

/** Every provider of the workflow executed exactly one call, whatever was retried. */
export function expectEachEffectOnce(ledger: Ledger, services: readonly string[], situation: string): void {
  for (const service of services) {
    const calls = ledger.calls(service);
    const executed = calls.filter((call) => !call.deduplicated);
    if (executed.length !== 1) {
      const keys = [...new Set(calls.map((call) => call.key))];
      fail(
        `${situation}, the ${service} provider executed ${executed.length} request(s) (keys ${show(keys)}); it must execute exactly one. ` +
          (keys.length > 1 ? "The retry after the crash came with a different idempotency key, so the provider could not recognise it." : ""),
      );
    }
  }
}

export async function expectRejects(run: () => Promise<unknown>, check: (error: unknown) => boolean, what: string): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    if (!check(error)) fail(`${what}, runWorkflow threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}, not the unit's error (RecoveryError or its subclass).`);
    return error;
  }
  return fail(`${what}, runWorkflow resolved; it must reject with the unit's error.`);
}
