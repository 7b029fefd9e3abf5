/**
 * A recovery-aware executor. Each super-step:
 *
 *   1. the current checkpoint names the nodes to run (`next`);
 *   2. each node runs with an idempotency key derived from (thread, checkpoint, node), and its
 *      update is saved as a pending write of that checkpoint the moment it returns: that write
 *      is the ledger entry saying "this task is done, here is its result";
 *   3. when the whole step is done, one checkpoint is saved: the merged state, the successors
 *      as `next`, the previous checkpoint as parent.
 *
 * A crash anywhere loses at most the work of the tasks in flight. On resume, finished tasks are
 * read from their pending writes; an unfinished effect runs again with the SAME key, so the
 * provider deduplicates the call that had reached it before the crash.
 *
 * A resume also asks nodes with `revalidate` whether the facts they act on survived the pause
 * (recovery-point drift), and every call ends with a RunReport: whether it resumed, from where,
 * how it ended and how long recovery took, the raw material of the recovery metrics.
 */
import { ERROR, newCheckpointId, taskIdFor, type Checkpoint, type CheckpointMetadata, type CheckpointTuple, type PendingWrite } from "#runtime";
import { RecoveryError, SchemaMismatchError } from "./errors.ts";
import { parseRunOptions, parseWorkflow } from "./schemas.ts";
import type { RunOptions, RunReport, RunResult, RunStatus, Workflow, WorkflowNode, WorkflowState } from "./types.ts";

/** Channel of a task's update in the pending writes. */
// Stryker disable next-line StringLiteral: a channel name private to this executor (written and read only here, distinct from ERROR whatever its text)
export const UPDATE = "update";
/** Channel recording that one effect was compensated (on the checkpoint where the run failed). */
// Stryker disable next-line StringLiteral: a channel name private to this executor (written and read only here, distinct from ERROR whatever its text)
export const COMPENSATED = "compensated";

type TupleConfig = CheckpointTuple["config"];

export interface Position {
  config: TupleConfig;
  checkpoint: Checkpoint;
  metadata: CheckpointMetadata;
  pendingWrites: PendingWrite[];
  parentConfig?: TupleConfig;
}

export interface TaskOutcome {
  node: string;
  update?: WorkflowState;
  error?: string;
}

/** One finished effect of this timeline, in the order it happened. */
interface DoneEffect {
  node: WorkflowNode;
  key: string;
  update: WorkflowState;
}

export class RecoveringExecutor<S extends WorkflowState> {
  protected readonly workflow: Workflow<S>;
  protected readonly options: RunOptions<S>;
  private readonly nodes: Map<string, WorkflowNode<S>>;
  /** For the report: when the call began, whether the thread existed, where it continued, when the first node started. */
  private readonly startedAt = performance.now();
  /** Whether the thread had checkpoints when the call began; set once it has been read. */
  private resumed?: boolean;
  private resumedFrom: string | null = null;
  private firstNodeAt: number | undefined;
  /** Nodes already revalidated in this call: the facts are checked once, before a node's first run. */
  private readonly revalidated = new Set<string>();

  constructor(workflow: Workflow<S>, options: RunOptions<S>) {
    this.workflow = parseWorkflow(workflow);
    this.options = parseRunOptions(options);
    this.nodes = new Map(this.workflow.nodes.map((node) => [node.name, node]));
  }

  /** Runs the thread and reports the call, however it ends (a refusal included). */
  async run(): Promise<RunResult<S>> {
    try {
      const result = await this.execute();
      this.report(result.status);
      return result;
    } catch (error) {
      this.report("failed");
      throw error;
    }
  }

  private async execute(): Promise<RunResult<S>> {
    let position = await this.startingPoint();
    let state = this.stateAt(position);
    if (this.resumed) this.resumedFrom = position.metadata.source === "fork" ? position.parentConfig!.checkpointId : position.config.checkpointId;
    while (position.checkpoint.next.length > 0) {
      // What the step's tasks recorded before a crash (their pending writes): those do not run again.
      const saved = position.checkpoint.next.map((name) => this.savedOutcome(position, name));
      const stale = await this.staleNode(position, state, saved);
      if (stale) return { state, status: "stale", checkpointId: position.config.checkpointId, error: stale };
      const outcomes = await this.runStep(position, state, saved);
      const failed = outcomes.find((outcome) => outcome.error !== undefined);
      if (failed) return this.compensate(position, state, failed);
      for (const outcome of outcomes) state = { ...state, ...outcome.update };
      position = await this.saveCheckpoint(position, state, this.successors(position.checkpoint.next, state), {
        source: "loop",
        step: position.metadata.step + 1,
        node: position.checkpoint.next.join(","),
      });
    }
    return this.finished(position, state);
  }

  /** The key an effect sends to the outside world: a pure function of where the task sits in the thread. */
  protected idempotencyKey(checkpointId: string, node: string): string {
    return `${this.options.threadId}:${checkpointId}:${node}`;
  }

  /** Where the run continues: a new thread's input checkpoint, the latest checkpoint, or a fork. */
  protected async startingPoint(): Promise<Position> {
    const { saver, threadId, checkpointId, input } = this.options;
    const latest = await saver.getTuple({ threadId });
    this.resumed = latest !== undefined;
    if (checkpointId !== undefined) {
      const chosen = await saver.getTuple({ threadId, checkpointId });
      if (!chosen) throw new RecoveryError(`Thread "${threadId}" has no checkpoint "${checkpointId}": pass an id from its history, or omit checkpointId to resume the latest.`);
      // Stryker disable next-line OptionalChaining: `chosen` exists, so the thread has a latest checkpoint and `latest` is never undefined here
      if (chosen.config.checkpointId === latest?.config.checkpointId) return chosen;
      this.stateAt(chosen); // refuse a fork this workflow could not run before writing it
      // An older checkpoint: replaying it in place would rewrite history, so branch off it.
      return this.saveCheckpoint(chosen, chosen.checkpoint.channelValues, chosen.checkpoint.next, {
        source: "fork",
        step: chosen.metadata.step,
        forkedFrom: chosen.config.checkpointId,
      }, chosen.checkpoint.stateSchemaVersion);
    }
    if (latest) return latest;
    if (input === undefined) throw new RecoveryError(`Thread "${threadId}" has no checkpoint yet: pass options.input to start it.`);
    return this.saveCheckpoint(undefined, input, [...this.workflow.start], { source: "input", step: -1 });
  }

  /** The state to continue from, in this workflow's schema version (migrated explicitly, or refused). */
  private stateAt(position: Position): S {
    const written = position.checkpoint.stateSchemaVersion ?? 1;
    let state = position.checkpoint.channelValues as S;
    if (written !== this.workflow.schemaVersion) {
      if (!this.workflow.migrate) throw new SchemaMismatchError(written, this.workflow.schemaVersion, position.config.checkpointId);
      state = this.workflow.migrate(state, written);
    }
    for (const node of position.checkpoint.next) this.node(node, `checkpoint ${position.config.checkpointId} schedules`);
    return state;
  }

  private versionMatches(position: Position): boolean {
    return (position.checkpoint.stateSchemaVersion ?? 1) === this.workflow.schemaVersion;
  }

  /** A task's outcome recorded before (a pending write of this checkpoint), if any. */
  private savedOutcome(position: Position, name: string): TaskOutcome | undefined {
    const taskId = taskIdFor(position.config.checkpointId, name);
    // Writes made under another schema version hold old-shape updates: run those tasks again.
    // Stryker disable next-line ArrayDeclaration: ["Stryker was here"] destructures to task "S", channel "t": neither ERROR nor UPDATE, so the task runs, as with []
    const saved = this.versionMatches(position) ? position.pendingWrites.filter(([task]) => task === taskId) : [];
    const error = saved.find(([, channel]) => channel === ERROR);
    if (error) return { node: name, error: String(error[2]) };
    // Stryker disable next-line ConditionalExpression: a task's own writes are one UPDATE or one ERROR (handled above), so "the first write" is the UPDATE
    const update = saved.find(([, channel]) => channel === UPDATE);
    return update && { node: name, update: update[2] as WorkflowState };
  }

  /** Runs the step's unfinished tasks in parallel; finished ones come from their pending writes (`saved`, in next order). */
  private async runStep(position: Position, state: S, saved: ReadonlyArray<TaskOutcome | undefined>): Promise<TaskOutcome[]> {
    return Promise.all(position.checkpoint.next.map((name, index) => saved[index] ?? this.runTask(position, state, name)));
  }

  /**
   * Recovery-point drift: before a node's first run in this call, ask its revalidate() whether the
   * facts it acts on are still current. (What matters is a resume, after a pause; a fresh run asks
   * too, which costs one cheap check and keeps this code free of a special case.) The first node
   * that says no, or cannot tell, is named; the caller stops there, saving nothing, so the thread
   * stays resumable.
   */
  private async staleNode(position: Position, state: S, saved: ReadonlyArray<TaskOutcome | undefined>): Promise<string | undefined> {
    for (const [index, name] of position.checkpoint.next.entries()) {
      const node = this.nodes.get(name)!;
      if (!node.revalidate || this.revalidated.has(name) || saved[index]) continue;
      this.revalidated.add(name);
      const context = { threadId: this.options.threadId, checkpointId: position.config.checkpointId, node: name };
      let current: boolean;
      try {
        current = await node.revalidate(state, context);
      } catch (error) {
        return `node "${name}": its facts could not be revalidated (${error instanceof Error ? error.message : String(error)}); nothing was run, resume when the check works again`;
      }
      if (current !== true) return `node "${name}": the facts it acts on changed while the run was paused; nothing was run: resume once they are current, or fork from before the node that gathered them`;
    }
    return undefined;
  }

  private async runTask(position: Position, state: S, name: string): Promise<TaskOutcome> {
    // Stryker disable next-line StringLiteral: unreachable message: every scheduled name was checked by stateAt() or successors() before it got here
    const node = this.node(name, "the step");
    const checkpointId = position.config.checkpointId;
    const taskId = taskIdFor(checkpointId, name);
    const maxAttempts = node.maxAttempts ?? 1;
    this.firstNodeAt ??= performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const update = (await node.run(state, {
          threadId: this.options.threadId,
          checkpointId,
          node: name,
          idempotencyKey: this.idempotencyKey(checkpointId, name),
          attempt,
        })) ?? {};
        if (typeof update !== "object" || Array.isArray(update)) {
          throw new RecoveryError(`Node "${name}" returned ${Array.isArray(update) ? "an array" : typeof update}; return an object of state fields to update (or nothing).`);
        }
        await this.options.saver.putWrites(position.config, [[UPDATE, update]], taskId);
        return { node: name, update: update as WorkflowState };
      } catch (error) {
        if (error instanceof RecoveryError) throw error;
        if (attempt >= maxAttempts) {
          const message = `node "${name}" failed after ${attempt} attempt(s): ${error instanceof Error ? error.message : String(error)}`;
          await this.options.saver.putWrites(position.config, [[ERROR, message]], taskId);
          return { node: name, error: message };
        }
      }
    }
  }

  /** Successors of a finished step, in node order, each once. */
  private successors(ran: readonly string[], state: S): string[] {
    const next = new Set<string>();
    for (const name of ran) {
      // Stryker disable next-line StringLiteral: unreachable message: `ran` is a checkpoint's next, whose names stateAt() or successors() already checked
      const node = this.node(name, "the step");
      const targets = typeof node.next === "function" ? node.next(state) : (node.next ?? []);
      if (!Array.isArray(targets)) throw new RecoveryError(`The router of node "${name}" returned ${JSON.stringify(targets)}; return an array of node names ([] to end).`);
      for (const target of targets) next.add(this.node(target, `the router of node "${name}" returned`).name);
    }
    return [...next];
  }

  /**
   * Saga: undo every effect of this timeline in reverse order, then close the thread. Each undo
   * is recorded as a pending write of the failing step's checkpoint, so a crash mid-way resumes
   * the compensation without repeating the undos already recorded.
   */
  protected async compensate(stale: Position, state: S, failed: TaskOutcome): Promise<RunResult<S>> {
    // Re-read the step: effects that finished beside the failing task in this very run are in its writes now.
    const position: Position = (await this.options.saver.getTuple(stale.config)) ?? stale;
    // Stryker disable next-line MethodExpression,ConditionalExpression: only COMPENSATED writes hold key strings (UPDATE values are objects, ERROR values messages that name a node), so no other write matches an effect key
    const done = new Set(position.pendingWrites.filter(([, channel]) => channel === COMPENSATED).map(([, , key]) => key));
    const effects = await this.effectsOfTimeline(position);
    for (const effect of effects.reverse()) {
      if (done.has(effect.key) || !effect.node.compensate) continue;
      const compensationKey = `${effect.key}:compensate`;
      await effect.node.compensate(state, {
        threadId: this.options.threadId,
        node: effect.node.name,
        effectKey: effect.key,
        idempotencyKey: compensationKey,
        effectUpdate: effect.update,
      });
      await this.options.saver.putWrites(position.config, [[COMPENSATED, effect.key]], taskIdFor(position.config.checkpointId, compensationKey));
    }
    const closed = await this.saveCheckpoint(position, state, [], {
      source: "loop",
      step: position.metadata.step + 1,
      node: failed.node,
      status: "compensated",
      error: failed.error,
    });
    return { state, status: "compensated", checkpointId: closed.config.checkpointId, ...(failed.error && { error: failed.error }) };
  }

  /** Finished effects from the first checkpoint to this one, following parent pointers. */
  private async effectsOfTimeline(position: Position): Promise<DoneEffect[]> {
    const chain: Position[] = [];
    for (let current: Position | undefined = position; current; ) {
      chain.unshift(current);
      current = current.parentConfig && (await this.options.saver.getTuple(current.parentConfig));
    }
    const effects: DoneEffect[] = [];
    for (const [index, step] of chain.entries()) {
      // A checkpoint this timeline forked from: its tasks' writes belong to the original branch.
      if (chain[index + 1]?.metadata.source === "fork") continue;
      for (const name of step.checkpoint.next) {
        const node = this.nodes.get(name);
        const taskId = taskIdFor(step.config.checkpointId, name);
        const write = step.pendingWrites.find(([task, channel]) => task === taskId && channel === UPDATE);
        // Stryker disable next-line OptionalChaining: every name of a checkpoint's next on this timeline was checked against the workflow's nodes before it was saved or resumed
        if (node?.kind === "effect" && write) effects.push({ node: node as WorkflowNode, key: this.idempotencyKey(step.config.checkpointId, name), update: write[2] as WorkflowState });
      }
    }
    return effects;
  }

  /** Tells options.onReport how the call went; recovery time only for a resume that continued. */
  private report(outcome: RunReport["outcome"]): void {
    // A resume that continued either started a node or returned at once (a finished thread, a stale step).
    const recovered = this.firstNodeAt ?? performance.now();
    this.options.onReport?.({
      threadId: this.options.threadId,
      schemaVersion: this.workflow.schemaVersion,
      kind: this.resumed ? "resume" : "start",
      outcome,
      resumedFrom: this.resumedFrom,
      recoveryMs: this.resumedFrom === null ? null : recovered - this.startedAt,
    });
  }

  private finished(position: Position, state: S): RunResult<S> {
    const status: RunStatus = position.metadata.status === "compensated" ? "compensated" : "completed";
    const error = position.metadata.error as string | undefined; // written by compensate(), always a string
    return { state, status, checkpointId: position.config.checkpointId, ...(error && { error }) };
  }

  /** Saves the state, the routing position and the parent pointer; returns the new position. */
  protected async saveCheckpoint(
    parent: Position | undefined,
    state: WorkflowState,
    next: string[],
    metadata: CheckpointMetadata,
    stateSchemaVersion = this.workflow.schemaVersion,
  ): Promise<Position> {
    const checkpoint: Checkpoint = { v: 1, id: newCheckpointId(), ts: new Date().toISOString(), channelValues: state, next, stateSchemaVersion };
    const parentConfig = parent?.config;
    const saved = await this.options.saver.put({ threadId: this.options.threadId, ...(parentConfig && { checkpointId: parentConfig.checkpointId }) }, checkpoint, metadata);
    // Stryker disable next-line LogicalOperator,StringLiteral: put() resolves the namespace and returns it ("" here); getTuple() treats a missing one as "" too
    const config: TupleConfig = { threadId: this.options.threadId, checkpointNs: saved.checkpointNs ?? "", checkpointId: checkpoint.id };
    // Stryker disable next-line ArrayDeclaration,ConditionalExpression,LogicalOperator,ObjectLiteral: a new checkpoint has no writes ("Stryker was here" matches no task id), and compensate() re-reads its position, parent pointer included, from the store
    return { config, checkpoint, metadata, pendingWrites: [], ...(parentConfig && { parentConfig }) };
  }

  private node(name: string, where: string): WorkflowNode<S> {
    const node = this.nodes.get(name);
    if (!node) throw new RecoveryError(`${where} node "${name}", which this workflow does not define. Did the workflow change under a paused run? Bump schemaVersion.`);
    return node;
  }
}
