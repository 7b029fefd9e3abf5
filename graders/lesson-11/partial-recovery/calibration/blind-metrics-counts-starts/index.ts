/**
 * lesson-11 / partial-recovery: calibration answer "blind-metrics-counts-starts".
 * The contract is the top comment of exercises/lesson-11/partial-recovery/index.ts.
 *
 * Design: idempotency keys are derived (`thread:checkpoint:node`); each task's update is saved as
 * pending writes under taskIdFor(checkpoint, node) as soon as it returns; one checkpoint per step.
 * A permanent failure is recorded as an `__error__` write once the whole step has settled, then the
 * saga walks the parent pointers newest first and records each undo before the next one starts.
 *
 * Intended flaw: `recoveryMetrics` computes hitRate, failureRate and the recovery-time statistics
 * over all the reports it is given, starts included, instead of over the resumes only (only the
 * `resumes` count filters on kind), so starts dilute the hit rate and the failure rate; and it takes
 * the p95 as `sorted[Math.floor(0.95 * n)]` instead of the ceil(0.95 * n)-th smallest value, which
 * is one rank too high whenever 0.95 * n is a whole number (n = 20, 40, ...). The reports that
 * runWorkflow emits are right.
 */
import {
  ERROR,
  NO_WRITES,
  isSpecialChannel,
  newCheckpointId,
  taskIdFor,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type RunnableConfig,
} from "#runtime";

// ---------------------------------------------------------------- contract types (given)

export type WorkflowState = Record<string, unknown>;
export type NodeKind = "pure" | "effect";

export interface NodeContext {
  threadId: string;
  checkpointId: string;
  node: string;
  idempotencyKey: string;
  attempt: number;
}

export interface CompensationContext {
  threadId: string;
  node: string;
  effectKey: string;
  idempotencyKey: string;
  effectUpdate: WorkflowState;
}

export interface WorkflowNode<S extends WorkflowState = WorkflowState> {
  name: string;
  kind: NodeKind;
  run(state: Readonly<S>, context: NodeContext): Promise<Partial<S> | void> | Partial<S> | void;
  compensate?(state: Readonly<S>, context: CompensationContext): Promise<void> | void;
  next?: readonly string[] | ((state: Readonly<S>) => readonly string[]);
  maxAttempts?: number;
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
  sqliteFile?: string;
  threadId: string;
  input?: S;
  checkpointId?: string;
  onReport?(report: RunReport): void;
}

export type RunStatus = "completed" | "compensated" | "stale";

export interface RunResult<S extends WorkflowState = WorkflowState> {
  state: S;
  status: RunStatus;
  checkpointId: string;
  error?: string;
}

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

// ---------------------------------------------------------------- implementation

type State = WorkflowState;
type Node = WorkflowNode<State>;
type Config = CheckpointTuple["config"];

/** Channel of the record that says one compensation has finished. */
const COMPENSATED = "__compensated__";

/** What the store says about one task of a checkpoint. */
interface SavedTask {
  id: string;
  node: string;
  /** The update it returned, when it finished. */
  update?: State;
  /** The message it failed with for good, when it did. */
  error?: string;
}

type Outcome =
  | { kind: "done"; update: State }
  | { kind: "failed"; taskId: string; message: string }
  | { kind: "invalid"; error: RecoveryError };

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const calledAt = performance.now();
  const wf = workflow as unknown as Workflow<State>;
  const opts = options as unknown as RunOptions<State>;
  const nodes = validate(wf, opts);
  const run = new Run(wf, nodes, opts, calledAt);
  let outcome: RunReport["outcome"] = "failed";
  try {
    const result = await run.execute();
    outcome = result.status;
    return result as RunResult<S>;
  } finally {
    run.report(outcome);
  }
}

class Run {
  private readonly saver: CheckpointSaver;
  private readonly threadId: string;
  private kind: RunReport["kind"] = "start";
  private resumedFrom: string | null = null;
  private firstNodeAt: number | null = null;
  private readonly revalidated = new Set<string>();

  constructor(
    private readonly workflow: Workflow<State>,
    private readonly nodes: Map<string, Node>,
    private readonly options: RunOptions<State>,
    private readonly calledAt: number,
  ) {
    this.saver = options.saver;
    this.threadId = options.threadId;
  }

  async execute(): Promise<RunResult> {
    const latest = await this.saver.getTuple({ threadId: this.threadId });
    if (latest) this.kind = "resume";
    const { checkpointId, input } = this.options;

    let tuple: CheckpointTuple;
    if (checkpointId !== undefined) {
      const chosen = await this.saver.getTuple({ threadId: this.threadId, checkpointId });
      if (!chosen) {
        throw new RecoveryError(`options.checkpointId: thread "${this.threadId}" has no checkpoint "${checkpointId}".`);
      }
      tuple = chosen;
    } else if (latest) {
      tuple = latest;
    } else {
      if (input === undefined || input === null) {
        throw new RecoveryError(`options.input: thread "${this.threadId}" has no checkpoint yet, so it needs an input to start.`);
      }
      const state = { ...input };
      const first = await this.save(undefined, state, unique(this.workflow.start), { source: "input", step: -1 });
      return this.loop(first, state, false);
    }

    const { state, migrated } = await this.load(tuple);
    for (const name of tuple.checkpoint.next) {
      if (!this.nodes.has(name)) {
        throw new RecoveryError(`Checkpoint ${tuple.checkpoint.id} schedules node "${name}", which the workflow no longer defines.`);
      }
    }
    this.resumedFrom = tuple.checkpoint.id;
    if (tuple.checkpoint.next.length === 0) return this.finished(tuple, state);
    if (latest && latest.checkpoint.id !== tuple.checkpoint.id) {
      const fork = await this.save(tuple.config, state, [...tuple.checkpoint.next], { source: "fork", step: tuple.metadata.step });
      return this.loop(fork, state, false);
    }
    return this.loop(tuple, state, migrated);
  }

  report(outcome: RunReport["outcome"]): void {
    const onReport = this.options.onReport;
    if (!onReport) return;
    const continued = this.kind === "resume" && this.resumedFrom !== null;
    const recoveryMs = continued ? (this.firstNodeAt ?? performance.now()) - this.calledAt : null;
    try {
      const resumedFrom = this.kind === "resume" ? this.resumedFrom : null;
      onReport({ threadId: this.threadId, schemaVersion: this.workflow.schemaVersion, kind: this.kind, outcome, resumedFrom, recoveryMs });
    } catch {
      // A broken metrics sink must not change what the run did.
    }
  }

  /** The checkpoint's state in this workflow's schema: as is, migrated, or refused. */
  private async load(tuple: CheckpointTuple): Promise<{ state: State; migrated: boolean }> {
    const version = tuple.checkpoint.stateSchemaVersion ?? 1;
    if (version === this.workflow.schemaVersion) return { state: tuple.checkpoint.channelValues, migrated: false };
    if (!this.workflow.migrate) throw new SchemaMismatchError(version, this.workflow.schemaVersion, tuple.checkpoint.id);
    return { state: await this.workflow.migrate(tuple.checkpoint.channelValues, version), migrated: true };
  }

  private finished(tuple: CheckpointTuple, state: State): RunResult {
    const { status, error } = tuple.metadata;
    if (status === "compensated") {
      return { state, status: "compensated", checkpointId: tuple.checkpoint.id, error: typeof error === "string" ? error : String(error) };
    }
    return { state, status: "completed", checkpointId: tuple.checkpoint.id };
  }

  /**
   * One step per turn: reuse the tasks whose writes are saved, revalidate on a resume, run the rest
   * (each task's update saved as soon as it returns), merge in `next` order, save one checkpoint.
   * `ignoreResults`: the checkpoint was migrated, so the updates saved on it have the old shape.
   */
  private async loop(tuple: CheckpointTuple, state: State, ignoreResults: boolean): Promise<RunResult> {
    for (;;) {
      const next = tuple.checkpoint.next;
      if (next.length === 0) return { state, status: "completed", checkpointId: tuple.checkpoint.id };
      const saved = next.map((name) => readTask(tuple, name));
      const failedBefore = saved.find((task) => task.error !== undefined);
      if (failedBefore) return this.compensate(tuple, state, failedBefore.error!);

      const reuse = (task: SavedTask) => task.update !== undefined && !ignoreResults;
      const toRun = saved.filter((task) => !reuse(task));
      if (this.kind === "resume") {
        const stale = await this.revalidate(tuple, state, toRun);
        if (stale !== undefined) return { state, status: "stale", checkpointId: tuple.checkpoint.id, error: stale };
      }

      const outcomes = await Promise.all(
        saved.map((task): Promise<Outcome> | Outcome => (reuse(task) ? { kind: "done", update: task.update! } : this.runTask(tuple, state, task))),
      );
      const invalid = outcomes.find((o) => o.kind === "invalid");
      if (invalid) throw invalid.error;
      const failed = outcomes.filter((o) => o.kind === "failed");
      if (failed.length > 0) {
        // Recorded only now that every sibling has settled (and saved its own update), so a resume that
        // finds this write knows the whole step is over and goes straight to the saga.
        for (const f of failed) await this.saver.putWrites(tuple.config, [[ERROR, { message: f.message }]], f.taskId);
        return this.compensate(tuple, state, failed[0]!.message);
      }

      const merged: State = Object.assign({}, state, ...outcomes.map((o) => (o.kind === "done" ? o.update : {})));
      const successors = unique(next.flatMap((name) => this.successors(name, merged)));
      tuple = await this.save(tuple.config, merged, successors, { source: "loop", step: tuple.metadata.step + 1, node: next.join(",") });
      state = merged;
      ignoreResults = false;
    }
  }

  /** undefined when every node about to run may run; otherwise why the run must stop (stale). */
  private async revalidate(tuple: CheckpointTuple, state: State, tasks: SavedTask[]): Promise<string | undefined> {
    for (const { node: name } of tasks) {
      const node = this.nodes.get(name)!;
      if (!node.revalidate || this.revalidated.has(name)) continue;
      let ok: boolean;
      try {
        ok = await node.revalidate(state, { threadId: this.threadId, checkpointId: tuple.checkpoint.id, node: name });
      } catch (error) {
        return `Node "${name}" could not be revalidated (${messageOf(error)}): its facts may be stale since checkpoint ${tuple.checkpoint.id}; nothing was run.`;
      }
      if (ok !== true) {
        return `Node "${name}" failed revalidation: the facts it acts on changed since checkpoint ${tuple.checkpoint.id}; nothing was run.`;
      }
      this.revalidated.add(name);
    }
    return undefined;
  }

  private async runTask(tuple: CheckpointTuple, state: State, task: SavedTask): Promise<Outcome> {
    const node = this.nodes.get(task.node)!;
    const checkpointId = tuple.checkpoint.id;
    const idempotencyKey = keyFor(this.threadId, checkpointId, task.node);
    const maxAttempts = node.maxAttempts ?? 1;
    let lastError: unknown;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      this.firstNodeAt ??= performance.now();
      let update: unknown;
      try {
        update = await node.run(state, { threadId: this.threadId, checkpointId, node: task.node, idempotencyKey, attempt });
      } catch (error) {
        lastError = error;
        continue;
      }
      if (update !== undefined && update !== null && !isPlainObject(update)) {
        return { kind: "invalid", error: new RecoveryError(`Node "${task.node}" returned ${describe(update)}; run must resolve to an object (an update) or nothing.`) };
      }
      const result = (update ?? {}) as State;
      const writes = Object.entries(result);
      await this.saver.putWrites(tuple.config, writes.length > 0 ? writes : [[NO_WRITES, null]], task.id);
      return { kind: "done", update: result };
    }
    return { kind: "failed", taskId: task.id, message: messageOf(lastError) };
  }

  private successors(name: string, state: State): string[] {
    const next = this.nodes.get(name)!.next;
    if (next === undefined) return [];
    if (typeof next !== "function") return [...next];
    const routed: unknown = next(state);
    if (!Array.isArray(routed) || !routed.every((n): n is string => typeof n === "string")) {
      throw new RecoveryError(`The router of node "${name}" returned ${describe(routed)}; it must return a list of node names.`);
    }
    const unknown = routed.filter((n) => !this.nodes.has(n));
    if (unknown.length > 0) {
      throw new RecoveryError(`The router of node "${name}" returned ${describe(routed)}: unknown node ${unknown.map((n) => `"${n}"`).join(", ")}.`);
    }
    return routed;
  }

  /**
   * Saga: undo every finished effect of this timeline, newest first, each once (a record is saved
   * on the failing checkpoint after each undo), then close the thread with a compensated checkpoint.
   */
  private async compensate(failing: CheckpointTuple, state: State, error: string): Promise<RunResult> {
    const current = (await this.saver.getTuple(failing.config)) ?? failing;
    for (const effect of await this.finishedEffects(current)) {
      if (!effect.node.compensate) continue;
      const recordId = taskIdFor(current.checkpoint.id, `compensate:${effect.key}`);
      if (current.pendingWrites.some(([taskId]) => taskId === recordId)) continue;
      const idempotencyKey = `${effect.key}:compensate`;
      const context = { threadId: this.threadId, node: effect.node.name, effectKey: effect.key, idempotencyKey, effectUpdate: effect.update };
      await effect.node.compensate(state, context);
      await this.saver.putWrites(current.config, [[COMPENSATED, idempotencyKey]], recordId);
    }
    const final = await this.save(current.config, state, [], { source: "loop", step: current.metadata.step + 1, status: "compensated", error });
    return { state, status: "compensated", checkpointId: final.checkpoint.id, error };
  }

  /**
   * The finished effects of the timeline ending at `start`, newest first. A checkpoint's tasks belong
   * to this timeline when it is `start` itself or when its child on the way back is the checkpoint
   * its own step produced (source "loop"); a fork point's tasks are the original branch's.
   */
  private async finishedEffects(start: CheckpointTuple): Promise<Array<{ node: Node; key: string; update: State }>> {
    const effects: Array<{ node: Node; key: string; update: State }> = [];
    let tuple: CheckpointTuple | undefined = start;
    let child: CheckpointTuple | undefined;
    while (tuple) {
      if (child === undefined || child.metadata.source === "loop") {
        const here: Array<{ node: Node; key: string; update: State }> = [];
        for (const name of tuple.checkpoint.next) {
          const node = this.nodes.get(name);
          if (node?.kind !== "effect") continue;
          const { update } = readTask(tuple, name);
          if (update !== undefined) here.push({ node, key: keyFor(this.threadId, tuple.checkpoint.id, name), update });
        }
        effects.push(...here.reverse());
      }
      child = tuple;
      tuple = tuple.parentConfig ? await this.saver.getTuple(tuple.parentConfig) : undefined;
    }
    return effects;
  }

  private async save(parent: Config | undefined, state: State, next: string[], metadata: CheckpointMetadata): Promise<CheckpointTuple> {
    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: state,
      next,
      stateSchemaVersion: this.workflow.schemaVersion,
    };
    const putConfig: RunnableConfig = parent ?? { threadId: this.threadId };
    const stored = await this.saver.put(putConfig, checkpoint, metadata);
    const checkpointNs = stored.checkpointNs ?? parent?.checkpointNs ?? "";
    return {
      config: { threadId: this.threadId, checkpointNs, checkpointId: checkpoint.id },
      checkpoint,
      metadata,
      ...(parent && { parentConfig: parent }),
      pendingWrites: [],
    };
  }
}

// ---------------------------------------------------------------- helpers

function keyFor(threadId: string, checkpointId: string, node: string): string {
  return `${threadId}:${checkpointId}:${node}`;
}

function readTask(tuple: CheckpointTuple, node: string): SavedTask {
  const id = taskIdFor(tuple.checkpoint.id, node);
  const writes = tuple.pendingWrites.filter(([taskId]) => taskId === id);
  const regular = writes.filter(([, channel]) => !isSpecialChannel(channel));
  const failure = writes.find(([, channel]) => channel === ERROR);
  const task: SavedTask = { id, node };
  if (regular.length > 0) {
    task.update = Object.fromEntries(regular.filter(([, channel]) => channel !== NO_WRITES).map(([, channel, value]) => [channel, value]));
  } else if (failure) {
    const value = failure[2] as { message?: unknown } | undefined;
    task.error = typeof value?.message === "string" ? value.message : String(value);
  }
  return task;
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function isPlainObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describe(value: unknown): string {
  if (typeof value === "function") return "a function";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Refuses a workflow or options that no run could follow; returns the nodes by name. */
function validate(workflow: Workflow<State>, options: RunOptions<State>): Map<string, Node> {
  const fail: (message: string) => never = (message) => {
    throw new RecoveryError(message);
  };
  if (!isPlainObject(workflow)) fail("workflow must be an object with schemaVersion, start and nodes.");
  if (!Number.isInteger(workflow.schemaVersion) || workflow.schemaVersion < 1) {
    fail(`workflow.schemaVersion must be a positive integer, got ${describe(workflow.schemaVersion)}.`);
  }
  if (!Array.isArray(workflow.nodes)) fail("workflow.nodes must be a list of nodes.");
  const nodes = new Map<string, Node>();
  workflow.nodes.forEach((node, i) => {
    if (!isPlainObject(node)) fail(`workflow.nodes[${i}] must be an object.`);
    const { name } = node;
    if (typeof name !== "string" || name === "") fail(`workflow.nodes[${i}].name must be a non-empty string.`);
    if (nodes.has(name)) fail(`Duplicate node name "${name}": node names must be unique.`);
    if (node.kind !== "pure" && node.kind !== "effect") fail(`Node "${name}": kind must be "pure" or "effect", got ${describe(node.kind)}.`);
    if (typeof node.run !== "function") fail(`Node "${name}": run must be a function.`);
    for (const field of ["compensate", "revalidate"] as const) {
      if (node[field] !== undefined && typeof node[field] !== "function") fail(`Node "${name}": ${field} must be a function.`);
    }
    if (node.maxAttempts !== undefined && !(Number.isInteger(node.maxAttempts) && node.maxAttempts >= 1)) {
      fail(`Node "${name}": maxAttempts must be a positive integer, got ${describe(node.maxAttempts)}.`);
    }
    const { next } = node;
    if (next !== undefined && typeof next !== "function" && !(Array.isArray(next) && next.every((n) => typeof n === "string"))) {
      fail(`Node "${name}": next must be a list of node names or a router function.`);
    }
    nodes.set(name, node);
  });
  for (const node of nodes.values()) {
    if (typeof node.next === "function" || node.next === undefined) continue;
    for (const n of node.next) if (!nodes.has(n)) fail(`Node "${node.name}": next names unknown node "${n}".`);
  }
  if (!Array.isArray(workflow.start) || !workflow.start.every((n) => typeof n === "string")) fail("workflow.start must be a list of node names.");
  for (const n of workflow.start) if (!nodes.has(n)) fail(`workflow.start names unknown node "${n}".`);
  if (workflow.migrate !== undefined && typeof workflow.migrate !== "function") fail("workflow.migrate must be a function.");

  if (!isPlainObject(options)) fail("options must be an object with saver and threadId.");
  const saver = options.saver as unknown;
  if (typeof saver !== "object" || saver === null) fail("options.saver must be a CheckpointSaver.");
  for (const method of ["getTuple", "put", "putWrites"] as const) {
    if (typeof (saver as Record<string, unknown>)[method] !== "function") fail(`options.saver must be a CheckpointSaver: its ${method} must be a function.`);
  }
  if (typeof options.threadId !== "string" || options.threadId.trim() === "") fail("options.threadId must be a non-empty string.");
  if (options.input !== undefined && options.input !== null && !isPlainObject(options.input)) fail("options.input must be an object (the initial state).");
  if (options.checkpointId !== undefined && (typeof options.checkpointId !== "string" || options.checkpointId === "")) {
    fail("options.checkpointId must be a non-empty string.");
  }
  if (options.onReport !== undefined && typeof options.onReport !== "function") fail("options.onReport must be a function.");
  if (options.sqliteFile !== undefined && typeof options.sqliteFile !== "string") fail("options.sqliteFile must be a string (the SQLite file path).");
  return nodes;
}

// ---------------------------------------------------------------- metrics

export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume").length;
  const n = reports.length;
  const times = reports.map((report) => report.recoveryMs).filter((ms): ms is number => typeof ms === "number" && Number.isFinite(ms));
  const sorted = [...times].sort((a, b) => a - b);
  return {
    resumes,
    hitRate: n > 0 ? reports.filter((report) => report.resumedFrom !== null).length / n : null,
    failureRate: n > 0 ? reports.filter((report) => report.outcome === "failed").length / n : null,
    meanRecoveryMs: sorted.length > 0 ? sorted.reduce((sum, ms) => sum + ms, 0) / sorted.length : null,
    p95RecoveryMs: sorted.length > 0 ? sorted[Math.floor(0.95 * sorted.length)] ?? null : null,
  };
}
