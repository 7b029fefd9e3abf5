/**
 * lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 * Read lessons/lesson-11/partial-recovery.md first.
 *
 * Write `runWorkflow(workflow, { saver, threadId, input?, checkpointId? })`, an executor for a
 * workflow of `pure` nodes (may be replayed) and `effect` nodes (charge a card, send an email:
 * must reach the world exactly once), that survives a crash at any point.
 *
 * 1. Start or resume. No checkpoint for `threadId` yet: save the input checkpoint (state =
 *    `input`, next = `workflow.start`, metadata `{ source: "input", step: -1 }`) and run. A
 *    thread with checkpoints: continue from the latest, whatever `input` says. A thread whose
 *    latest checkpoint has `next: []` is finished: return its state, run nothing, save nothing.
 * 2. Steps. The nodes in `next` run as one step (several = parallel branches). Call
 *    `node.run(state, context)` with `context = { threadId, checkpointId, node, idempotencyKey,
 *    attempt }`, where `checkpointId` is the checkpoint whose `next` scheduled the node. When a
 *    node returns, save its update at once: `saver.putWrites({ threadId, checkpointId }, writes,
 *    taskIdFor(checkpointId, node))` (taskIdFor from #runtime). When every node of the step is
 *    done, shallow-merge the updates in `next` order and save ONE checkpoint with `saver.put`:
 *      - `channelValues`: the merged state, exactly, and nothing else (no history, no ledger);
 *      - `next`: the nodes to run NEXT (each node's `next`, a list or a router over the new
 *        state; duplicates once), not the ones that just finished; `[]` when the run is over;
 *      - the parent pointer: put's config carries the previous checkpoint's id;
 *      - `stateSchemaVersion: workflow.schemaVersion`; `id: newCheckpointId()`; `v: 1`; `ts`;
 *      - metadata `{ source: "loop", step, node }` (`node`: the step's nodes joined by ",").
 *    On resume, a task of the current step whose update is already in `tuple.pendingWrites` is
 *    not run again: use the saved update.
 * 3. Exactly once. `idempotencyKey` is derived from (threadId, checkpointId, node) only, e.g.
 *    `${threadId}:${checkpointId}:${node}`: no time, no randomness, no attempt number. After a
 *    crash between an effect and its checkpoint, the retry sends the same key and the provider
 *    deduplicates it. Retries (`node.maxAttempts`, default 1) reuse the key.
 * 4. Saga. A node that still throws after `maxAttempts` fails the run: save its error as a
 *    pending write (channel ERROR from #runtime), call `compensate(state, { threadId, node,
 *    effectKey, idempotencyKey, effectUpdate })` of every finished effect of this timeline, newest
 *    first, each once (`idempotencyKey`: stable, e.g. effectKey + ":compensate"), then save a
 *    final checkpoint (`next: []`, metadata `status: "compensated"`, `error`) and resolve with
 *    `{ status: "compensated", error }`. Resuming it later returns the same, running nothing.
 * 5. Fork. `checkpointId` older than the latest: save a new checkpoint whose parent is that one
 *    (same state and next, metadata `source: "fork"`) and continue from it; the checkpoints
 *    after it stay as they were. `checkpointId` equal to the latest: a plain resume.
 * 6. Schema versions. A checkpoint stamped with another `stateSchemaVersion` (missing = 1):
 *    call `workflow.migrate(state, fromVersion)` if it exists, otherwise throw
 *    `SchemaMismatchError` before running anything.
 * 7. Bad input (duplicate node names, unknown start/next names, empty threadId, a new thread
 *    without input, an unknown checkpointId, a router naming an unknown node) throws
 *    `RecoveryError` saying what is wrong. Validate with zod before doing anything.
 *
 * Resolve with `{ state, status: "completed" | "compensated", checkpointId, error? }`.
 *
 * The grader checks: checkpoint contents (state, next, parent); after a crash, a fresh process
 * resumes to the uncrashed run's final state; an effect is not repeated even when the crash falls
 * between it and its checkpoint; a finished thread is a no-op; bad input is refused. For
 * excellent: a crash before, inside and after each of 4 nodes (effects exactly once, pure nodes
 * re-run only when in flight); parallel branches reused from pending writes; saga; fork; schema
 * versions. Crashes are real: the grader SIGKILLs a child process and resumes in a fresh one.
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
  /** Derived from (threadId, checkpointId, node) only. */
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
}

export interface Workflow<S extends WorkflowState = WorkflowState> {
  schemaVersion: number;
  start: readonly string[];
  nodes: ReadonlyArray<WorkflowNode<S>>;
  migrate?(state: WorkflowState, fromVersion: number): S;
}

export interface RunOptions<S extends WorkflowState = WorkflowState> {
  saver: CheckpointSaver;
  threadId: string;
  /** Starts a thread that has no checkpoint yet; ignored when the thread exists. */
  input?: S;
  /** Continue from this checkpoint instead of the latest; an older one forks. */
  checkpointId?: string;
}

export type RunStatus = "completed" | "compensated";

export interface RunResult<S extends WorkflowState = WorkflowState> {
  state: S;
  status: RunStatus;
  checkpointId: string;
  error?: string;
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
  void workflow;
  void options;
  throw new Error("TODO: implement runWorkflow (see the contract at the top of this file)");
}
