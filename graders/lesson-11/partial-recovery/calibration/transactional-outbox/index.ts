/**
 * Calibration answer (excellent): an alternative correct design of another architecture, a
 * transactional outbox. It opens the thread's SQLite file itself (options.sqliteFile) and keeps
 * a table of tasks next to the checkpoints. When a checkpoint schedules nodes, the rows of those
 * tasks (each with a random idempotency key made once) are inserted IN THE SAME TRANSACTION as
 * the checkpoint; the tasks are dispatched afterwards and their results written back to the row.
 * After a crash the row is still there: a done task is read back, an undone one is dispatched
 * again with the key in its row. Compensations are rows of their own.
 * On a resume, a node with revalidate() is asked before its first run in the call (before its
 * row is dispatched); a "no" stops the run as stale, dispatching and committing nothing. Each
 * call that passed validation is reported to options.onReport when it ends; recoveryMetrics()
 * summarises such reports.
 */
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import { newCheckpointId, SqliteSaver, type Checkpoint, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple } from "#runtime";

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
export interface RunOptions<S extends WorkflowState = WorkflowState> { saver: CheckpointSaver; sqliteFile?: string; threadId: string; input?: S; checkpointId?: string; onReport?(report: RunReport): void }
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
    super(`checkpoint ${checkpointId} holds a version-${checkpointVersion} state but the workflow is version ${workflowVersion}: give it migrate(), or start a new thread`);
  }
}

const OUTBOX = `
CREATE TABLE IF NOT EXISTS task_outbox (
  thread TEXT NOT NULL, checkpoint TEXT NOT NULL, node TEXT NOT NULL,
  idem_key TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', result TEXT,
  PRIMARY KEY (thread, checkpoint, node));
CREATE TABLE IF NOT EXISTS task_undo (
  thread TEXT NOT NULL, checkpoint TEXT NOT NULL, effect_key TEXT NOT NULL,
  PRIMARY KEY (thread, checkpoint, effect_key));`;

interface Row { node: string; idem_key: string; status: string; result: string | null }

/** What the call's report needs, filled in by the dispatcher as it goes. */
interface Progress { resumed: boolean; from?: string; resumedFrom: string | null; firstRun?: number }

function refuse(message: string): never {
  throw new RecoveryError(message);
}

function validate(workflow: Workflow, options: RunOptions): Map<string, WorkflowNode> {
  if (!workflow || typeof workflow !== "object") refuse("the workflow must be an object");
  if (!Number.isInteger(workflow.schemaVersion) || workflow.schemaVersion < 1) refuse("schemaVersion must be a positive integer");
  if (!Array.isArray(workflow.nodes) || workflow.nodes.length === 0) refuse("the workflow has no nodes");
  const nodes = new Map<string, WorkflowNode>();
  for (const node of workflow.nodes) {
    if (typeof node?.name !== "string" || node.name === "") refuse("a node has no name");
    if (nodes.has(node.name)) refuse(`the node name "${node.name}" is used twice`);
    if (node.kind !== "pure" && node.kind !== "effect") refuse(`node "${node.name}" has kind ${String(node.kind)}`);
    if (typeof node.run !== "function") refuse(`node "${node.name}": run must be a function`);
    if (node.revalidate !== undefined && typeof node.revalidate !== "function") refuse(`node "${node.name}": revalidate must be a function`);
    if (node.next !== undefined && !Array.isArray(node.next) && typeof node.next !== "function") refuse(`node "${node.name}": next must be a list of node names or a router function`);
    nodes.set(node.name, node);
  }
  if (!Array.isArray(workflow.start) || workflow.start.length === 0) refuse("start names no node");
  for (const name of [...workflow.start, ...workflow.nodes.flatMap((n) => (Array.isArray(n.next) ? n.next : []))]) {
    if (!nodes.has(name)) refuse(`"${name}" is named as a start or next node, but there is no such node`);
  }
  if (typeof options?.threadId !== "string" || options.threadId === "") refuse("threadId must be a non-empty string");
  if (typeof options.sqliteFile !== "string" || options.sqliteFile === "") refuse("sqliteFile (the saver's SQLite file) is required by this executor");
  if (options.input !== undefined && (typeof options.input !== "object" || options.input === null || Array.isArray(options.input))) refuse("input must be an object");
  if (options.checkpointId !== undefined && (typeof options.checkpointId !== "string" || options.checkpointId === "")) refuse("checkpointId must be a non-empty string");
  if (options.onReport !== undefined && typeof options.onReport !== "function") refuse("onReport must be a function");
  return nodes;
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const began = performance.now();
  const nodes = validate(workflow as Workflow, options as RunOptions);
  const progress: Progress = { resumed: false, resumedFrom: null };
  let outcome: RunReport["outcome"] = "failed";
  try {
    const db = new Database(options.sqliteFile!);
    try {
      const saver = new SqliteSaver(db);
      db.exec(OUTBOX);
      const result = await new Dispatcher(workflow, options, nodes, db, saver, progress).run();
      outcome = result.status;
      return result;
    } finally {
      db.close();
    }
  } finally {
    report(options, workflow.schemaVersion, outcome, progress, began);
  }
}

/** One report per validated call, when it ends: a resume's recovery time runs to the first dispatch, or to the result. */
function report(options: RunOptions<WorkflowState>, schemaVersion: number, outcome: RunReport["outcome"], progress: Progress, began: number): void {
  if (!options.onReport) return;
  const resumedFrom = progress.resumed ? progress.resumedFrom : null;
  const recoveryMs = resumedFrom === null ? null : (progress.firstRun ?? performance.now()) - began;
  try {
    options.onReport({ threadId: options.threadId, schemaVersion, kind: progress.resumed ? "resume" : "start", outcome, resumedFrom, recoveryMs });
  } catch {
    // A metrics sink that throws must not change the run's outcome.
  }
}

/** The dashboard's numbers, over the resumes only; p95 by nearest rank; null when there is nothing to count. */
export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((r) => r.kind === "resume");
  const times = resumes.map((r) => r.recoveryMs).filter((ms): ms is number => typeof ms === "number").sort((a, b) => a - b);
  const rate = (count: number) => (resumes.length > 0 ? count / resumes.length : null);
  return {
    resumes: resumes.length,
    hitRate: rate(resumes.filter((r) => r.resumedFrom !== null).length),
    failureRate: rate(resumes.filter((r) => r.outcome === "failed").length),
    meanRecoveryMs: times.length > 0 ? times.reduce((a, b) => a + b, 0) / times.length : null,
    p95RecoveryMs: times.length > 0 ? times[Math.ceil(0.95 * times.length) - 1]! : null,
  };
}

class Dispatcher<S extends WorkflowState> {
  private readonly tasksOf: Database.Statement;
  private readonly addTask: Database.Statement;
  private readonly finish: Database.Statement;
  private readonly undone: Database.Statement;
  private readonly markUndone: Database.Statement;
  /** Nodes whose revalidate() said yes in this call. */
  private readonly revalidated = new Set<string>();

  constructor(
    private readonly workflow: Workflow<S>,
    private readonly options: RunOptions<S>,
    private readonly nodes: Map<string, WorkflowNode>,
    private readonly db: Database.Database,
    private readonly saver: SqliteSaver,
    private readonly progress: Progress,
  ) {
    this.tasksOf = db.prepare("SELECT node, idem_key, status, result FROM task_outbox WHERE thread = ? AND checkpoint = ?");
    this.addTask = db.prepare("INSERT OR IGNORE INTO task_outbox (thread, checkpoint, node, idem_key) VALUES (?, ?, ?, ?)");
    this.finish = db.prepare("UPDATE task_outbox SET status = ?, result = ? WHERE thread = ? AND checkpoint = ? AND node = ?");
    this.undone = db.prepare("SELECT 1 FROM task_undo WHERE thread = ? AND checkpoint = ? AND effect_key = ?");
    this.markUndone = db.prepare("INSERT OR IGNORE INTO task_undo (thread, checkpoint, effect_key) VALUES (?, ?, ?)");
  }

  private get thread() {
    return this.options.threadId;
  }

  /** The checkpoint and the outbox rows of the tasks it schedules, in one transaction. */
  private commit(parentId: string | undefined, state: WorkflowState, next: string[], metadata: CheckpointMetadata, version = this.workflow.schemaVersion): string {
    const checkpoint: Checkpoint = { v: 1, id: newCheckpointId(), ts: new Date().toISOString(), channelValues: state, next, stateSchemaVersion: version };
    this.db.transaction(() => {
      // SqliteSaver.put runs its statements synchronously, so they join this transaction.
      void this.saver.put({ threadId: this.thread, ...(parentId && { checkpointId: parentId }) }, checkpoint, metadata);
      for (const node of next) this.addTask.run(this.thread, checkpoint.id, node, randomUUID());
    })();
    return checkpoint.id;
  }

  private async load(checkpointId?: string): Promise<CheckpointTuple | undefined> {
    return this.saver.getTuple({ threadId: this.thread, ...(checkpointId && { checkpointId }) });
  }

  private versioned(tuple: CheckpointTuple): S {
    const from = tuple.checkpoint.stateSchemaVersion ?? 1;
    if (from === this.workflow.schemaVersion) return tuple.checkpoint.channelValues as S;
    if (!this.workflow.migrate) throw new SchemaMismatchError(from, this.workflow.schemaVersion, tuple.config.checkpointId);
    return this.workflow.migrate(tuple.checkpoint.channelValues, from);
  }

  private async begin(): Promise<CheckpointTuple> {
    const latest = await this.load();
    this.progress.resumed = latest !== undefined;
    this.progress.from = latest?.config.checkpointId;
    const wanted = this.options.checkpointId;
    if (wanted !== undefined) {
      const base = (await this.load(wanted)) ?? refuse(`thread "${this.thread}" has no checkpoint "${wanted}"`);
      this.progress.from = base.config.checkpointId;
      if (base.config.checkpointId === latest?.config.checkpointId) return base;
      this.versioned(base);
      this.schedulable(base);
      const id = this.commit(base.config.checkpointId, base.checkpoint.channelValues, [...base.checkpoint.next], { source: "fork", step: Number(base.metadata.step), forkedFrom: base.config.checkpointId }, base.checkpoint.stateSchemaVersion ?? 1);
      return (await this.load(id))!;
    }
    if (latest) return latest;
    if (this.options.input === undefined) refuse(`thread "${this.thread}" does not exist yet: pass input to start it`);
    return (await this.load(this.commit(undefined, this.options.input, [...this.workflow.start], { source: "input", step: -1 })))!;
  }

  /** A checkpoint to continue from (or fork) must schedule only nodes this workflow defines. */
  private schedulable(tuple: CheckpointTuple): void {
    for (const name of tuple.checkpoint.next) if (!this.nodes.has(name)) refuse(`checkpoint ${tuple.config.checkpointId} schedules "${name}", which this workflow does not have`);
  }

  /**
   * Drift: on a resume, each node about to be dispatched for the first time in this call confirms
   * that the facts it acts on still hold. A "no" (or a check that cannot be done) is a stale run:
   * nothing of the step is dispatched or committed.
   */
  private async stale(at: CheckpointTuple, state: S): Promise<RunResult<S> | undefined> {
    if (!this.progress.resumed) return undefined;
    const rows = this.tasksOf.all(this.thread, at.config.checkpointId) as Row[];
    for (const name of at.checkpoint.next) {
      const node = this.nodes.get(name)!;
      const settled = rows.some((row) => row.node === name && row.status !== "pending");
      if (!node.revalidate || settled || this.revalidated.has(name)) continue;
      let error: string | undefined;
      try {
        if ((await node.revalidate(state, { threadId: this.thread, checkpointId: at.config.checkpointId, node: name })) !== true) {
          error = `node "${name}" is stale: revalidate() says the facts it acts on changed while the run was paused`;
        }
      } catch (thrown) {
        error = `node "${name}" is stale: its facts could not be revalidated: ${thrown instanceof Error ? thrown.message : String(thrown)}`;
      }
      if (error) return { state, status: "stale", checkpointId: at.config.checkpointId, error };
      this.revalidated.add(name);
    }
    return undefined;
  }

  /** Dispatches one task from its outbox row, or reads its recorded result back. */
  private async dispatch(at: CheckpointTuple, state: S, row: Row): Promise<{ update?: WorkflowState; error?: string }> {
    if (row.status === "done") return { update: JSON.parse(row.result!) as WorkflowState };
    if (row.status === "failed") return { error: row.result! };
    const node = this.nodes.get(row.node)!;
    const tries = node.maxAttempts ?? 1;
    for (let attempt = 1; ; attempt++) {
      try {
        this.progress.firstRun ??= performance.now();
        const returned = await node.run(state, { threadId: this.thread, checkpointId: at.config.checkpointId, node: row.node, idempotencyKey: row.idem_key, attempt });
        if (returned != null && (typeof returned !== "object" || Array.isArray(returned))) {
          refuse(`node "${row.node}" resolved to ${Array.isArray(returned) ? "an array" : typeof returned}; run must resolve to an object of state updates or nothing`);
        }
        const update = (returned ?? {}) as WorkflowState;
        this.finish.run("done", JSON.stringify(update), this.thread, at.config.checkpointId, row.node);
        return { update };
      } catch (error) {
        if (error instanceof RecoveryError) throw error;
        if (attempt >= tries) {
          const message = `node "${row.node}" failed after ${attempt} attempt(s): ${error instanceof Error ? error.message : String(error)}`;
          this.finish.run("failed", message, this.thread, at.config.checkpointId, row.node);
          return { error: message };
        }
      }
    }
  }

  private rows(at: CheckpointTuple): Row[] {
    const rows = this.tasksOf.all(this.thread, at.config.checkpointId) as Row[];
    // A checkpoint written before this executor was in place: give its tasks rows now.
    for (const node of at.checkpoint.next) if (!rows.some((row) => row.node === node)) this.addTask.run(this.thread, at.config.checkpointId, node, randomUUID());
    const all = this.tasksOf.all(this.thread, at.config.checkpointId) as Row[];
    return at.checkpoint.next.map((node) => all.find((row) => row.node === node)!);
  }

  async run(): Promise<RunResult<S>> {
    let at = await this.begin();
    let state = this.versioned(at);
    this.schedulable(at);
    if (this.progress.resumed) this.progress.resumedFrom = this.progress.from ?? null;
    while (at.checkpoint.next.length > 0) {
      const stale = await this.stale(at, state);
      if (stale) return stale;
      const rows = this.rows(at);
      const results = await Promise.all(rows.map((row) => this.dispatch(at, state, row)));
      const failed = results.findIndex((result) => result.error !== undefined);
      if (failed >= 0) return this.compensate(at, state, rows[failed]!.node, results[failed]!.error!);
      for (const result of results) state = { ...state, ...result.update };
      const next: string[] = [];
      for (const name of at.checkpoint.next) {
        const node = this.nodes.get(name)!;
        const targets = typeof node.next === "function" ? node.next(state) : (node.next ?? []);
        if (!Array.isArray(targets) || !targets.every((target) => typeof target === "string")) refuse(`the router of "${name}" returned ${JSON.stringify(targets)}, not a list of node names`);
        for (const target of targets) {
          if (!this.nodes.has(target)) refuse(`the router of "${name}" returned "${target}", which is not a node`);
          if (!next.includes(target)) next.push(target);
        }
      }
      const id = this.commit(at.config.checkpointId, state, next, { source: "loop", step: Number(at.metadata.step) + 1, node: at.checkpoint.next.join(",") });
      at = (await this.load(id))!;
    }
    const error = typeof at.metadata.error === "string" ? at.metadata.error : undefined;
    return { state, status: at.metadata.status === "compensated" ? "compensated" : "completed", checkpointId: at.config.checkpointId, ...(error && { error }) };
  }

  private async compensate(at: CheckpointTuple, state: S, failedNode: string, error: string): Promise<RunResult<S>> {
    const timeline: CheckpointTuple[] = [];
    for (let step: CheckpointTuple | undefined = at; step; step = step.parentConfig ? await this.saver.getTuple(step.parentConfig) : undefined) timeline.unshift(step);
    const done: Array<{ node: WorkflowNode; key: string; update: WorkflowState }> = [];
    timeline.forEach((step, index) => {
      if (timeline[index + 1]?.metadata.source === "fork") return; // ran on the branch this one forked from
      for (const row of this.tasksOf.all(this.thread, step.config.checkpointId) as Row[]) {
        const node = this.nodes.get(row.node);
        if (node?.kind === "effect" && row.status === "done") done.push({ node, key: row.idem_key, update: JSON.parse(row.result!) as WorkflowState });
      }
    });
    for (const effect of done.reverse()) {
      if (!effect.node.compensate || this.undone.get(this.thread, at.config.checkpointId, effect.key)) continue;
      await effect.node.compensate(state, { threadId: this.thread, node: effect.node.name, effectKey: effect.key, idempotencyKey: `undo-${effect.key}`, effectUpdate: effect.update });
      this.markUndone.run(this.thread, at.config.checkpointId, effect.key);
    }
    const id = this.commit(at.config.checkpointId, state, [], { source: "loop", step: Number(at.metadata.step) + 1, node: failedNode, status: "compensated", error });
    return { state, status: "compensated", checkpointId: id, error };
  }
}
