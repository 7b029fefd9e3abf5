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
 *    { threadId, node, effectKey, idempotencyKey, effectUpdate })` of every finished effect of this
 *    timeline (parallel ones included; on a fork, the fork's own), newest first, each once
 *    (`effectKey`: the key the effect ran with; `idempotencyKey`: the compensation's own stable
 *    key), then save a final checkpoint (`next: []`, metadata `status: "compensated"`, `error`) and
 *    resolve with `{ status: "compensated", error }`. Resuming it later returns the same, running
 *    nothing. A crash in the middle of compensating must not repeat an undo.
 * 5. Fork. `checkpointId` older than the latest: save a new checkpoint whose parent is that one
 *    (same state and next, metadata `source: "fork"`) and continue from it; the checkpoints
 *    after it stay as they were. `checkpointId` equal to the latest: a plain resume.
 * 6. Schema versions. A checkpoint stamped with another `stateSchemaVersion` (missing = 1):
 *    call `workflow.migrate(state, fromVersion)` if it exists, otherwise throw
 *    `SchemaMismatchError` before running anything. Checkpoints written after a migration hold
 *    the new version's state and say so.
 * 7. Bad input (duplicate node names, unknown start/next names, empty threadId, a new thread
 *    without input, an unknown checkpointId) throws `RecoveryError` saying what is wrong, before
 *    anything runs or is saved. A router that returns an unknown node fails the run with
 *    `RecoveryError`, and no checkpoint may schedule that node.
 *
 * Resolve with `{ state, status: "completed" | "compensated", checkpointId, error? }`.
 *
 * The grader checks, through behaviour only (it reads the SQLite file and counts what its
 * providers and nodes saw): checkpoint contents (state, next, parent); after a crash, a fresh
 * process resumes to the uncrashed run's final state; an effect is not repeated even when the
 * crash falls between it and its checkpoint; retries reuse the key; two threads on one provider
 * and a loop each execute every effect; a finished thread is a no-op; bad input is refused. For
 * excellent: a crash before each node, after its effect and after its checkpoint (effects
 * exactly once, pure nodes re-run only when in flight); parallel branches reused; saga; fork;
 * schema versions; metadata. Crashes are real: the grader SIGKILLs the process running your code
 * and resumes in a fresh one that shares only the SQLite file.
 */
import { z } from "zod";
import {
  ERROR,
  NO_WRITES,
  newCheckpointId,
  taskIdFor,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
} from "#runtime";

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

const UPDATE = "update";
const COMPENSATED = "compensated";

const nodeSchema = z.object({
  name: z.string().min(1),
  kind: z.enum(["pure", "effect"]),
  run: z.function(),
  compensate: z.function().optional(),
  next: z.union([z.array(z.string()), z.function()]).optional(),
  maxAttempts: z.number().int().min(1).optional(),
});

const workflowSchema = z.object({
  schemaVersion: z.number().int().min(1),
  start: z.array(z.string().min(1)).min(1),
  nodes: z.array(nodeSchema).min(1),
  migrate: z.function().optional(),
});

const optionsSchema = z.object({
  saver: z.custom<CheckpointSaver>((v) => typeof v === "object" && v !== null && typeof (v as CheckpointSaver).getTuple === "function"),
  sqliteFile: z.string().min(1).optional(),
  threadId: z.string().min(1),
  input: z.record(z.string(), z.unknown()).optional(),
  checkpointId: z.string().min(1).optional(),
});

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

function validate<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Map<string, WorkflowNode<S>> {
  const wf = workflowSchema.safeParse(workflow);
  if (!wf.success) throw new RecoveryError(`Invalid workflow: ${describe(wf.error)}`);
  const opts = optionsSchema.safeParse(options);
  if (!opts.success) throw new RecoveryError(`Invalid options: ${describe(opts.error)}`);
  const nodes = new Map<string, WorkflowNode<S>>();
  for (const node of workflow.nodes) {
    if (nodes.has(node.name)) throw new RecoveryError(`Duplicate node name "${node.name}" in the workflow.`);
    nodes.set(node.name, node);
  }
  for (const name of workflow.start) {
    if (!nodes.has(name)) throw new RecoveryError(`workflow.start names unknown node "${name}".`);
  }
  for (const node of workflow.nodes) {
    if (Array.isArray(node.next)) {
      for (const name of node.next) {
        if (!nodes.has(name)) throw new RecoveryError(`Node "${node.name}" has unknown successor "${name}".`);
      }
    }
  }
  return nodes;
}

function effectKey(threadId: string, checkpointId: string, node: string): string {
  return `${threadId}:${checkpointId}:${node}`;
}

function compensationKey(key: string): string {
  return `${key}:compensate`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function uniq(names: readonly string[]): string[] {
  return [...new Set(names)];
}

type TaskOutcome = { ok: true; update: WorkflowState } | { ok: false; error: string };

/** The finished (or permanently failed) tasks of one checkpoint's step, read from its pending writes. */
function savedOutcomes(tuple: CheckpointTuple, names: readonly string[]): Map<string, TaskOutcome> {
  const outcomes = new Map<string, TaskOutcome>();
  for (const name of names) {
    const taskId = taskIdFor(tuple.config.checkpointId, name);
    const writes = tuple.pendingWrites.filter(([id]) => id === taskId);
    const error = writes.find(([, channel]) => channel === ERROR);
    const update = writes.find(([, channel]) => channel === UPDATE);
    if (update) outcomes.set(name, { ok: true, update: (update[2] ?? {}) as WorkflowState });
    else if (writes.some(([, channel]) => channel === NO_WRITES)) outcomes.set(name, { ok: true, update: {} });
    else if (error) outcomes.set(name, { ok: false, error: String(error[2]) });
  }
  return outcomes;
}

interface Position {
  tuple: CheckpointTuple;
  state: WorkflowState;
  /** Pending writes of this checkpoint may be reused (false after a migration: they hold old-shape updates). */
  reuseWrites: boolean;
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const nodes = validate(workflow, options);
  const { saver, threadId } = options;

  // ---- where to continue from
  let tuple: CheckpointTuple | undefined;
  const latest = await saver.getTuple({ threadId });
  if (options.checkpointId !== undefined) {
    tuple = await saver.getTuple({ threadId, checkpointId: options.checkpointId });
    if (!tuple) throw new RecoveryError(`Thread "${threadId}" has no checkpoint "${options.checkpointId}".`);
  } else {
    tuple = latest;
  }

  if (!tuple) {
    if (options.input === undefined) throw new RecoveryError(`Thread "${threadId}" has no checkpoint yet: pass an input to start it.`);
    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: { ...options.input },
      next: uniq(workflow.start),
      stateSchemaVersion: workflow.schemaVersion,
    };
    const metadata: CheckpointMetadata = { source: "input", step: -1 };
    await saver.put({ threadId }, checkpoint, metadata);
    tuple = { config: { threadId, checkpointNs: "", checkpointId: checkpoint.id }, checkpoint, metadata, pendingWrites: [] };
  }

  // ---- schema version
  let state = tuple.checkpoint.channelValues as WorkflowState;
  let reuseWrites = true;
  const storedVersion = tuple.checkpoint.stateSchemaVersion ?? 1;
  if (storedVersion !== workflow.schemaVersion) {
    if (!workflow.migrate) throw new SchemaMismatchError(storedVersion, workflow.schemaVersion, tuple.config.checkpointId);
    state = workflow.migrate(state, storedVersion);
    reuseWrites = false;
  }

  // ---- finished thread: nothing to do
  if (tuple.checkpoint.next.length === 0) return finished<S>(tuple, state);

  for (const name of tuple.checkpoint.next) {
    if (!nodes.has(name)) throw new RecoveryError(`Checkpoint ${tuple.config.checkpointId} schedules unknown node "${name}".`);
  }

  // ---- fork from an older checkpoint
  if (options.checkpointId !== undefined && latest && latest.config.checkpointId !== tuple.config.checkpointId) {
    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: { ...state },
      next: [...tuple.checkpoint.next],
      stateSchemaVersion: workflow.schemaVersion,
    };
    const metadata: CheckpointMetadata = { source: "fork", step: tuple.metadata.step, ...(tuple.metadata.node !== undefined && { node: tuple.metadata.node }) };
    await saver.put({ threadId, checkpointId: tuple.config.checkpointId }, checkpoint, metadata);
    tuple = { config: { threadId, checkpointNs: "", checkpointId: checkpoint.id }, checkpoint, metadata, parentConfig: tuple.config, pendingWrites: [] };
    reuseWrites = true;
  }

  return loop(workflow, nodes, saver, threadId, { tuple, state, reuseWrites });
}

function finished<S extends WorkflowState>(tuple: CheckpointTuple, state: WorkflowState): RunResult<S> {
  const compensated = tuple.metadata.status === COMPENSATED;
  return {
    state: state as S,
    status: compensated ? "compensated" : "completed",
    checkpointId: tuple.config.checkpointId,
    ...(typeof tuple.metadata.error === "string" && { error: tuple.metadata.error }),
  };
}

async function loop<S extends WorkflowState>(
  workflow: Workflow<S>,
  nodes: Map<string, WorkflowNode<S>>,
  saver: CheckpointSaver,
  threadId: string,
  start: Position,
): Promise<RunResult<S>> {
  let { tuple, state, reuseWrites } = start;
  for (;;) {
    const checkpointId = tuple.config.checkpointId;
    const names = tuple.checkpoint.next;
    const config = { threadId, checkpointId };
    const saved = reuseWrites ? savedOutcomes(tuple, names) : new Map<string, TaskOutcome>();

    const outcomes = await Promise.all(
      names.map(async (name): Promise<[string, TaskOutcome]> => {
        const done = saved.get(name);
        if (done) return [name, done];
        const node = nodes.get(name)!;
        const outcome = await runTask(node, state, threadId, checkpointId);
        const taskId = taskIdFor(checkpointId, name);
        if (outcome.ok) await saver.putWrites(config, [[UPDATE, outcome.update]], taskId);
        else await saver.putWrites(config, [[ERROR, outcome.error]], taskId);
        return [name, outcome];
      }),
    );

    const failed = outcomes.find(([, o]) => !o.ok);
    if (failed) {
      const error = `Node "${failed[0]}" failed: ${(failed[1] as { error: string }).error}`;
      return saga(workflow, nodes, saver, threadId, tuple, state, new Map(outcomes), error);
    }

    const merged: WorkflowState = { ...state };
    for (const [, outcome] of outcomes) Object.assign(merged, (outcome as { update: WorkflowState }).update);

    const successors: string[] = [];
    for (const name of names) {
      const node = nodes.get(name)!;
      const next = typeof node.next === "function" ? node.next(merged as S) : (node.next ?? []);
      if (!Array.isArray(next)) throw new RecoveryError(`The router of node "${name}" returned ${JSON.stringify(next)}, not a list of node names.`);
      for (const successor of next) {
        if (typeof successor !== "string" || !nodes.has(successor)) {
          throw new RecoveryError(`The router of node "${name}" returned unknown node ${JSON.stringify(successor)}.`);
        }
        successors.push(successor);
      }
    }

    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: merged,
      next: uniq(successors),
      stateSchemaVersion: workflow.schemaVersion,
    };
    const metadata: CheckpointMetadata = { source: "loop", step: tuple.metadata.step + 1, node: names.join(",") };
    await saver.put(config, checkpoint, metadata);
    tuple = { config: { threadId, checkpointNs: "", checkpointId: checkpoint.id }, checkpoint, metadata, parentConfig: tuple.config, pendingWrites: [] };
    state = merged;
    reuseWrites = true;
    if (checkpoint.next.length === 0) return { state: merged as S, status: "completed", checkpointId: checkpoint.id };
  }
}

async function runTask<S extends WorkflowState>(node: WorkflowNode<S>, state: WorkflowState, threadId: string, checkpointId: string): Promise<TaskOutcome> {
  const maxAttempts = node.maxAttempts ?? 1;
  const idempotencyKey = effectKey(threadId, checkpointId, node.name);
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    try {
      const update = await node.run({ ...state } as S, { threadId, checkpointId, node: node.name, idempotencyKey, attempt });
      return { ok: true, update: (update ?? {}) as WorkflowState };
    } catch (error) {
      lastError = error;
    }
  }
  return { ok: false, error: errorMessage(lastError) };
}

interface FinishedEffect {
  node: string;
  checkpointId: string;
  update: WorkflowState;
}

/** Every finished effect of this timeline, newest first: the failing step's, then back through the parent pointers. */
async function timelineEffects<S extends WorkflowState>(
  nodes: Map<string, WorkflowNode<S>>,
  saver: CheckpointSaver,
  threadId: string,
  failing: CheckpointTuple,
  failingOutcomes: Map<string, TaskOutcome>,
): Promise<FinishedEffect[]> {
  const effects: FinishedEffect[] = [];
  for (const [name, outcome] of failingOutcomes) {
    if (outcome.ok && nodes.get(name)?.kind === "effect") effects.push({ node: name, checkpointId: failing.config.checkpointId, update: outcome.update });
  }
  let parentConfig = failing.parentConfig;
  while (parentConfig) {
    const parent = await saver.getTuple({ threadId, checkpointId: parentConfig.checkpointId });
    if (!parent) break;
    const outcomes = savedOutcomes(parent, parent.checkpoint.next);
    for (const name of parent.checkpoint.next) {
      const outcome = outcomes.get(name);
      if (outcome?.ok && nodes.get(name)?.kind === "effect") {
        effects.push({ node: name, checkpointId: parent.config.checkpointId, update: outcome.update });
      }
    }
    parentConfig = parent.parentConfig;
  }
  return effects;
}

async function saga<S extends WorkflowState>(
  workflow: Workflow<S>,
  nodes: Map<string, WorkflowNode<S>>,
  saver: CheckpointSaver,
  threadId: string,
  failing: CheckpointTuple,
  state: WorkflowState,
  outcomes: Map<string, TaskOutcome>,
  error: string,
): Promise<RunResult<S>> {
  const checkpointId = failing.config.checkpointId;
  const config = { threadId, checkpointId };
  const done = new Set(failing.pendingWrites.filter(([, channel]) => channel === COMPENSATED).map(([, , value]) => String(value)));
  for (const effect of await timelineEffects(nodes, saver, threadId, failing, outcomes)) {
    const node = nodes.get(effect.node)!;
    const key = effectKey(threadId, effect.checkpointId, effect.node);
    const undoKey = compensationKey(key);
    if (done.has(undoKey)) continue;
    if (node.compensate) {
      await node.compensate({ ...state } as S, { threadId, node: effect.node, effectKey: key, idempotencyKey: undoKey, effectUpdate: effect.update });
    }
    await saver.putWrites(config, [[COMPENSATED, undoKey]], taskIdFor(checkpointId, `compensate:${undoKey}`));
    done.add(undoKey);
  }
  const checkpoint: Checkpoint = {
    v: 1,
    id: newCheckpointId(),
    ts: new Date().toISOString(),
    channelValues: { ...state },
    next: [],
    stateSchemaVersion: workflow.schemaVersion,
  };
  const metadata: CheckpointMetadata = {
    source: "loop",
    step: failing.metadata.step + 1,
    node: failing.checkpoint.next.join(","),
    status: COMPENSATED,
    error,
  };
  await saver.put(config, checkpoint, metadata);
  return { state: state as S, status: "compensated", checkpointId: checkpoint.id, error };
}
