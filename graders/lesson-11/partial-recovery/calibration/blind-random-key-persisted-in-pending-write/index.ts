/**
 * lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 *
 * Design: the idempotency key is a random V4 UUID drawn ONCE per task and made durable before
 * the call, as a pending write of the task on the checkpoint that scheduled it. A resumed
 * process reads the stored key instead of drawing a new one; a fork or the next pass of a loop
 * is a new checkpoint, hence a new task with no stored key, hence a new key. The ledger of finished tasks is the
 * checkpointer's own pending writes (one `task_result` write per task, saved as soon as the
 * node returns, under the deterministic task id). Saga progress (the decision to compensate,
 * then each finished undo) is recorded as pending writes on the failing step's checkpoint, so a
 * crash in the middle of compensating resumes the saga instead of re-running the failed node
 * or repeating an undo.
 * Drift: on a resume, a node with revalidate() is asked before its first run in the call; a "no"
 * (or a throw) stops the run as stale before anything of that step is run or written. Each
 * validated call is reported to options.onReport when it ends (recoveryMetrics() summarises the
 * reports).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { newCheckpointId, taskIdFor, type Checkpoint, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple } from "#runtime";

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

/** Pending-write channels of this executor (regular channels: the first write of a slot is kept). */
const RESULT = "task_result"; // value: TaskResult
const KEY = "idempotency_key"; // value: string, written before the task's first attempt
const SAGA = "saga_started"; // value: { error, failedNode }
const UNDONE = "compensation_done"; // value: { node, effectKey, idempotencyKey }

interface TaskResult {
  node: string;
  kind: NodeKind;
  idempotencyKey: string;
  update: WorkflowState;
}

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === "function";

const nodeSchema = z.object({
  name: z.string().min(1, "a node name must be a non-empty string"),
  kind: z.enum(["pure", "effect"]),
  run: z.custom<WorkflowNode["run"]>(isFunction, "run must be a function"),
  compensate: z.custom<NonNullable<WorkflowNode["compensate"]>>(isFunction, "compensate must be a function").optional(),
  next: z.union([z.array(z.string().min(1)).readonly(), z.custom<(state: WorkflowState) => readonly string[]>(isFunction)]).optional(),
  maxAttempts: z.number().int().min(1).optional(),
  revalidate: z.custom<NonNullable<WorkflowNode["revalidate"]>>(isFunction, "revalidate must be a function").optional(),
});

const workflowSchema = z.object({
  schemaVersion: z.number().int().min(1),
  start: z.array(z.string().min(1)).min(1, "start must name at least one node"),
  nodes: z.array(nodeSchema).min(1, "a workflow needs at least one node"),
  migrate: z.custom<NonNullable<Workflow["migrate"]>>(isFunction, "migrate must be a function").optional(),
});

const optionsSchema = z.object({
  saver: z.custom<CheckpointSaver>(
    (value) => typeof value === "object" && value !== null && ["getTuple", "put", "putWrites"].every((m) => isFunction((value as Record<string, unknown>)[m])),
    "saver must be a CheckpointSaver",
  ),
  sqliteFile: z.string().min(1).optional(),
  threadId: z.string().min(1, "threadId must be a non-empty string"),
  input: z.record(z.string(), z.unknown()).optional(),
  checkpointId: z.string().min(1, "checkpointId must be a non-empty string").optional(),
  onReport: z.custom<NonNullable<RunOptions["onReport"]>>(isFunction, "onReport must be a function").optional(),
});

function describe(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length > 0 ? issue.path.join(".") : "value";
  return `${where}: ${issue.message}`;
}

function validateWorkflow<S extends WorkflowState>(workflow: Workflow<S>): Map<string, WorkflowNode<S>> {
  const parsed = workflowSchema.safeParse(workflow);
  if (!parsed.success) throw new RecoveryError(`Invalid workflow (${describe(parsed.error)}).`);
  const nodes = new Map<string, WorkflowNode<S>>();
  for (const node of workflow.nodes) {
    if (nodes.has(node.name)) throw new RecoveryError(`Invalid workflow: two nodes are named "${node.name}"; node names must be unique.`);
    nodes.set(node.name, node);
  }
  for (const name of workflow.start) {
    if (!nodes.has(name)) throw new RecoveryError(`Invalid workflow: start names "${name}", which is not a node (nodes: ${[...nodes.keys()].join(", ")}).`);
  }
  for (const node of workflow.nodes) {
    if (Array.isArray(node.next)) {
      for (const target of node.next as readonly string[]) {
        if (!nodes.has(target)) throw new RecoveryError(`Invalid workflow: node "${node.name}" has next "${target}", which is not a node.`);
      }
    }
  }
  return nodes;
}

/**
 * Where a task's key is kept: one slot per (scheduling checkpoint, node), independent of the
 * schema version, so a task re-run after a migration sends the key it already used.
 */
const keyTaskId = (checkpointId: string, node: string) => taskIdFor(checkpointId, `${node}\u0000idempotency-key`);

/**
 * The task id a step's results are stored under. After a migration the step is re-run under the
 * new schema, so its (new-shape) results get a slot of their own next to the old-shape ones.
 */
function resultTaskId(checkpointId: string, node: string, checkpointVersion: number, runVersion: number): string {
  return checkpointVersion === runVersion ? taskIdFor(checkpointId, node) : taskIdFor(checkpointId, `${node}\u0000schema-v${runVersion}`);
}

const sagaTaskId = (checkpointId: string) => taskIdFor(checkpointId, "\u0000saga");
const undoTaskId = (checkpointId: string, effectKey: string) => taskIdFor(checkpointId, `\u0000compensate\u0000${effectKey}`);

function versionOf(checkpoint: Checkpoint): number {
  return checkpoint.stateSchemaVersion ?? 1;
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function findWrite<T>(tuple: CheckpointTuple, taskId: string, channel: string): T | undefined {
  const found = tuple.pendingWrites.find(([id, ch]) => id === taskId && ch === channel);
  return found ? (found[2] as T) : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

class TaskFailed extends Error {
  constructor(
    readonly node: string,
    override readonly cause: unknown,
  ) {
    super(errorMessage(cause));
  }
}

/** What this call's report says, filled in as the call goes. */
interface Progress {
  /** The thread had checkpoints when the call began. */
  resumed: boolean;
  /** The checkpoint the call continued from (the latest, or the one forked from), once found usable. */
  resumedFrom: string | null;
  /** performance.now() when the first node of the call started. */
  firstRun?: number;
}

/** One report per validated call, when it ends; a metrics sink that throws does not change the call's outcome. */
function reportCall(options: RunOptions<WorkflowState>, schemaVersion: number, outcome: RunReport["outcome"], progress: Progress, began: number): void {
  if (!options.onReport) return;
  const resumedFrom = progress.resumed ? progress.resumedFrom : null;
  const recoveryMs = resumedFrom === null ? null : (progress.firstRun ?? performance.now()) - began;
  try {
    options.onReport({ threadId: options.threadId, schemaVersion, kind: progress.resumed ? "resume" : "start", outcome, resumedFrom, recoveryMs });
  } catch {
    // ignored: reporting is observation only
  }
}

/** The dashboard's numbers over the resumes only: p95 by nearest rank, null when there is nothing to count. */
export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume");
  const times = resumes.flatMap((report) => (typeof report.recoveryMs === "number" ? [report.recoveryMs] : [])).sort((a, b) => a - b);
  const ratio = (count: number) => (resumes.length === 0 ? null : count / resumes.length);
  return {
    resumes: resumes.length,
    hitRate: ratio(resumes.filter((report) => report.resumedFrom !== null).length),
    failureRate: ratio(resumes.filter((report) => report.outcome === "failed").length),
    meanRecoveryMs: times.length === 0 ? null : times.reduce((sum, ms) => sum + ms, 0) / times.length,
    p95RecoveryMs: times.length === 0 ? null : times[Math.ceil(0.95 * times.length) - 1]!,
  };
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const began = performance.now();
  // ---- 1. validate everything before anything runs or is saved
  const nodes = validateWorkflow(workflow);
  const parsedOptions = optionsSchema.safeParse(options);
  if (!parsedOptions.success) throw new RecoveryError(`Invalid options (${describe(parsedOptions.error)}).`);
  const { saver, threadId } = options;
  const runVersion = workflow.schemaVersion;

  // From here on the call is valid: it reports once, however it ends.
  const progress: Progress = { resumed: false, resumedFrom: null };
  const revalidated = new Set<string>(); // nodes whose revalidate() said yes in this call
  let outcome: RunReport["outcome"] = "failed";
  try {
    const result = await execute();
    outcome = result.status;
    return result;
  } finally {
    reportCall(options as RunOptions<WorkflowState>, runVersion, outcome, progress, began);
  }

  async function execute(): Promise<RunResult<S>> {
    const latest = await saver.getTuple({ threadId });
    progress.resumed = latest !== undefined;
    let chosen: CheckpointTuple | undefined;
    if (options.checkpointId !== undefined) {
      chosen = await saver.getTuple({ threadId, checkpointId: options.checkpointId });
      if (!chosen) throw new RecoveryError(`Thread "${threadId}" has no checkpoint "${options.checkpointId}".`);
    } else if (!latest && options.input === undefined) {
      throw new RecoveryError(`Thread "${threadId}" has no checkpoint yet, and no input was given to start it.`);
    }

    // ---- 2. schema version of the checkpoint we continue from: migrate explicitly or refuse
    let base = chosen ?? latest;
    let state: S;
    let baseVersion = runVersion;
    if (base) {
      baseVersion = versionOf(base.checkpoint);
      if (baseVersion !== runVersion) {
        if (!workflow.migrate) throw new SchemaMismatchError(baseVersion, runVersion, base.checkpoint.id);
        state = workflow.migrate(structuredClone(base.checkpoint.channelValues), baseVersion);
      } else {
        state = base.checkpoint.channelValues as S;
      }
      for (const name of base.checkpoint.next) {
        if (!nodes.has(name)) {
          throw new RecoveryError(`Checkpoint ${base.checkpoint.id} schedules "${name}", which this workflow does not have; migrate the run or start a new thread.`);
        }
      }
      progress.resumedFrom = base.checkpoint.id; // usable: its version is readable and it schedules known nodes
      if (base.checkpoint.next.length === 0) return finishedResult(base, state);
    } else {
      state = { ...options.input } as S;
    }

    // ---- 3. start, fork or resume
    if (!base) {
      base = await save({ threadId }, state, unique(workflow.start), { source: "input", step: -1 });
      baseVersion = runVersion;
    } else if (chosen && latest && chosen.checkpoint.id !== latest.checkpoint.id) {
      // Fork: a new checkpoint on top of the chosen one; the checkpoints after it are left alone.
      base = await save(chosen.config, state, chosen.checkpoint.next, { source: "fork", step: chosen.metadata.step });
      baseVersion = runVersion;
    }

    // ---- 4. steps
    let head: CheckpointTuple = base;
    let headVersion = baseVersion;
    for (;;) {
      const saga = findWrite<{ error: string; failedNode: string }>(head, sagaTaskId(head.checkpoint.id), SAGA);
      if (saga) return compensate(head, state, saga.error, saga.failedNode);

      const stepNodes = head.checkpoint.next;
      const stale = await revalidate(head, headVersion, state);
      if (stale) return stale;
      const settled = await Promise.allSettled(stepNodes.map((name) => runTask(head, headVersion, state, name)));
      const failure = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
      if (failure) {
        if (!(failure.reason instanceof TaskFailed)) throw failure.reason; // a storage error or a RecoveryError: nothing is decided, a resume retries
        const error = failure.reason.message;
        // Record the decision first: from here on a resume finishes the saga, it never retries the failed node.
        await saver.putWrites(head.config, [[SAGA, { error, failedNode: failure.reason.node }]], sagaTaskId(head.checkpoint.id));
        const reread = await saver.getTuple(head.config);
        return compensate(reread ?? head, state, error, failure.reason.node);
      }

      // Shallow-merge in `next` order (not finishing order), so every run and resume agree.
      let merged = { ...state } as S;
      for (const outcome of settled) merged = { ...merged, ...(outcome as PromiseFulfilledResult<WorkflowState>).value };

      const successors: string[] = [];
      for (const name of stepNodes) {
        const node = nodes.get(name)!;
        const targets = typeof node.next === "function" ? node.next(merged) : (node.next ?? []);
        if (!Array.isArray(targets)) throw new RecoveryError(`The router of "${name}" returned ${JSON.stringify(targets)}; it must return an array of node names.`);
        for (const target of targets) {
          if (typeof target !== "string" || !nodes.has(target)) {
            throw new RecoveryError(`The router of "${name}" returned ${JSON.stringify(target)}, which is not a node of this workflow; nothing was scheduled.`);
          }
          successors.push(target);
        }
      }

      head = await save(head.config, merged, unique(successors), { source: "loop", step: head.metadata.step + 1, node: stepNodes.join(",") });
      headVersion = runVersion;
      state = merged;
      if (head.checkpoint.next.length === 0) return { state, status: "completed", checkpointId: head.checkpoint.id };
    }
  }

  // ---------------------------------------------------------------- helpers (closures over options)

  async function save(parent: CheckpointTuple["config"] | { threadId: string }, values: S, next: string[], metadata: CheckpointMetadata): Promise<CheckpointTuple> {
    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: values,
      next,
      stateSchemaVersion: runVersion,
    };
    const config = await saver.put(parent, checkpoint, metadata);
    const parentId = "checkpointId" in parent ? parent.checkpointId : undefined;
    return {
      config: { threadId, checkpointNs: config.checkpointNs ?? "", checkpointId: checkpoint.id },
      checkpoint,
      metadata,
      ...(parentId !== undefined && { parentConfig: { threadId, checkpointNs: config.checkpointNs ?? "", checkpointId: parentId } }),
      pendingWrites: [],
    };
  }

  /**
   * Drift: on a resume, each node of the step about to run for the first time in this call
   * confirms that the facts it acts on still hold, before anything of the step runs or is written.
   * A "no", or a check that cannot be done, is a stale run: the thread stays where it was.
   */
  async function revalidate(tuple: CheckpointTuple, tupleVersion: number, values: S): Promise<RunResult<S> | undefined> {
    if (!progress.resumed) return undefined;
    for (const name of tuple.checkpoint.next) {
      const node = nodes.get(name)!;
      if (!node.revalidate || revalidated.has(name)) continue;
      if (findWrite<TaskResult>(tuple, resultTaskId(tuple.checkpoint.id, name, tupleVersion, runVersion), RESULT)) continue; // finished: it will not run
      let reason: string | undefined;
      try {
        const current = await node.revalidate(values, { threadId, checkpointId: tuple.checkpoint.id, node: name });
        if (current !== true) reason = `Node "${name}" is stale: revalidate() says the facts it acts on changed while the run was paused.`;
      } catch (error) {
        reason = `Node "${name}" is stale: its facts could not be revalidated (${errorMessage(error)}).`;
      }
      if (reason !== undefined) return { state: values, status: "stale", checkpointId: tuple.checkpoint.id, error: reason };
      revalidated.add(name);
    }
    return undefined;
  }

  async function runTask(tuple: CheckpointTuple, tupleVersion: number, input: S, name: string): Promise<WorkflowState> {
    const node = nodes.get(name)!;
    const checkpointId = tuple.checkpoint.id;
    const taskId = resultTaskId(checkpointId, name, tupleVersion, runVersion);
    const saved = findWrite<TaskResult>(tuple, taskId, RESULT);
    if (saved) return saved.update; // finished before the crash: reuse, never re-run (not even deduplicated)

    // Drawn once and durable BEFORE the first attempt; every later attempt, in any process, reads it back.
    const keySlot = keyTaskId(checkpointId, name);
    let idempotencyKey = findWrite<string>(tuple, keySlot, KEY);
    if (idempotencyKey === undefined) {
      await saver.putWrites(tuple.config, [[KEY, randomUUID()]], keySlot);
      // Read back what the store kept (the first write of a slot wins), never trust the local draw alone.
      idempotencyKey = findWrite<string>((await saver.getTuple(tuple.config)) ?? tuple, keySlot, KEY);
      if (idempotencyKey === undefined) throw new RecoveryError(`The idempotency key of task "${name}" at checkpoint ${checkpointId} could not be stored.`);
    }
    const maxAttempts = node.maxAttempts ?? 1;
    let update: WorkflowState | undefined;
    let lastError: unknown;
    for (let attempt = 1; attempt <= maxAttempts && update === undefined; attempt++) {
      try {
        progress.firstRun ??= performance.now();
        const returned = await node.run(input, { threadId, checkpointId, node: name, idempotencyKey, attempt });
        if (returned !== undefined && (typeof returned !== "object" || returned === null || Array.isArray(returned))) {
          // A bug in the workflow, not a failure of the task: fail the run before anything holds it.
          throw new RecoveryError(`Node "${name}" returned ${Array.isArray(returned) ? "an array" : typeof returned}; run must return an object of state updates or nothing.`);
        }
        update = { ...(returned ?? {}) };
      } catch (error) {
        if (error instanceof RecoveryError) throw error;
        lastError = error;
      }
    }
    if (update === undefined) throw new TaskFailed(name, lastError);
    // The ledger entry, before the step's checkpoint: a crash from here on reuses it.
    const result: TaskResult = { node: name, kind: node.kind, idempotencyKey, update };
    await saver.putWrites(tuple.config, [[RESULT, result]], taskId);
    return update;
  }

  /** Finished effects of this timeline, newest first: the failing step's, then each earlier step's via parent pointers. */
  async function finishedEffects(head: CheckpointTuple): Promise<TaskResult[]> {
    const effects: TaskResult[] = [];
    const collect = (tuple: CheckpointTuple, runBy: number) => {
      const version = versionOf(tuple.checkpoint);
      for (const name of [...tuple.checkpoint.next].reverse()) {
        const result = findWrite<TaskResult>(tuple, resultTaskId(tuple.checkpoint.id, name, version, runBy), RESULT);
        if (result && result.kind === "effect") effects.push(result);
      }
    };
    collect(head, runVersion);
    let child = head;
    while (child.parentConfig) {
      const parent = await saver.getTuple(child.parentConfig);
      if (!parent) break;
      // A fork copies its parent without running the parent's step: that step belongs to the other branch.
      if (child.metadata.source === "loop") collect(parent, versionOf(child.checkpoint));
      child = parent;
    }
    return effects;
  }

  async function compensate(head: CheckpointTuple, at: S, error: string, failedNode: string): Promise<RunResult<S>> {
    for (const effect of await finishedEffects(head)) {
      const node = nodes.get(effect.node);
      if (!node?.compensate) continue;
      const undoId = undoTaskId(head.checkpoint.id, effect.idempotencyKey);
      if (findWrite(head, undoId, UNDONE) !== undefined) continue; // undone before a crash: never twice
      const idempotencyKey = `${effect.idempotencyKey}:compensate`;
      await node.compensate(at, { threadId, node: effect.node, effectKey: effect.idempotencyKey, idempotencyKey, effectUpdate: effect.update });
      await saver.putWrites(head.config, [[UNDONE, { node: effect.node, effectKey: effect.idempotencyKey, idempotencyKey }]], undoId);
    }
    const final = await save(head.config, at, [], {
      source: "loop",
      step: head.metadata.step + 1,
      node: head.checkpoint.next.join(","),
      status: "compensated",
      error,
      failedNode,
    });
    return { state: at, status: "compensated", checkpointId: final.checkpoint.id, error };
  }

  function finishedResult(tuple: CheckpointTuple, values: S): RunResult<S> {
    const compensated = tuple.metadata.status === "compensated";
    return {
      state: values,
      status: compensated ? "compensated" : "completed",
      checkpointId: tuple.checkpoint.id,
      ...(compensated && typeof tuple.metadata.error === "string" && { error: tuple.metadata.error }),
    };
  }
}
