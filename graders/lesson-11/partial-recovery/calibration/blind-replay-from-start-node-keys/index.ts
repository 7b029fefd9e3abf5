/**
 * lesson-11 / partial-recovery: resume from the breakpoint, side effects exactly once.
 *
 * Design: deterministic re-execution. The workflow is a pure function of its input plus
 * idempotent providers, so the simplest correct recovery is to run it again from the thread's
 * input: every effect carries a key that names the thread, the node and how many times the
 * node has run in this execution, so a re-run is deduplicated by the provider. Checkpoints are
 * written after every step (state, next, parent) for observability.
 */
import { newCheckpointId as newId, type CheckpointSaver } from "#runtime";

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

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const nodes = new Map<string, WorkflowNode<S>>();
  for (const node of workflow?.nodes ?? []) {
    if (typeof node?.name !== "string" || node.name === "" || nodes.has(node.name)) throw new RecoveryError(`Invalid workflow: bad or duplicate node name ${JSON.stringify(node?.name)}.`);
    nodes.set(node.name, node);
  }
  const known = (name: unknown) => typeof name === "string" && nodes.has(name);
  if (!Array.isArray(workflow.start) || workflow.start.length === 0 || !workflow.start.every(known)) throw new RecoveryError("Invalid workflow: start names an unknown node.");
  for (const node of nodes.values()) {
    if (Array.isArray(node.next) && !node.next.every(known)) throw new RecoveryError(`Invalid workflow: node "${node.name}" has an unknown next.`);
  }
  if (typeof options?.threadId !== "string" || options.threadId === "") throw new RecoveryError("threadId must be a non-empty string.");
  const { saver, threadId } = options;

  const latest = await saver.getTuple({ threadId });
  if (options.checkpointId !== undefined && !(await saver.getTuple({ threadId, checkpointId: options.checkpointId }))) {
    throw new RecoveryError(`Thread "${threadId}" has no checkpoint "${options.checkpointId}".`);
  }
  if (!latest && options.input === undefined) throw new RecoveryError(`Thread "${threadId}" has no checkpoint and no input.`);
  if (latest && latest.checkpoint.next.length === 0) {
    const compensated = latest.metadata.status === "compensated";
    return {
      state: latest.checkpoint.channelValues as S,
      status: compensated ? "compensated" : "completed",
      checkpointId: latest.checkpoint.id,
      ...(compensated && { error: String(latest.metadata.error) }),
    };
  }

  // Find the thread's input checkpoint and run everything again from there.
  let first = latest;
  while (first?.parentConfig) first = await saver.getTuple(first.parentConfig);
  let state = { ...((first?.checkpoint.channelValues as S | undefined) ?? options.input!) } as S;
  let parentId = latest?.checkpoint.id;
  let step = latest ? latest.metadata.step : -1;
  if (!latest) {
    const id = newId();
    await saver.put({ threadId }, { v: 1, id, ts: new Date().toISOString(), channelValues: state, next: [...new Set(workflow.start)], stateSchemaVersion: workflow.schemaVersion }, { source: "input", step: -1 });
    parentId = id;
  }

  const runs = new Map<string, number>();
  const done: Array<{ node: WorkflowNode<S>; key: string; update: WorkflowState }> = [];
  let next = [...new Set(workflow.start)];
  let replayedSteps = latest ? latest.metadata.step + 1 : 0; // steps already checkpointed are not checkpointed again
  while (next.length > 0) {
    const updates: WorkflowState[] = [];
    for (const name of next) {
      const node = nodes.get(name)!;
      const n = (runs.get(name) ?? 0) + 1;
      runs.set(name, n);
      const key = `${threadId}:${name}:${n}`;
      let update: WorkflowState | undefined;
      let lastError: unknown;
      for (let attempt = 1; attempt <= (node.maxAttempts ?? 1) && !update; attempt++) {
        try {
          update = { ...((await node.run(state, { threadId, checkpointId: parentId ?? "", node: name, idempotencyKey: key, attempt })) ?? {}) };
        } catch (error) {
          lastError = error;
        }
      }
      if (!update) {
        const error = lastError instanceof Error ? lastError.message : String(lastError);
        for (const effect of done.reverse()) {
          if (effect.node.kind === "effect" && effect.node.compensate) {
            await effect.node.compensate(state, { threadId, node: effect.node.name, effectKey: effect.key, idempotencyKey: `${effect.key}:compensate`, effectUpdate: effect.update });
          }
        }
        const id = newId();
        await saver.put({ threadId, ...(parentId && { checkpointId: parentId }) }, { v: 1, id, ts: new Date().toISOString(), channelValues: state, next: [], stateSchemaVersion: workflow.schemaVersion }, { source: "loop", step: step + 1, node: next.join(","), status: "compensated", error });
        return { state, status: "compensated", checkpointId: id, error };
      }
      done.push({ node, key, update });
      updates.push(update);
    }
    state = Object.assign({ ...state }, ...updates) as S;
    const following: string[] = [];
    for (const name of next) {
      const node = nodes.get(name)!;
      const targets = typeof node.next === "function" ? node.next(state) : (node.next ?? []);
      for (const target of targets) {
        if (!nodes.has(target)) throw new RecoveryError(`The router of "${name}" returned unknown node "${target}".`);
        following.push(target);
      }
    }
    const stepNodes = next.join(",");
    next = [...new Set(following)];
    if (replayedSteps > 0) {
      replayedSteps--;
      continue;
    }
    step++;
    const id = newId();
    await saver.put({ threadId, ...(parentId && { checkpointId: parentId }) }, { v: 1, id, ts: new Date().toISOString(), channelValues: state, next, stateSchemaVersion: workflow.schemaVersion }, { source: "loop", step, node: stepNodes });
    parentId = id;
  }
  return { state, status: "completed", checkpointId: parentId! };
}
