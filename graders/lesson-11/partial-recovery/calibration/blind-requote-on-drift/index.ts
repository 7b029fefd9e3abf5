/**
 * lesson-11 / partial-recovery: calibration answer "blind-requote-on-drift" (written blind, from the
 * lesson page, the starter's contract and runtime/ only). Correct on items 1-7 and 9; wrong on 8.
 *
 * Design: derived keys and the checkpointer's pending writes, through `options.saver` only.
 * - A task is (checkpoint that scheduled it, node). Its idempotency key is `thread:checkpoint:node`,
 *   so every process computes the same key from the store, and a new thread, loop iteration or fork
 *   (a new checkpoint id) gets a new one. Its pending-write slot is `taskIdFor(checkpoint, node)`.
 * - As soon as a task returns, its update is saved with putWrites (one write per key, or
 *   NO_WRITES), before the step's checkpoint; a task that fails for good saves an ERROR write. A
 *   resume reads them back from `tuple.pendingWrites`: finished tasks are reused, failed ones are
 *   never run again.
 * - Saga: the finished effects of this timeline are found by walking parent pointers from the
 *   failing checkpoint (a parent's tasks count only when the child is its "loop" checkpoint, not a
 *   fork of it); each compensation is recorded as a pending write on the failing checkpoint
 *   before the next one starts, and its key is the effect's key plus ":compensate".
 * - Migration: tasks of a migrated checkpoint write to a slot named after the new version, so the
 *   old-shape writes are ignored and those tasks run again with their (unchanged) key.
 *
 * Intended flaw: drift (item 8) is "repaired" instead of reported. When a resumed node's
 * revalidate returns false or throws, this executor walks back to the nearest step that ran a pure
 * node (the quote), runs that node again on the spot, saves its result as a new step and carries
 * on, so the charge runs from that new checkpoint with a new idempotency key. If the interrupted
 * charge had already reached the provider before the crash, the customer is charged twice; and
 * the run never resolves with status "stale" when there is an earlier pure node to re-run (only
 * when there is none). The lesson's rule is to stop (status "stale", nothing run or saved) and
 * leave re-quoting to whoever forks.
 */
import { ERROR, NO_WRITES, isSpecialChannel, newCheckpointId, taskIdFor, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple, type PendingWrite } from "#runtime";

// ---------------------------------------------------------------- contract types and errors (given: as in the starter)

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

export interface RunOptions<S extends WorkflowState = WorkflowState> {
  saver: CheckpointSaver;
  sqliteFile?: string;
  threadId: string;
  input?: S;
  checkpointId?: string;
  onReport?(report: RunReport): void;
}

export type RunStatus = "completed" | "compensated" | "stale";
export interface RunResult<S extends WorkflowState = WorkflowState> { state: S; status: RunStatus; checkpointId: string; error?: string }
export interface RunReport {
  threadId: string;
  schemaVersion: number;
  kind: "start" | "resume";
  outcome: RunStatus | "failed";
  resumedFrom: string | null;
  recoveryMs: number | null;
}
export interface RecoveryMetrics { resumes: number; hitRate: number | null; failureRate: number | null; meanRecoveryMs: number | null; p95RecoveryMs: number | null }

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

// ---------------------------------------------------------------- helpers

/** Marks a finished compensation, in a pending-write slot of its own on the failing checkpoint. */
const COMPENSATED = "__compensated__";

type AnyNode = WorkflowNode<any>;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
const uniq = (names: readonly string[]) => [...new Set(names)];

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function refuse(message: string): never {
  throw new RecoveryError(message);
}

/** A checkpoint as the loop needs it: where it sits, what it schedules, and the writes saved against it. */
interface Position {
  id: string;
  parent: string | null;
  source: string;
  step: number;
  next: string[];
  version: number;
  /** metadata.node: the nodes of the step that produced it. */
  producedBy: string;
  writes: PendingWrite[];
}

function positionOf(tuple: CheckpointTuple): Position {
  return {
    id: tuple.checkpoint.id,
    parent: tuple.parentConfig?.checkpointId ?? null,
    source: tuple.metadata.source,
    step: tuple.metadata.step,
    next: [...tuple.checkpoint.next],
    version: tuple.checkpoint.stateSchemaVersion ?? 1,
    producedBy: typeof tuple.metadata.node === "string" ? tuple.metadata.node : "",
    writes: tuple.pendingWrites,
  };
}

/** The pending-write slot of a task; after a migration the new version's results go to a slot of their own. */
function slotOf(checkpointId: string, node: string, checkpointVersion: number, runVersion: number): string {
  return taskIdFor(checkpointId, checkpointVersion === runVersion ? node : `${node}@v${runVersion}`);
}

/** What a slot holds: the task's update if it finished, its error if it failed for good. */
function readSlot(writes: PendingWrite[], slot: string): { update?: WorkflowState; error?: string } {
  const mine = writes.filter(([taskId]) => taskId === slot);
  const regular = mine.filter(([, channel]) => !isSpecialChannel(channel));
  if (regular.length > 0) {
    return { update: Object.fromEntries(regular.filter(([, channel]) => channel !== NO_WRITES).map(([, channel, value]) => [channel, value])) };
  }
  const failure = mine.find(([, channel]) => channel === ERROR);
  return failure ? { error: String((failure[2] as { message?: unknown }).message ?? failure[2]) } : {};
}

// ---------------------------------------------------------------- input checks (7)

function checkInput(workflow: Workflow<any>, options: RunOptions<any>): Map<string, AnyNode> {
  if (!isRecord(workflow)) refuse("workflow must be an object with schemaVersion, start and nodes.");
  if (!Number.isInteger(workflow.schemaVersion) || workflow.schemaVersion < 1) refuse(`workflow.schemaVersion must be a positive integer, got ${describe(workflow.schemaVersion)}.`);
  if (!Array.isArray(workflow.nodes)) refuse("workflow.nodes must be an array.");
  const nodes = new Map<string, AnyNode>();
  for (const [i, node] of (workflow.nodes as unknown[]).entries()) {
    if (!isRecord(node)) refuse(`workflow.nodes[${i}] must be a node object.`);
    const name = node.name;
    if (typeof name !== "string" || name.length === 0) refuse(`workflow.nodes[${i}].name must be a non-empty string.`);
    if (nodes.has(name)) refuse(`Duplicate node name "${name}".`);
    if (node.kind !== "pure" && node.kind !== "effect") refuse(`Node "${name}": kind must be "pure" or "effect", got ${describe(node.kind)}.`);
    if (typeof node.run !== "function") refuse(`Node "${name}": run must be a function.`);
    if (node.compensate !== undefined && typeof node.compensate !== "function") refuse(`Node "${name}": compensate must be a function.`);
    if (node.revalidate !== undefined && typeof node.revalidate !== "function") refuse(`Node "${name}": revalidate must be a function.`);
    if (node.maxAttempts !== undefined && !(Number.isInteger(node.maxAttempts) && (node.maxAttempts as number) > 0)) {
      refuse(`Node "${name}": maxAttempts must be a positive integer, got ${describe(node.maxAttempts)}.`);
    }
    if (node.next !== undefined && !Array.isArray(node.next) && typeof node.next !== "function") refuse(`Node "${name}": next must be a list of names or a router function.`);
    nodes.set(name, node as unknown as AnyNode);
  }
  for (const node of nodes.values()) {
    if (!Array.isArray(node.next)) continue;
    for (const target of node.next as readonly unknown[]) {
      if (typeof target !== "string" || !nodes.has(target)) refuse(`Node "${node.name}": next names unknown node ${describe(target)}.`);
    }
  }
  if (!Array.isArray(workflow.start) || workflow.start.length === 0) refuse("workflow.start must name at least one node.");
  for (const name of workflow.start as readonly unknown[]) {
    if (typeof name !== "string" || !nodes.has(name)) refuse(`workflow.start names unknown node ${describe(name)}.`);
  }
  if (workflow.migrate !== undefined && typeof workflow.migrate !== "function") refuse("workflow.migrate must be a function.");

  if (!isRecord(options)) refuse("options must be an object.");
  const saver = options.saver as unknown;
  if (!isRecord(saver) || !["getTuple", "put", "putWrites"].every((method) => typeof saver[method] === "function")) {
    refuse("options.saver must be a CheckpointSaver: getTuple, put and putWrites must be functions.");
  }
  if (typeof options.threadId !== "string" || options.threadId.length === 0) refuse(`options.threadId must be a non-empty string, got ${describe(options.threadId)}.`);
  if (options.input !== undefined && !isRecord(options.input)) refuse(`options.input must be a state object, got ${describe(options.input)}.`);
  if (options.checkpointId !== undefined && (typeof options.checkpointId !== "string" || options.checkpointId.length === 0)) {
    refuse(`options.checkpointId must be a non-empty string, got ${describe(options.checkpointId)}.`);
  }
  if (options.onReport !== undefined && typeof options.onReport !== "function") refuse("options.onReport must be a function.");
  return nodes;
}

// ---------------------------------------------------------------- the executor

interface Ctx {
  workflow: Workflow<any>;
  nodes: Map<string, AnyNode>;
  saver: CheckpointSaver;
  threadId: string;
  /** For the report (9). */
  kind: "start" | "resume";
  resumedFrom: string | null;
  firstNodeAt: number | null;
  /** Nodes revalidated in this call: asked before their first run only (8). */
  revalidated: Set<string>;
}

type Outcome = { ok: true; update: WorkflowState } | { ok: false; error: string } | { ok: false; invalid: RecoveryError };

async function save(ctx: Ctx, parent: string | null, state: WorkflowState, next: string[], metadata: CheckpointMetadata): Promise<Position> {
  const id = newCheckpointId();
  const config = parent === null ? { threadId: ctx.threadId } : { threadId: ctx.threadId, checkpointId: parent };
  const checkpoint = { v: 1, id, ts: new Date().toISOString(), channelValues: state, next, stateSchemaVersion: ctx.workflow.schemaVersion };
  await ctx.saver.put(config, checkpoint, metadata);
  return { id, parent, source: metadata.source, step: metadata.step, next, version: ctx.workflow.schemaVersion, producedBy: metadata.node ?? "", writes: [] };
}

async function loadState(ctx: Ctx, tuple: CheckpointTuple): Promise<WorkflowState> {
  const from = tuple.checkpoint.stateSchemaVersion ?? 1;
  const to = ctx.workflow.schemaVersion;
  if (from === to) return tuple.checkpoint.channelValues;
  if (!ctx.workflow.migrate) throw new SchemaMismatchError(from, to, tuple.checkpoint.id);
  const migrated: unknown = await ctx.workflow.migrate(tuple.checkpoint.channelValues, from);
  if (!isRecord(migrated)) refuse(`workflow.migrate(state, ${from}) must return a state object, got ${describe(migrated)}.`);
  return migrated;
}

function successorsOf(ctx: Ctx, node: string, state: WorkflowState): string[] {
  const definition = ctx.nodes.get(node)!;
  if (definition.next === undefined) return [];
  if (Array.isArray(definition.next)) return [...definition.next];
  const routed: unknown = (definition.next as (state: WorkflowState) => unknown).call(definition, state);
  if (!Array.isArray(routed) || !routed.every((name) => typeof name === "string")) {
    refuse(`Router of node "${node}" returned ${describe(routed)}; it must return a list of node names.`);
  }
  for (const name of routed as string[]) if (!ctx.nodes.has(name)) refuse(`Router of node "${node}" returned ${describe(routed)}: unknown node "${name}".`);
  return routed as string[];
}

/** Runs one task with its retries; its result (or its permanent failure) is saved before this returns. */
async function runTask(ctx: Ctx, at: Position, node: string, state: WorkflowState): Promise<Outcome> {
  const definition = ctx.nodes.get(node)!;
  const config = { threadId: ctx.threadId, checkpointId: at.id };
  const slot = slotOf(at.id, node, at.version, ctx.workflow.schemaVersion);
  const idempotencyKey = `${ctx.threadId}:${at.id}:${node}`;
  const attempts = definition.maxAttempts ?? 1;
  for (let attempt = 1; ; attempt++) {
    ctx.firstNodeAt ??= performance.now();
    let value: unknown;
    try {
      value = await definition.run(state, { threadId: ctx.threadId, checkpointId: at.id, node, idempotencyKey, attempt });
    } catch (error) {
      if (attempt < attempts) continue;
      await ctx.saver.putWrites(config, [[ERROR, { name: error instanceof Error ? error.name : "Error", message: errorText(error) }]], slot);
      return { ok: false, error: errorText(error) };
    }
    if (value !== undefined && value !== null && !isRecord(value)) {
      return { ok: false, invalid: new RecoveryError(`Node "${node}" returned ${describe(value)}; run must return an object (a partial update) or nothing.`) };
    }
    const update = { ...(value ?? {}) } as WorkflowState;
    const writes = Object.entries(update);
    await ctx.saver.putWrites(config, writes.length > 0 ? writes : [[NO_WRITES, null]], slot);
    return { ok: true, update };
  }
}

/** Asks revalidate for the nodes about to run, on a resume. Returns the first node whose facts moved, with why. */
async function driftOf(ctx: Ctx, at: Position, state: WorkflowState, toRun: string[]): Promise<{ node: string; reason: string } | undefined> {
  if (ctx.kind !== "resume") return undefined;
  for (const node of toRun) {
    const definition = ctx.nodes.get(node)!;
    if (!definition.revalidate || ctx.revalidated.has(node)) continue;
    try {
      if ((await definition.revalidate(state, { threadId: ctx.threadId, checkpointId: at.id, node })) !== true) return { node, reason: "the facts it acts on changed" };
    } catch (error) {
      return { node, reason: `revalidate threw: ${errorText(error)}` };
    }
    ctx.revalidated.add(node);
  }
  return undefined;
}

/**
 * The facts a node acts on were gathered by the nearest earlier pure step (the quote). Gather them
 * again now, as a step of its own, so the node acts on today's facts instead of stopping the run.
 */
async function refreshFacts(ctx: Ctx, at: Position, state: WorkflowState): Promise<{ at: Position; state: WorkflowState } | undefined> {
  let cursor: Position | undefined = at;
  let gatherers: string[] = [];
  while (cursor && gatherers.length === 0) {
    gatherers = cursor.producedBy.split(",").filter((name) => ctx.nodes.get(name)?.kind === "pure");
    if (gatherers.length > 0 || cursor.parent === null) break;
    const parent = await ctx.saver.getTuple({ threadId: ctx.threadId, checkpointId: cursor.parent });
    cursor = parent && positionOf(parent);
  }
  if (gatherers.length === 0) return undefined;
  const outcomes = await Promise.all(gatherers.map((node) => runTask(ctx, at, node, state)));
  if (!outcomes.every((outcome) => outcome.ok)) return undefined;
  const fresh = { ...state };
  for (const outcome of outcomes) if (outcome.ok) Object.assign(fresh, outcome.update);
  const next = await save(ctx, at.id, fresh, at.next, { source: "loop", step: at.step + 1, node: gatherers.join(",") });
  for (const node of at.next) ctx.revalidated.add(node); // just re-gathered: current by construction
  return { at: next, state: fresh };
}

/** (4) Compensate the finished effects of this timeline, newest first, each once; then close the thread. */
async function compensate(ctx: Ctx, at: Position, state: WorkflowState, done: Map<string, WorkflowState>, failed: Map<string, string>): Promise<RunResult> {
  const error = at.next.filter((node) => failed.has(node)).map((node) => failed.get(node)!)[0]!;
  const undo: Array<{ node: string; effectKey: string; effectUpdate: WorkflowState }> = [];
  const consider = (checkpointId: string, node: string, update: WorkflowState | undefined) => {
    const definition = ctx.nodes.get(node);
    if (update !== undefined && definition?.kind === "effect" && definition.compensate) undo.push({ node, effectKey: `${ctx.threadId}:${checkpointId}:${node}`, effectUpdate: update });
  };
  for (const node of at.next) consider(at.id, node, done.get(node));
  // Back through the parents. A parent's tasks are this timeline's only when the child is the
  // checkpoint their step produced ("loop"); a fork's parent's tasks ran on the original branch.
  let child: Position = at;
  while (child.parent !== null) {
    const tuple = await ctx.saver.getTuple({ threadId: ctx.threadId, checkpointId: child.parent });
    if (!tuple) break;
    const parent = positionOf(tuple);
    if (child.source === "loop") {
      for (const node of parent.next) consider(parent.id, node, readSlot(parent.writes, slotOf(parent.id, node, parent.version, child.version)).update);
    }
    child = parent;
  }
  const config = { threadId: ctx.threadId, checkpointId: at.id };
  for (const { node, effectKey, effectUpdate } of undo) {
    const slot = taskIdFor(at.id, `${COMPENSATED}:${effectKey}`);
    if (at.writes.some(([taskId]) => taskId === slot)) continue; // finished before a crash
    await ctx.nodes.get(node)!.compensate!(state, { threadId: ctx.threadId, node, effectKey, idempotencyKey: `${effectKey}:compensate`, effectUpdate });
    await ctx.saver.putWrites(config, [[COMPENSATED, effectKey]], slot);
  }
  const final = await save(ctx, at.id, state, [], { source: "loop", step: at.step + 1, node: at.next.join(","), status: "compensated", error });
  return { state, status: "compensated", checkpointId: final.id, error };
}

/** Runs steps from `at` until the run ends, fails for good (saga) or cannot go on. */
async function steps(ctx: Ctx, at: Position, state: WorkflowState): Promise<RunResult> {
  const version = ctx.workflow.schemaVersion;
  for (;;) {
    if (at.next.length === 0) return { state, status: "completed", checkpointId: at.id };
    const done = new Map<string, WorkflowState>();
    const failed = new Map<string, string>();
    for (const node of at.next) {
      const saved = readSlot(at.writes, slotOf(at.id, node, at.version, version));
      if (saved.update) done.set(node, saved.update);
      else if (saved.error !== undefined) failed.set(node, saved.error);
    }
    const toRun = at.next.filter((node) => !done.has(node) && !failed.has(node));
    const drift = await driftOf(ctx, at, state, toRun);
    if (drift) {
      const refreshed = await refreshFacts(ctx, at, state);
      if (!refreshed) return { state, status: "stale", checkpointId: at.id, error: `Node "${drift.node}": ${drift.reason}; not acting on stale facts.` };
      ({ at, state } = refreshed);
      continue;
    }
    const outcomes = await Promise.all(toRun.map((node) => runTask(ctx, at, node, state)));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.ok) done.set(toRun[i]!, outcome.update);
      else if ("error" in outcome) failed.set(toRun[i]!, outcome.error);
    }
    const invalid = outcomes.find((outcome): outcome is { ok: false; invalid: RecoveryError } => "invalid" in outcome);
    if (invalid) throw invalid.invalid;
    if (failed.size > 0) return compensate(ctx, at, state, done, failed);

    const merged: WorkflowState = { ...state };
    for (const node of at.next) Object.assign(merged, done.get(node));
    const next = uniq(at.next.flatMap((node) => successorsOf(ctx, node, merged)));
    at = await save(ctx, at.id, merged, next, { source: "loop", step: at.step + 1, node: at.next.join(",") });
    state = merged;
  }
}

async function execute(ctx: Ctx, options: RunOptions<any>): Promise<RunResult> {
  const latest = await ctx.saver.getTuple({ threadId: ctx.threadId });
  if (!latest) {
    if (options.checkpointId !== undefined) refuse(`Thread "${ctx.threadId}" has no checkpoint ${options.checkpointId}.`);
    if (options.input === undefined) refuse(`Thread "${ctx.threadId}" is new: options.input is required to start it.`);
    const first = await save(ctx, null, { ...options.input }, uniq(ctx.workflow.start), { source: "input", step: -1 });
    return steps(ctx, first, { ...options.input });
  }
  ctx.kind = "resume";
  const target = options.checkpointId === undefined ? latest : await ctx.saver.getTuple({ threadId: ctx.threadId, checkpointId: options.checkpointId });
  if (!target) refuse(`Thread "${ctx.threadId}" has no checkpoint ${options.checkpointId}.`);
  const state = await loadState(ctx, target);
  for (const node of target.checkpoint.next) {
    if (!ctx.nodes.has(node)) refuse(`Checkpoint ${target.checkpoint.id} schedules node "${node}", which this workflow does not define.`);
  }
  ctx.resumedFrom = target.checkpoint.id;
  if (target.checkpoint.next.length === 0) {
    const { status, error } = target.metadata;
    return { state, status: status === "compensated" ? "compensated" : "completed", checkpointId: target.checkpoint.id, ...(typeof error === "string" && { error }) };
  }
  if (target.checkpoint.id === latest.checkpoint.id) return steps(ctx, positionOf(target), state);
  // An older checkpoint: fork. Same state (in this version's shape) and next; the old branch stays as it was.
  const fork = await save(ctx, target.checkpoint.id, state, [...target.checkpoint.next], { source: "fork", step: target.metadata.step });
  return steps(ctx, fork, state);
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const began = performance.now();
  const nodes = checkInput(workflow, options);
  const ctx: Ctx = { workflow, nodes, saver: options.saver, threadId: options.threadId, kind: "start", resumedFrom: null, firstNodeAt: null, revalidated: new Set() };
  let outcome: RunReport["outcome"] = "failed";
  try {
    const result = (await execute(ctx, options)) as RunResult<S>;
    outcome = result.status;
    return result;
  } finally {
    const resumed = ctx.kind === "resume" && ctx.resumedFrom !== null;
    const report: RunReport = {
      threadId: options.threadId,
      schemaVersion: workflow.schemaVersion,
      kind: ctx.kind,
      outcome,
      resumedFrom: ctx.kind === "resume" ? ctx.resumedFrom : null,
      recoveryMs: resumed ? (ctx.firstNodeAt ?? performance.now()) - began : null,
    };
    try {
      options.onReport?.(report);
    } catch {
      // metrics must never break a run
    }
  }
}

export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume");
  const count = resumes.length;
  const times = resumes.flatMap((report) => (typeof report.recoveryMs === "number" && !Number.isNaN(report.recoveryMs) ? [report.recoveryMs] : [])).sort((a, b) => a - b);
  return {
    resumes: count,
    hitRate: count === 0 ? null : resumes.filter((report) => report.resumedFrom != null).length / count,
    failureRate: count === 0 ? null : resumes.filter((report) => report.outcome === "failed").length / count,
    meanRecoveryMs: times.length === 0 ? null : times.reduce((a, b) => a + b, 0) / times.length,
    p95RecoveryMs: times.length === 0 ? null : times[Math.ceil(0.95 * times.length) - 1]!,
  };
}
