/**
 * Calibration answer (excellent): an alternative correct design, written from the lesson page
 * and the contract. Each task's idempotency key is a random UUID generated once, before the
 * task first runs, and persisted as a pending write of its own ("key" journal entry) before the
 * node is called; every retry, resume and process reads that entry back, so the key is stable
 * across retries and crashes, and distinct across threads, loop iterations and forks (each has
 * its own task). Results and compensations are journalled as pending writes too.
 * On a resume, a node with revalidate() is asked before its first run in the call; a "no" stops
 * the run as stale before anything of that step is journalled. Each call that passed validation
 * is reported to options.onReport when it ends; recoveryMetrics() summarises such reports.
 */
import { randomUUID } from "node:crypto";
import { newCheckpointId, taskIdFor, type Checkpoint, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple } from "#runtime";

export type WorkflowState = Record<string, unknown>;
export type NodeKind = "pure" | "effect";
export interface NodeContext { threadId: string; checkpointId: string; node: string; idempotencyKey: string; attempt: number }
export interface CompensationContext { threadId: string; node: string; effectKey: string; idempotencyKey: string; effectUpdate: WorkflowState }
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
export interface RunOptions<S extends WorkflowState = WorkflowState> { saver: CheckpointSaver; threadId: string; input?: S; checkpointId?: string; sqliteFile?: string; onReport?(report: RunReport): void }
export type RunStatus = "completed" | "compensated" | "stale";
export interface RunResult<S extends WorkflowState = WorkflowState> { state: S; status: RunStatus; checkpointId: string; error?: string }
export interface RunReport { threadId: string; schemaVersion: number; kind: "start" | "resume"; outcome: RunStatus | "failed"; resumedFrom: string | null; recoveryMs: number | null }
export interface RecoveryMetrics { resumes: number; hitRate: number | null; failureRate: number | null; meanRecoveryMs: number | null; p95RecoveryMs: number | null }

export class RecoveryError extends Error {
  override name = "RecoveryError";
}
export class SchemaMismatchError extends RecoveryError {
  override name = "SchemaMismatchError";
  constructor(readonly checkpointVersion: number, readonly workflowVersion: number, checkpointId: string) {
    super(`Checkpoint ${checkpointId} has state schema version ${checkpointVersion}, the workflow is version ${workflowVersion}; add migrate() or start a new thread.`);
  }
}

const KEY = "journal:key";
const RESULT = "journal:result";
const FAILED = "journal:failed";
const UNDONE = "journal:undone";

type Tuple = CheckpointTuple;

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new RecoveryError(message);
}

function validate(workflow: Workflow, options: RunOptions): Map<string, WorkflowNode> {
  check(workflow && typeof workflow === "object", "workflow must be an object");
  check(Number.isInteger(workflow.schemaVersion) && workflow.schemaVersion >= 1, "workflow.schemaVersion must be an integer >= 1");
  check(Array.isArray(workflow.nodes) && workflow.nodes.length > 0, "workflow.nodes must be a non-empty array");
  const byName = new Map<string, WorkflowNode>();
  for (const node of workflow.nodes) {
    check(node && typeof node.name === "string" && node.name !== "", "every node needs a non-empty name");
    check(!byName.has(node.name), `two nodes are called "${node.name}"`);
    check(node.kind === "pure" || node.kind === "effect", `node "${node.name}": kind must be pure or effect`);
    check(typeof node.run === "function", `node "${node.name}": run must be a function`);
    check(node.revalidate === undefined || typeof node.revalidate === "function", `node "${node.name}": revalidate must be a function`);
    check(node.next === undefined || Array.isArray(node.next) || typeof node.next === "function", `node "${node.name}": next must be a list of node names or a router function`);
    byName.set(node.name, node);
  }
  check(Array.isArray(workflow.start) && workflow.start.length > 0, "workflow.start must name at least one node");
  for (const name of workflow.start) check(byName.has(name), `start names unknown node "${name}"`);
  for (const node of workflow.nodes) if (Array.isArray(node.next)) for (const name of node.next) check(byName.has(name), `node "${node.name}" has unknown next "${name}"`);
  check(options && typeof options === "object", "options must be an object");
  check(options.saver && typeof options.saver.getTuple === "function" && typeof options.saver.put === "function", "options.saver must be a CheckpointSaver");
  check(typeof options.threadId === "string" && options.threadId !== "", "options.threadId must be a non-empty string");
  check(options.input === undefined || (typeof options.input === "object" && options.input !== null && !Array.isArray(options.input)), "options.input must be an object");
  check(options.onReport === undefined || typeof options.onReport === "function", "options.onReport must be a function");
  return byName;
}

class Run<S extends WorkflowState> {
  private readonly nodes: Map<string, WorkflowNode>;
  /** For the report: did the thread have checkpoints when the call began, which one it continued from, when the first node started. */
  private resumed = false;
  private from: string | undefined;
  private resumedFrom: string | null = null;
  private firstRun: number | undefined;
  /** Nodes whose revalidate() said yes in this call. */
  private readonly revalidated = new Set<string>();

  constructor(private readonly workflow: Workflow<S>, private readonly options: RunOptions<S>, private readonly began: number) {
    this.nodes = validate(workflow as Workflow, options as RunOptions);
  }

  private get saver() {
    return this.options.saver;
  }

  private async save(parent: Tuple | undefined, state: WorkflowState, next: string[], metadata: CheckpointMetadata, version = this.workflow.schemaVersion): Promise<Tuple> {
    const checkpoint: Checkpoint = { v: 1, id: newCheckpointId(), ts: new Date().toISOString(), channelValues: state, next, stateSchemaVersion: version };
    const config = parent ? { threadId: this.options.threadId, checkpointNs: parent.config.checkpointNs, checkpointId: parent.config.checkpointId } : { threadId: this.options.threadId };
    await this.saver.put(config, checkpoint, metadata);
    const tuple = await this.saver.getTuple({ threadId: this.options.threadId, checkpointId: checkpoint.id });
    if (!tuple) throw new RecoveryError("the saver lost the checkpoint it was just given");
    return tuple;
  }

  private stateOf(tuple: Tuple): S {
    const version = tuple.checkpoint.stateSchemaVersion ?? 1;
    const state = tuple.checkpoint.channelValues as S;
    if (version === this.workflow.schemaVersion) return state;
    if (!this.workflow.migrate) throw new SchemaMismatchError(version, this.workflow.schemaVersion, tuple.config.checkpointId);
    return this.workflow.migrate(state, version);
  }

  private writesOf(tuple: Tuple, task: string, channel: string): unknown[] {
    return (tuple.pendingWrites ?? []).filter(([id, ch]) => id === task && ch === channel).map(([, , value]) => value);
  }

  async start(): Promise<Tuple> {
    const { threadId, checkpointId, input } = this.options;
    const latest = await this.saver.getTuple({ threadId });
    this.resumed = latest !== undefined;
    this.from = latest?.config.checkpointId;
    if (checkpointId !== undefined) {
      check(typeof checkpointId === "string" && checkpointId !== "", "options.checkpointId must be a non-empty string");
      const chosen = await this.saver.getTuple({ threadId, checkpointId });
      check(chosen, `thread "${threadId}" has no checkpoint "${checkpointId}"`);
      this.from = chosen.config.checkpointId;
      if (chosen.config.checkpointId === latest?.config.checkpointId) return chosen;
      this.stateOf(chosen);
      this.schedulable(chosen);
      return this.save(chosen, chosen.checkpoint.channelValues, [...chosen.checkpoint.next], { source: "fork", step: Number(chosen.metadata?.step ?? 0), forkedFrom: chosen.config.checkpointId }, chosen.checkpoint.stateSchemaVersion ?? 1);
    }
    if (latest) return latest;
    check(input !== undefined, `thread "${threadId}" is new: pass options.input`);
    return this.save(undefined, input, [...this.workflow.start], { source: "input", step: -1 });
  }

  /** A checkpoint to continue from must schedule only nodes this workflow defines. */
  private schedulable(tuple: Tuple): void {
    for (const name of tuple.checkpoint.next) check(this.nodes.has(name), `checkpoint ${tuple.config.checkpointId} schedules "${name}", which this workflow does not define`);
  }

  /** The task's key: read back from the journal, or made now and journalled before the node runs. */
  private async keyFor(tuple: Tuple, node: string): Promise<string> {
    const task = taskIdFor(tuple.config.checkpointId, `${node}\u0000key`);
    const saved = this.writesOf(tuple, task, KEY)[0];
    if (typeof saved === "string") return saved;
    const key = randomUUID();
    await this.saver.putWrites(tuple.config, [[KEY, key]], task);
    return key;
  }

  private async task(tuple: Tuple, state: S, name: string): Promise<{ update?: WorkflowState; error?: string }> {
    const task = taskIdFor(tuple.config.checkpointId, name);
    const done = this.writesOf(tuple, task, RESULT);
    if (done.length > 0) return { update: done[0] as WorkflowState };
    const failed = this.writesOf(tuple, task, FAILED);
    if (failed.length > 0) return { error: String(failed[0]) };
    const node = this.nodes.get(name)!;
    const key = await this.keyFor(tuple, name);
    const attempts = node.maxAttempts ?? 1;
    for (let attempt = 1; ; attempt++) {
      try {
        this.firstRun ??= performance.now();
        const returned = await node.run(state, { threadId: this.options.threadId, checkpointId: tuple.config.checkpointId, node: name, idempotencyKey: key, attempt });
        check(returned == null || (typeof returned === "object" && !Array.isArray(returned)), `node "${name}" resolved to ${Array.isArray(returned) ? "an array" : typeof returned}; run must resolve to an object of state updates or nothing`);
        const update = (returned ?? {}) as WorkflowState;
        await this.saver.putWrites(tuple.config, [[RESULT, update]], task);
        return { update };
      } catch (error) {
        if (error instanceof RecoveryError) throw error;
        if (attempt >= attempts) {
          const message = `node "${name}" failed after ${attempt} attempt(s): ${error instanceof Error ? error.message : String(error)}`;
          await this.saver.putWrites(tuple.config, [[FAILED, message]], task);
          return { error: message };
        }
      }
    }
  }

  private route(ran: readonly string[], state: S): string[] {
    const next: string[] = [];
    for (const name of ran) {
      const node = this.nodes.get(name)!;
      const targets = typeof node.next === "function" ? node.next(state) : (node.next ?? []);
      check(Array.isArray(targets) && targets.every((target) => typeof target === "string"), `the router of "${name}" returned ${JSON.stringify(targets)}; it must return a list of node names`);
      for (const target of targets) {
        check(this.nodes.has(target), `the router of "${name}" returned unknown node "${target}"`);
        if (!next.includes(target)) next.push(target);
      }
    }
    return next;
  }

  /** Runs the call and reports it once when it ends, however it ends. */
  async reported(): Promise<RunResult<S>> {
    let outcome: RunReport["outcome"] = "failed";
    try {
      const result = await this.run();
      outcome = result.status;
      return result;
    } finally {
      this.report(outcome);
    }
  }

  private report(outcome: RunReport["outcome"]): void {
    if (!this.options.onReport) return;
    const resumedFrom = this.resumed ? this.resumedFrom : null;
    const recoveryMs = resumedFrom === null ? null : (this.firstRun ?? performance.now()) - this.began;
    try {
      this.options.onReport({ threadId: this.options.threadId, schemaVersion: this.workflow.schemaVersion, kind: this.resumed ? "resume" : "start", outcome, resumedFrom, recoveryMs });
    } catch {
      // A metrics sink that throws must not change the run's outcome.
    }
  }

  async run(): Promise<RunResult<S>> {
    let tuple = await this.start();
    let state = this.stateOf(tuple);
    this.schedulable(tuple);
    if (this.resumed) this.resumedFrom = this.from ?? null;
    while (tuple.checkpoint.next.length > 0) {
      const ran = [...tuple.checkpoint.next];
      const stale = await this.revalidate(tuple, state, ran);
      if (stale) return stale;
      const outcomes = await Promise.all(ran.map((name) => this.task(tuple, state, name)));
      const failure = outcomes.findIndex((outcome) => outcome.error !== undefined);
      if (failure >= 0) return this.undo(tuple, state, ran[failure]!, outcomes[failure]!.error!);
      for (const outcome of outcomes) state = { ...state, ...outcome.update };
      tuple = await this.save(tuple, state, this.route(ran, state), { source: "loop", step: Number(tuple.metadata?.step ?? -1) + 1, node: ran.join(",") });
    }
    const error = typeof tuple.metadata?.error === "string" ? tuple.metadata.error : undefined;
    return { state, status: tuple.metadata?.status === "compensated" ? "compensated" : "completed", checkpointId: tuple.config.checkpointId, ...(error && { error }) };
  }

  /** Drift: on a resume, each node about to run for the first time in this call confirms its facts still hold, before anything of the step is journalled. */
  private async revalidate(tuple: Tuple, state: S, ran: readonly string[]): Promise<RunResult<S> | undefined> {
    if (!this.resumed) return undefined;
    for (const name of ran) {
      const node = this.nodes.get(name)!;
      const task = taskIdFor(tuple.config.checkpointId, name);
      const settled = this.writesOf(tuple, task, RESULT).length > 0 || this.writesOf(tuple, task, FAILED).length > 0;
      if (!node.revalidate || settled || this.revalidated.has(name)) continue;
      let error: string | undefined;
      try {
        const current = await node.revalidate(state, { threadId: this.options.threadId, checkpointId: tuple.config.checkpointId, node: name });
        if (current !== true) error = `node "${name}" is stale: revalidate() says the facts it acts on changed while the run was paused`;
      } catch (thrown) {
        error = `node "${name}" is stale: its facts could not be revalidated: ${thrown instanceof Error ? thrown.message : String(thrown)}`;
      }
      if (error) return { state, status: "stale", checkpointId: tuple.config.checkpointId, error };
      this.revalidated.add(name);
    }
    return undefined;
  }

  /** Saga: undo this timeline's finished effects, newest first, each journalled once. */
  private async undo(stale: Tuple, state: S, failedNode: string, error: string): Promise<RunResult<S>> {
    const tuple = (await this.saver.getTuple(stale.config)) ?? stale;
    const chain: Tuple[] = [];
    for (let at: Tuple | undefined = tuple; at; at = at.parentConfig ? await this.saver.getTuple(at.parentConfig) : undefined) chain.unshift(at);
    const effects: Array<{ node: WorkflowNode; key: string; update: WorkflowState }> = [];
    chain.forEach((step, index) => {
      if (chain[index + 1]?.metadata?.source === "fork") return; // that step's tasks ran on the original branch
      for (const name of step.checkpoint.next) {
        const node = this.nodes.get(name);
        const update = this.writesOf(step, taskIdFor(step.config.checkpointId, name), RESULT)[0];
        const key = this.writesOf(step, taskIdFor(step.config.checkpointId, `${name}\u0000key`), KEY)[0];
        if (node?.kind === "effect" && update !== undefined && typeof key === "string") effects.push({ node, key, update: update as WorkflowState });
      }
    });
    for (const effect of effects.reverse()) {
      const task = taskIdFor(tuple.config.checkpointId, `${effect.key}\u0000undo`);
      if (this.writesOf(tuple, task, UNDONE).length > 0 || !effect.node.compensate) continue;
      await effect.node.compensate(state, { threadId: this.options.threadId, node: effect.node.name, effectKey: effect.key, idempotencyKey: `${effect.key}:undo`, effectUpdate: effect.update });
      await this.saver.putWrites(tuple.config, [[UNDONE, effect.key]], task);
    }
    const closed = await this.save(tuple, state, [], { source: "loop", step: Number(tuple.metadata?.step ?? -1) + 1, node: failedNode, status: "compensated", error });
    return { state, status: "compensated", checkpointId: closed.config.checkpointId, error };
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const began = performance.now();
  return new Run(workflow, options, began).reported();
}

/** The dashboard's numbers, over the resumes only; p95 by nearest rank; null when there is nothing to count. */
export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume");
  const times = resumes.flatMap((report) => (typeof report.recoveryMs === "number" ? [report.recoveryMs] : [])).sort((a, b) => a - b);
  const share = (count: number) => (resumes.length === 0 ? null : count / resumes.length);
  return {
    resumes: resumes.length,
    hitRate: share(resumes.filter((report) => report.resumedFrom !== null).length),
    failureRate: share(resumes.filter((report) => report.outcome === "failed").length),
    meanRecoveryMs: times.length === 0 ? null : times.reduce((sum, ms) => sum + ms, 0) / times.length,
    p95RecoveryMs: times.length === 0 ? null : times[Math.ceil(0.95 * times.length) - 1]!,
  };
}
