/**
 * lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 * Read lessons/lesson-11/partial-recovery.md first.
 *
 * Write `runWorkflow(workflow, { saver, sqliteFile?, threadId, input?, checkpointId? })`, an executor for a
 * workflow of `pure` nodes (may be replayed) and `effect` nodes (charge a card, send an email:
 * must reach the world exactly once), that survives a crash at any point.
 *
 * 1. Start or resume. No checkpoint for `threadId` yet: save the input checkpoint (state =
 *    `input`, next = `workflow.start`, metadata `{ source: "input", step: -1 }`) and run. A
 *    thread with checkpoints: continue from the latest, whatever `input` says. A thread whose
 *    latest checkpoint has `next: []` is finished: return its state, run nothing, save nothing.
 * 2. Steps. The nodes in `next` run as one step (several = parallel branches). Call
 *    `node.run(state, context)` with `context = { threadId, checkpointId, node, idempotencyKey,
 *    attempt }`, where `checkpointId` is the checkpoint whose `next` scheduled the node. When every
 *    node of the step is done, shallow-merge the updates in `next` order and save ONE checkpoint
 *    with `saver.put` (or a SqliteSaver of your own on `options.sqliteFile`, see 3):
 *      - `channelValues`: the merged state, exactly, and nothing else (no history, no ledger);
 *      - `next`: the nodes to run NEXT (each node's `next`, a list or a router over the new
 *        state; duplicates once), not the ones that just finished; `[]` when the run is over;
 *      - the parent pointer: put's config carries the previous checkpoint's id;
 *      - `stateSchemaVersion`: the version of the state it holds; `id: newCheckpointId()`; `v: 1`; `ts`;
 *      - metadata `{ source: "input" | "loop" | "fork", step, node }` (`step` -1 for the input,
 *        then 0, 1, ...; `node`: the step's nodes joined by ",").
 *    A task that finished before a crash is not run again on resume: persist each task's result
 *    as soon as it returns (e.g. `saver.putWrites(config, writes, taskIdFor(checkpointId, node))`,
 *    read back from `tuple.pendingWrites`), so only the task in flight at the crash may run twice.
 * 3. Exactly once. The providers deduplicate by `idempotencyKey`, so the key must be:
 *      - stable: the same on every retry of a task (`node.maxAttempts`, default 1) and after a
 *        crash, in any process;
 *      - distinct: another thread, another iteration of a loop, another branch (a fork) is a
 *        separate effect and needs another key.
 *    Either derive it from where the task sits (thread + checkpoint + node), or generate it once
 *    (e.g. a random UUID) and persist it before the call: in a pending write, or in an outbox row
 *    written in the same SQLite transaction as the checkpoint that schedules the task.
 *    `options.sqliteFile` is the file the saver writes to: open it yourself (better-sqlite3,
 *    `new SqliteSaver(db)`) if your design keeps tables of its own next to the checkpoints.
 * 4. Saga. A node that still throws after `maxAttempts` fails the run: call `compensate(state,
 *    { threadId, node, effectKey, idempotencyKey, effectUpdate })` of every finished effect (kind
 *    "effect": a pure node changed nothing outside, even if it has a compensate) of this
 *    timeline (parallel ones included; on a fork: the shared history before the fork point and what the
 *    fork itself ran, never the original branch's effects after the fork point), newest first, each once
 *    (`effectKey`: the key the effect ran with; `effectUpdate`: the update it returned; a task that
 *    failed, even beside finished ones in the failing step, has nothing to undo; `idempotencyKey`:
 *    the compensation's own stable key), then save a final checkpoint (`next: []`, metadata
 *    `source: "loop"`, the next `step`, `status: "compensated"`, `error`) and resolve with
 *    `{ status: "compensated", error }` (`error` says why: the failing node's error message).
 *    Resuming it later returns the same result, running nothing. A crash in the middle of
 *    compensating must not repeat an undo that had finished (record each before the next starts)
 *    nor run the failed task again.
 * 5. Fork. `checkpointId` older than the latest: save a new checkpoint whose parent is that one
 *    (same state and next, metadata `source: "fork"`) and continue from it; the checkpoints
 *    after it stay as they were. `checkpointId` equal to the latest: a plain resume.
 * 6. Schema versions. A checkpoint stamped with another `stateSchemaVersion` (missing = 1):
 *    call `workflow.migrate(state, fromVersion)` if it exists, otherwise throw
 *    `SchemaMismatchError` before running anything. Checkpoints written after a migration hold
 *    the new version's state and say so.
 * 7. Bad input (duplicate node names, unknown start/next names, empty threadId, a new thread
 *    without input, an unknown checkpointId, a node whose `run` is not a function) throws
 *    `RecoveryError` saying what is wrong (naming the node, the field or the checkpoint id; for a
 *    field that must be a function, that it must be one), before anything runs or is saved. What
 *    is only found while running fails the run with `RecoveryError` before a checkpoint holds it:
 *    a router that returns an unknown node or something other than a list of names (the message
 *    names the router's node and what it returned), a node whose `run` resolves to something other
 *    than an object or nothing (naming the node), a checkpoint to resume or fork that schedules a
 *    node the workflow no longer defines (naming that node).
 *
 * 8. Drift. A node may have `revalidate(state, { threadId, checkpointId, node })`: can the facts it
 *    acts on (a quoted price, a document version) still be trusted? In a call that resumes a
 *    thread (it had checkpoints when the call began), call it before the node's first run in that
 *    call (on every run is fine too). `true`: run it. `false`, or a throw (the check itself cannot
 *    be done): the world moved while the run was paused; do not act on stale facts: run nothing of
 *    that step, save nothing, and resolve `{ status: "stale", state, checkpointId: the checkpoint
 *    the run stopped at, error }` (`error` names the node, and the reason when revalidate threw).
 *    The thread stays where it was: a later resume revalidates again, and a fork from before the
 *    node that gathered the facts gathers them afresh.
 * 9. Metrics. If `options.onReport` is given, every call whose workflow and options are valid
 *    reports once when it ends, refusals and stale runs included: `{ threadId, schemaVersion (the
 *    workflow's), kind, outcome, resumedFrom, recoveryMs }`, where
 *      - `kind`: "resume" when the thread had checkpoints when the call began (a plain resume, a
 *        finished thread, a fork), otherwise "start";
 *      - `outcome`: the RunResult's status, or "failed" when the call threw;
 *      - `resumedFrom`: for a resume, the checkpoint it continued from (the latest, or the one
 *        forked from), or null when none was usable (an unknown checkpointId, a schema version
 *        refused); null for a start;
 *      - `recoveryMs`: for a resume that continued, the milliseconds from the call to the first node
 *        starting (loading, migrating, revalidating included), or to the result when no node ran;
 *        otherwise null.
 *    `recoveryMetrics(reports)` turns a list of reports into the numbers a dashboard shows, over the
 *    resumes only: `resumes` (their count), `hitRate` (share with a resumedFrom), `failureRate`
 *    (share whose outcome is "failed"), `meanRecoveryMs` and `p95RecoveryMs` (over the recoveryMs
 *    that are numbers; p95 by nearest rank: the ceil(0.95 * n)-th smallest). A rate or time with
 *    nothing to average is null.
 *
 * Resolve with `{ state, status: "completed" | "compensated" | "stale", checkpointId, error? }`.
 *
 * The grader checks, through behaviour only (it reads the SQLite file and counts what its
 * providers and nodes saw): checkpoint contents (state, next, parent); after a crash, a fresh
 * process resumes to the uncrashed run's final state; an effect is not repeated even when the
 * crash falls between it and its checkpoint; retries reuse the key; two threads on one provider
 * and a loop each execute every effect; a finished thread is a no-op; bad input is refused. For
 * excellent: a crash before each node, after its effect and after its checkpoint (effects
 * exactly once, pure nodes re-run only when in flight); parallel branches reused; saga; fork;
 * schema versions; metadata; drift (revalidation); the reports and recoveryMetrics. Crashes are real: the grader SIGKILLs the process running your code
 * and resumes in a fresh one that shares only the SQLite file.
 */
import type { CheckpointSaver } from "#runtime";

// ---------------------------------------------------------------- contract types (given)

export type WorkflowState = Record<string, unknown>;
export type NodeKind = "pure" | "effect";

export interface NodeContext {
  threadId: string;
  /** The checkpoint whose `next` scheduled this node. */
  checkpointId: string;
  node: string;
  /** Stable across retries and crashes; distinct across threads, loop iterations and forks. */
  idempotencyKey: string;
  /** 1 on the first try, 2 on the first retry within this process... */
  attempt: number;
}

export interface CompensationContext {
  threadId: string;
  node: string;
  /** The key the effect ran with. */
  effectKey: string;
  /** The compensation's own stable key. */
  idempotencyKey: string;
  /** The update the effect node returned. */
  effectUpdate: WorkflowState;
}

export interface WorkflowNode<S extends WorkflowState = WorkflowState> {
  name: string;
  kind: NodeKind;
  run(state: Readonly<S>, context: NodeContext): Promise<Partial<S> | void> | Partial<S> | void;
  compensate?(state: Readonly<S>, context: CompensationContext): Promise<void> | void;
  /** Successors: names, or a router over the state after the step. Absent or [] = the run ends. */
  next?: readonly string[] | ((state: Readonly<S>) => readonly string[]);
  /** Tries before a failure counts as permanent (default 1). */
  maxAttempts?: number;
  /** Are the facts this node acts on still current? Asked on a resume before the node runs (see 8). */
  revalidate?(state: Readonly<S>, context: { threadId: string; checkpointId: string; node: string }): Promise<boolean> | boolean;
}

export interface Workflow<S extends WorkflowState = WorkflowState> {
  schemaVersion: number;
  start: readonly string[];
  nodes: ReadonlyArray<WorkflowNode<S>>;
  migrate?(state: WorkflowState, fromVersion: number): S;
}

export interface RunOptions<S extends WorkflowState = WorkflowState> {
  saver: CheckpointSaver;
  /** The SQLite file `saver` writes to, for designs that keep their own tables beside it (an outbox). */
  sqliteFile?: string;
  threadId: string;
  /** Starts a thread that has no checkpoint yet; ignored when the thread exists. */
  input?: S;
  /** Continue from this checkpoint instead of the latest; an older one forks. */
  checkpointId?: string;
  /** Receives one RunReport when the call ends (see 9). */
  onReport?(report: RunReport): void;
}

export type RunStatus = "completed" | "compensated" | "stale";

export interface RunResult<S extends WorkflowState = WorkflowState> {
  state: S;
  status: RunStatus;
  checkpointId: string;
  error?: string;
}

/** One runWorkflow call, as the executor reports it for recovery metrics (see 9). */
export interface RunReport {
  threadId: string;
  schemaVersion: number;
  kind: "start" | "resume";
  outcome: RunStatus | "failed";
  resumedFrom: string | null;
  recoveryMs: number | null;
}

export interface RecoveryMetrics {
  resumes: number;
  hitRate: number | null;
  failureRate: number | null;
  meanRecoveryMs: number | null;
  p95RecoveryMs: number | null;
}

// ---------------------------------------------------------------- errors (given)

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

export class SchemaMismatchError extends RecoveryError {
  override name = "SchemaMismatchError";
  constructor(
    readonly checkpointVersion: number,
    readonly workflowVersion: number,
    checkpointId: string,
  ) {
    super(
      `Checkpoint ${checkpointId} was written by state schema version ${checkpointVersion}, but the workflow is now version ${workflowVersion}: ` +
        `give the workflow migrate(state, fromVersion), or start again on a new thread.`,
    );
  }
}

// ---------------------------------------------------------------- your code

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  // TODO 1: validate workflow and options (zod); throw RecoveryError on bad input.
  // TODO 2: load the latest checkpoint (or options.checkpointId, forking if it is older), or save the input checkpoint.
  // TODO 3: loop over steps: run unfinished tasks with a stable idempotency key, putWrites each update,
  //         then put one checkpoint with the merged state, the NEXT nodes and the parent pointer.
  // TODO 4: on a permanent failure, compensate finished effects newest first and close the thread.
  // TODO 5: on a resume, revalidate before a node runs (stale: stop, save nothing); report the call to options.onReport.
  void workflow;
  void options;
  throw new Error("TODO: implement runWorkflow (see the contract at the top of this file)");
}

export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  // TODO 6: the dashboard's numbers over the resumes (see 9).
  void reports;
  throw new Error("TODO: implement recoveryMetrics (see 9 in the contract at the top of this file)");
}
