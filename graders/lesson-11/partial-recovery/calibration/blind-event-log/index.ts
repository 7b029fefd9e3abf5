/**
 * lesson-11 / partial-recovery: calibration answer "blind-event-log" (correct; written blind, from the
 * lesson page, the starter's contract and runtime/ only).
 *
 * Design: an append-only event log beside the checkpoints.
 *
 * - Storage. The executor opens `options.sqliteFile` itself (better-sqlite3) and keeps a table
 *   `events (thread, seq, type, payload JSON)` in the same file, on the same connection as a
 *   `new SqliteSaver(db)` that writes the checkpoints the contract asks for. Every fact is an event:
 *   a checkpoint saved (thread-started, forked, step-closed, saga-closed), a task scheduled with its
 *   idempotency key, a task finished with its update, a task failed for good, a saga planned, a
 *   compensation done. An event that comes with a checkpoint is appended in the same SQLite
 *   transaction as the saver's put (BEGIN IMMEDIATE ... put ... COMMIT), so the log and the
 *   checkpoints can never disagree about the executor's own writes. Write transactions of the
 *   process go through one queue, since that transaction spans an await. (Without sqliteFile: the
 *   saver's own connection when it is a SqliteSaver, else an in-memory log per saver object, which
 *   is exactly as durable as a saver that is not a file.)
 * - Position. Each call replays the thread's events into a Fold (the same `apply` is used for
 *   replay and for every new event): which checkpoints exist with their parent, source, step,
 *   `next` and version; each task's key; each task's result or failure; each saga's plan and the
 *   compensations done. The checkpoint body is read from the saver only for the state (the state
 *   is not copied into the log: it stays minimal). A checkpoint the fold does not know (written by
 *   someone else: a seeded or hand-migrated checkpoint) is described from its tuple instead.
 * - Keys. Random (UUID v4), drawn once when the task is scheduled and persisted before the call:
 *   in the same transaction as the checkpoint that schedules it (an outbox row), or, for a foreign
 *   checkpoint, in a transaction of its own before the first run. A retry or a resume reads the
 *   key back; another thread, loop iteration or fork schedules a new task and draws a new one.
 * - Saga. When a task fails for good it is logged at once; once its siblings settle, the plan
 *   (finished effects of this timeline, newest first, each with the effect's key, its update and
 *   a compensation key drawn now) is logged as one event, so a resume follows the same plan and
 *   skips each compensation logged as done. The timeline is walked by parent pointers: a parent's
 *   tasks belong to it only when the child is that step's "loop" checkpoint (a fork's parent's
 *   tasks belong to the original branch).
 * - Migration. Results are logged with the schema version they were computed under; after a
 *   migration, results of the old version are ignored and their tasks run again with their
 *   original key (the provider deduplicates an effect).
 */
import Database from "better-sqlite3";
import { randomUUID } from "node:crypto";
import { SqliteSaver, newCheckpointId, type CheckpointMetadata, type CheckpointSaver, type CheckpointTuple } from "#runtime";

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

// ---------------------------------------------------------------- the log's vocabulary

/** What the fold knows about one checkpoint (the state itself stays in the checkpoint body). */
interface CheckpointFact {
  id: string;
  parent: string | null;
  source: string;
  step: number;
  next: string[];
  version: number; // stateSchemaVersion of the state it holds (missing = 1)
}

interface PlanItem { node: string; effectKey: string; compensationKey: string; effectUpdate: WorkflowState }

type CheckpointEventType = "thread-started" | "forked" | "step-closed" | "saga-closed";

type LogEvent =
  | { type: CheckpointEventType; checkpoint: CheckpointFact }
  | { type: "task-scheduled"; checkpoint: string; node: string; key: string }
  | { type: "task-finished"; checkpoint: string; node: string; version: number; update: WorkflowState }
  | { type: "task-failed"; checkpoint: string; node: string; version: number; error: string }
  | { type: "saga-planned"; checkpoint: string; error: string; plan: PlanItem[] }
  | { type: "compensation-done"; checkpoint: string; compensationKey: string };

const task = (checkpoint: string, node: string) => `${checkpoint}\u0000${node}`;
const result = (checkpoint: string, node: string, version: number) => `${checkpoint}\u0000${node}\u0000${version}`;

/** The thread's position and ledger: a left fold over its events, in seq order. */
class Fold {
  readonly checkpoints = new Map<string, CheckpointFact>();
  readonly keys = new Map<string, string>(); // task -> idempotency key
  readonly results = new Map<string, WorkflowState>(); // task + version -> update
  readonly failures = new Map<string, string>(); // task + version -> error message
  readonly sagas = new Map<string, { error: string; plan: PlanItem[] }>(); // failing checkpoint -> plan
  readonly compensated = new Set<string>(); // compensation keys done

  apply(event: LogEvent): void {
    switch (event.type) {
      case "thread-started":
      case "forked":
      case "step-closed":
      case "saga-closed":
        this.checkpoints.set(event.checkpoint.id, event.checkpoint);
        break;
      case "task-scheduled":
        // First key wins: a key, once drawn, is the task's for good.
        if (!this.keys.has(task(event.checkpoint, event.node))) this.keys.set(task(event.checkpoint, event.node), event.key);
        break;
      case "task-finished":
        this.results.set(result(event.checkpoint, event.node, event.version), event.update);
        break;
      case "task-failed":
        this.failures.set(result(event.checkpoint, event.node, event.version), event.error);
        break;
      case "saga-planned":
        if (!this.sagas.has(event.checkpoint)) this.sagas.set(event.checkpoint, { error: event.error, plan: event.plan });
        break;
      case "compensation-done":
        this.compensated.add(event.compensationKey);
        break;
    }
  }
}

// ---------------------------------------------------------------- storage

/** `atomic`: events and checkpoints share one connection, so one transaction can hold both. */
interface Store { db: Database.Database; saver: CheckpointSaver; atomic: boolean; close(): void }

const EVENTS_TABLE = `CREATE TABLE IF NOT EXISTS events (
  thread TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,  -- JSON
  PRIMARY KEY (thread, seq)
)`;

/**
 * Write transactions from this process, one at a time. A checkpoint's transaction spans the saver's
 * (async) put, so while it is open another call's connection in this process must not try to write:
 * better-sqlite3 would wait for the lock synchronously, blocking the very event loop that is to commit it.
 */
let writeQueue: Promise<unknown> = Promise.resolve();
function exclusive<T>(work: () => Promise<T> | T): Promise<T> {
  const turn = writeQueue.then(work);
  writeQueue = turn.catch(() => undefined);
  return turn;
}

/** Logs kept in memory, per saver, when there is no SQLite file to put them in. */
const memoryLogs = new WeakMap<object, Database.Database>();

function openStore(options: RunOptions<WorkflowState>): Store {
  let store: Store;
  if (options.sqliteFile !== undefined) {
    const db = new Database(options.sqliteFile);
    store = { db, saver: new SqliteSaver(db), atomic: true, close: () => db.close() };
  } else if ((options.saver as { db?: unknown }).db instanceof Database) {
    store = { db: (options.saver as SqliteSaver).db, saver: options.saver, atomic: true, close: () => {} };
  } else {
    let db = memoryLogs.get(options.saver);
    if (!db) memoryLogs.set(options.saver, (db = new Database(":memory:")));
    store = { db, saver: options.saver, atomic: false, close: () => {} };
  }
  store.db.exec(EVENTS_TABLE);
  return store;
}

// ---------------------------------------------------------------- validation (7)

function fail(message: string): never {
  throw new RecoveryError(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Everything that can be checked without the store; returns the nodes by name. */
function validate<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Map<string, WorkflowNode<S>> {
  if (!isObject(workflow)) fail("workflow must be an object { schemaVersion, start, nodes }.");
  if (!Number.isInteger(workflow.schemaVersion) || workflow.schemaVersion < 1) {
    fail(`workflow.schemaVersion must be a positive integer, got ${show(workflow.schemaVersion)}.`);
  }
  if (!Array.isArray(workflow.nodes)) fail("workflow.nodes must be an array of nodes.");
  const nodes = new Map<string, WorkflowNode<S>>();
  workflow.nodes.forEach((node: unknown, i) => {
    if (!isObject(node)) fail(`workflow.nodes[${i}] must be an object.`);
    const name = node.name;
    if (typeof name !== "string" || name === "") fail(`workflow.nodes[${i}].name must be a non-empty string, got ${show(name)}.`);
    if (nodes.has(name)) fail(`Duplicate node name "${name}": every node needs a name of its own.`);
    if (node.kind !== "pure" && node.kind !== "effect") fail(`Node "${name}": kind must be "pure" or "effect", got ${show(node.kind)}.`);
    if (typeof node.run !== "function") fail(`Node "${name}": run must be a function.`);
    for (const field of ["compensate", "revalidate"]) {
      if (node[field] !== undefined && typeof node[field] !== "function") fail(`Node "${name}": ${field} must be a function when given.`);
    }
    const attempts = node.maxAttempts;
    if (attempts !== undefined && !(Number.isInteger(attempts) && (attempts as number) >= 1)) {
      fail(`Node "${name}": maxAttempts must be a positive integer, got ${show(attempts)}.`);
    }
    if (node.next !== undefined && typeof node.next !== "function" && !Array.isArray(node.next)) {
      fail(`Node "${name}": next must be a list of node names or a router function, got ${show(node.next)}.`);
    }
    nodes.set(name, node as unknown as WorkflowNode<S>);
  });
  for (const node of nodes.values()) {
    if (!Array.isArray(node.next)) continue;
    for (const successor of node.next as readonly unknown[]) {
      if (typeof successor !== "string" || !nodes.has(successor)) fail(`Node "${node.name}": next names unknown node ${show(successor)}.`);
    }
  }
  if (!Array.isArray(workflow.start) || workflow.start.length === 0) fail("workflow.start must be a non-empty list of node names.");
  for (const name of workflow.start as readonly unknown[]) {
    if (typeof name !== "string" || !nodes.has(name)) fail(`workflow.start names unknown node ${show(name)}.`);
  }
  if (workflow.migrate !== undefined && typeof workflow.migrate !== "function") fail("workflow.migrate must be a function when given.");

  if (!isObject(options)) fail("options must be an object { saver, threadId, input?, checkpointId? }.");
  const saver = options.saver as unknown;
  if (!isObject(saver) || typeof saver.getTuple !== "function" || typeof saver.put !== "function") {
    fail("options.saver must be a CheckpointSaver (getTuple and put must be functions).");
  }
  if (typeof options.threadId !== "string" || options.threadId === "") fail(`options.threadId must be a non-empty string, got ${show(options.threadId)}.`);
  if (options.input !== undefined && !isObject(options.input)) fail(`options.input must be a state object when given, got ${show(options.input)}.`);
  for (const field of ["checkpointId", "sqliteFile"] as const) {
    const value: unknown = options[field];
    if (value !== undefined && (typeof value !== "string" || value === "")) fail(`options.${field} must be a non-empty string when given, got ${show(value)}.`);
  }
  if (options.onReport !== undefined && typeof options.onReport !== "function") fail("options.onReport must be a function when given.");
  return nodes;
}

// ---------------------------------------------------------------- the executor

/** What the report needs to know about the call (9). */
interface CallFacts { kind: "start" | "resume"; resumedFrom: string | null; firstNodeAt: number | null }

type TaskOutcome = { kind: "done"; update: WorkflowState } | { kind: "failed"; error: string } | { kind: "invalid"; error: RecoveryError };

function factOf(tuple: CheckpointTuple): CheckpointFact {
  return {
    id: tuple.checkpoint.id,
    parent: tuple.parentConfig?.checkpointId ?? null,
    source: tuple.metadata.source,
    step: tuple.metadata.step,
    next: [...tuple.checkpoint.next],
    version: tuple.checkpoint.stateSchemaVersion ?? 1,
  };
}

const unique = (names: readonly string[]) => [...new Set(names)];

class Run<S extends WorkflowState> {
  private readonly fold = new Fold();
  /** Nodes whose facts were revalidated in this call (8): asked before their first run only. */
  private readonly revalidated = new Set<string>();
  private readonly threadId: string;
  private readonly version: number;
  private readonly insert: Database.Statement;

  constructor(
    private readonly workflow: Workflow<S>,
    private readonly nodes: Map<string, WorkflowNode<S>>,
    private readonly options: RunOptions<S>,
    private readonly call: CallFacts,
    private readonly store: Store,
  ) {
    this.threadId = options.threadId;
    this.version = workflow.schemaVersion;
    this.insert = store.db.prepare(
      "INSERT INTO events (thread, seq, type, payload) SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM events WHERE thread = ?",
    );
    const rows = store.db.prepare("SELECT type, payload FROM events WHERE thread = ? ORDER BY seq").all(this.threadId) as Array<{ type: string; payload: string }>;
    for (const row of rows) this.fold.apply({ type: row.type, ...JSON.parse(row.payload) } as LogEvent);
  }

  async go(): Promise<RunResult<S>> {
    const { threadId, checkpointId } = this.options;
    const latest = await this.store.saver.getTuple({ threadId });
    if (!latest) return this.startThread();
    this.call.kind = "resume";
    const target = checkpointId === undefined ? latest : await this.store.saver.getTuple({ threadId, checkpointId });
    if (!target) fail(`Thread "${threadId}" has no checkpoint ${checkpointId}: pass the id of one of its checkpoints, or omit checkpointId to resume the latest.`);
    // Our own checkpoints are described by the log; a checkpoint someone else wrote, by its tuple.
    const here = this.fold.checkpoints.get(target.checkpoint.id) ?? factOf(target);
    const state = await this.loadState(target);
    for (const node of here.next) {
      if (!this.nodes.has(node)) fail(`Checkpoint ${here.id} schedules node "${node}", which the workflow no longer defines; migrate the run or start a new thread.`);
    }
    this.call.resumedFrom = here.id;
    if (here.next.length === 0) {
      // Finished (completed or compensated): the same result as when it finished; run and save nothing.
      const { status, error } = target.metadata;
      return { state, status: status === "compensated" ? "compensated" : "completed", checkpointId: here.id, ...(typeof error === "string" && { error }) };
    }
    if (here.id === latest.checkpoint.id) return this.loop(here, state, true);
    // An older checkpoint: a fork. Written once the first step is cleared to run (a stale fork saves nothing).
    const fork: CheckpointFact = { id: newCheckpointId(), parent: here.id, source: "fork", step: here.step, next: here.next, version: this.version };
    return this.loop(fork, state, false);
  }

  private async startThread(): Promise<RunResult<S>> {
    const { threadId, checkpointId, input } = this.options;
    if (checkpointId !== undefined) fail(`Thread "${threadId}" has no checkpoint ${checkpointId} (it has no checkpoints at all).`);
    if (input === undefined) fail(`Thread "${threadId}" has no checkpoint yet: options.input is required to start it.`);
    const first: CheckpointFact = { id: newCheckpointId(), parent: null, source: "input", step: -1, next: unique(this.workflow.start), version: this.version };
    await this.saveCheckpoint("thread-started", first, { ...input }, { source: "input", step: -1 });
    return this.loop(first, { ...input }, true);
  }

  /** The checkpoint's state in this workflow's schema version, migrated when it exists (6). */
  private async loadState(tuple: CheckpointTuple): Promise<S> {
    const from = tuple.checkpoint.stateSchemaVersion ?? 1;
    if (from === this.version) return tuple.checkpoint.channelValues as S;
    if (!this.workflow.migrate) throw new SchemaMismatchError(from, this.version, tuple.checkpoint.id);
    const migrated: unknown = await this.workflow.migrate(tuple.checkpoint.channelValues, from);
    if (!isObject(migrated)) fail(`workflow.migrate(state, ${from}) returned ${show(migrated)}: it must return the state object.`);
    return migrated as S;
  }

  /** One step per turn: reuse logged results, revalidate, run the rest, then close the step or run the saga. */
  private async loop(here: CheckpointFact, state: S, saved: boolean): Promise<RunResult<S>> {
    for (;;) {
      if (here.next.length === 0) return { state, status: "completed", checkpointId: here.id };
      const done = new Map<string, WorkflowState>();
      const failed = new Map<string, string>();
      for (const node of here.next) {
        // Only results computed under this version count: after a migration the old ones are old-shape.
        const update = this.fold.results.get(result(here.id, node, this.version));
        if (update) done.set(node, update);
        const error = this.fold.failures.get(result(here.id, node, this.version));
        if (error !== undefined) failed.set(node, error);
      }
      if (!this.fold.sagas.has(here.id)) {
        const toRun = here.next.filter((node) => !done.has(node) && !failed.has(node));
        const stale = await this.revalidate(here, state, toRun, saved);
        if (stale) return stale;
        if (!saved) {
          await this.saveCheckpoint("forked", here, state, { source: "fork", step: here.step });
          saved = true;
        }
        await this.ensureKeys(here.id, toRun);
        // Siblings all settle before anything else happens, so each finished one is logged.
        const outcomes = await Promise.all(toRun.map((node) => this.runTask(here, node, state)));
        let invalid: RecoveryError | undefined;
        outcomes.forEach((outcome, i) => {
          const node = toRun[i]!;
          if (outcome.kind === "done") done.set(node, outcome.update);
          else if (outcome.kind === "failed") failed.set(node, outcome.error);
          else invalid ??= outcome.error;
        });
        if (invalid) throw invalid;
      }
      if (this.fold.sagas.has(here.id) || failed.size > 0) return this.runSaga(here, state, done, failed);

      const merged = { ...state } as S;
      for (const node of here.next) Object.assign(merged, done.get(node));
      // Routers see the merged state; a bad answer throws here, before any checkpoint holds it.
      const next = unique(here.next.flatMap((node) => this.successors(node, merged)));
      const closed: CheckpointFact = { id: newCheckpointId(), parent: here.id, source: "loop", step: here.step + 1, next, version: this.version };
      await this.saveCheckpoint("step-closed", closed, merged, { source: "loop", step: closed.step, node: here.next.join(",") });
      here = closed;
      state = merged;
    }
  }

  /** (8) On a resume, before a node's first run in this call: can its facts be trusted? */
  private async revalidate(here: CheckpointFact, state: S, toRun: string[], saved: boolean): Promise<RunResult<S> | undefined> {
    if (this.call.kind !== "resume") return undefined;
    for (const node of toRun) {
      const check = this.nodes.get(node)!.revalidate;
      if (!check || this.revalidated.has(node)) continue;
      let error: string | undefined;
      try {
        const fresh = await check.call(this.nodes.get(node), state, { threadId: this.threadId, checkpointId: here.id, node });
        if (fresh !== true) error = `Node "${node}": revalidate says the facts it acts on changed while the run was paused.`;
      } catch (thrown) {
        error = `Node "${node}": revalidate threw (${message(thrown)}), so the facts it acts on cannot be trusted.`;
      }
      // Nothing of the step ran and nothing was saved: the thread stays where it was.
      if (error) return { state, status: "stale", checkpointId: saved ? here.id : here.parent!, error };
      this.revalidated.add(node);
    }
    return undefined;
  }

  /** A checkpoint written by someone else scheduled tasks without keys: draw them and log them before any call. */
  private async ensureKeys(checkpointId: string, nodes: string[]): Promise<void> {
    const missing = nodes.filter((node) => !this.fold.keys.has(task(checkpointId, node)));
    if (missing.length > 0) await this.commit(missing.map((node) => ({ type: "task-scheduled", checkpoint: checkpointId, node, key: randomUUID() })));
  }

  private async runTask(here: CheckpointFact, node: string, state: S): Promise<TaskOutcome> {
    const definition = this.nodes.get(node)!;
    const key = this.fold.keys.get(task(here.id, node))!;
    const attempts = definition.maxAttempts ?? 1;
    for (let attempt = 1; ; attempt++) {
      this.call.firstNodeAt ??= performance.now();
      let value: unknown;
      try {
        value = await definition.run(state, { threadId: this.threadId, checkpointId: here.id, node, idempotencyKey: key, attempt });
      } catch (thrown) {
        if (attempt < attempts) continue; // same key: the provider sees a retry, not a new request
        const error = message(thrown);
        // Logged at once: a resume (mid-saga or not) never runs a task that failed for good.
        await this.commit([{ type: "task-failed", checkpoint: here.id, node, version: this.version, error }]);
        return { kind: "failed", error };
      }
      if (value !== undefined && value !== null && !isObject(value)) {
        return { kind: "invalid", error: new RecoveryError(`Node "${node}" returned ${show(value)}: run must return an object (a partial state update) or nothing.`) };
      }
      const update = { ...(value ?? {}) } as WorkflowState;
      // Durable as soon as the task returns: only a task in flight at a crash may run twice.
      await this.commit([{ type: "task-finished", checkpoint: here.id, node, version: this.version, update }]);
      return { kind: "done", update };
    }
  }

  private successors(node: string, state: S): string[] {
    const next = this.nodes.get(node)!.next;
    if (next === undefined) return [];
    if (typeof next !== "function") return [...next];
    const routed: unknown = next.call(this.nodes.get(node), state);
    if (!Array.isArray(routed) || routed.some((name) => typeof name !== "string")) {
      fail(`The router of node "${node}" returned ${show(routed)}: a router must return a list of node names.`);
    }
    const unknown = (routed as string[]).find((name) => !this.nodes.has(name));
    if (unknown !== undefined) fail(`The router of node "${node}" returned ${show(routed)}: there is no node "${unknown}".`);
    return routed as string[];
  }

  /** (4) Plan once (logged), compensate newest first (each logged), then close the thread. */
  private async runSaga(here: CheckpointFact, state: S, done: Map<string, WorkflowState>, failed: Map<string, string>): Promise<RunResult<S>> {
    let saga = this.fold.sagas.get(here.id);
    if (!saga) {
      const error = here.next.filter((node) => failed.has(node)).map((node) => failed.get(node)!)[0]!;
      await this.commit([{ type: "saga-planned", checkpoint: here.id, error, plan: await this.plan(here, done) }]);
      saga = this.fold.sagas.get(here.id)!;
    }
    for (const item of saga.plan) {
      if (this.fold.compensated.has(item.compensationKey)) continue; // undone before a crash: not again
      const definition = this.nodes.get(item.node);
      if (!definition?.compensate) continue;
      const { node, effectKey, compensationKey, effectUpdate } = item;
      await definition.compensate(state, { threadId: this.threadId, node, effectKey, idempotencyKey: compensationKey, effectUpdate });
      await this.commit([{ type: "compensation-done", checkpoint: here.id, compensationKey: item.compensationKey }]);
    }
    const final: CheckpointFact = { id: newCheckpointId(), parent: here.id, source: "loop", step: here.step + 1, next: [], version: this.version };
    const metadata = { source: "loop", step: final.step, node: here.next.join(","), status: "compensated", error: saga.error } as const;
    await this.saveCheckpoint("saga-closed", final, state, metadata);
    return { state, status: "compensated", checkpointId: final.id, error: saga.error };
  }

  /**
   * The finished effects of this timeline, newest first: the failing step's finished siblings, then
   * each earlier step's, following parent pointers. A parent's tasks count only when the child on the
   * path is that step's own "loop" checkpoint: a fork's parent's tasks ran on the original branch.
   */
  private async plan(here: CheckpointFact, done: Map<string, WorkflowState>): Promise<PlanItem[]> {
    const plan: PlanItem[] = [];
    const add = (checkpointId: string, node: string, update: WorkflowState | undefined) => {
      const definition = this.nodes.get(node);
      const effectKey = this.fold.keys.get(task(checkpointId, node));
      if (update === undefined || effectKey === undefined || definition?.kind !== "effect" || !definition.compensate) return;
      plan.push({ node, effectKey, compensationKey: randomUUID(), effectUpdate: update });
    };
    for (const node of here.next) add(here.id, node, done.get(node));
    let child = here;
    while (child.parent !== null) {
      const parent = await this.describe(child.parent);
      if (!parent) break;
      if (child.source === "loop") {
        // The results merged into `child` are those computed under the child's version.
        for (const node of parent.next) add(parent.id, node, this.fold.results.get(result(parent.id, node, child.version)));
      }
      child = parent;
    }
    return plan;
  }

  private async describe(checkpointId: string): Promise<CheckpointFact | undefined> {
    const known = this.fold.checkpoints.get(checkpointId);
    if (known) return known;
    const tuple = await this.store.saver.getTuple({ threadId: this.threadId, checkpointId });
    return tuple && factOf(tuple);
  }

  /** A checkpoint and its facts (and the keys of the tasks it schedules: the outbox rows) in one transaction. */
  private async saveCheckpoint(type: CheckpointEventType, fact: CheckpointFact, state: S, metadata: CheckpointMetadata): Promise<void> {
    const scheduled: LogEvent[] = fact.next.map((node) => ({ type: "task-scheduled", checkpoint: fact.id, node, key: randomUUID() }));
    await this.commit([{ type, checkpoint: fact }, ...scheduled], async () => {
      await this.store.saver.put(
        fact.parent === null ? { threadId: this.threadId } : { threadId: this.threadId, checkpointId: fact.parent },
        { v: 1, id: fact.id, ts: new Date().toISOString(), channelValues: state, next: fact.next, stateSchemaVersion: this.version },
        metadata,
      );
    });
  }

  /** Appends events (with a checkpoint put, atomically when they share a connection), then folds them in. */
  private async commit(events: LogEvent[], put?: () => Promise<void>): Promise<void> {
    const { db, atomic } = this.store;
    const append = () => {
      for (const { type, ...payload } of events) this.insert.run(this.threadId, type, JSON.stringify(payload), this.threadId);
    };
    await exclusive(async () => {
      if (put && atomic) {
        // One transaction around the events and the saver's put: the log and the checkpoint land together.
        db.exec("BEGIN IMMEDIATE");
        try {
          append();
          await put();
          db.exec("COMMIT");
        } catch (error) {
          if (db.inTransaction) db.exec("ROLLBACK");
          throw error;
        }
      } else {
        if (put) await put(); // no shared connection: the checkpoint first, then the facts about it
        db.transaction(append)();
      }
    });
    for (const event of events) this.fold.apply(JSON.parse(JSON.stringify(event)) as LogEvent); // as a replay would read it
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const calledAt = performance.now();
  const nodes = validate(workflow, options); // bad input: refused before anything, and not reported
  const call: CallFacts = { kind: "start", resumedFrom: null, firstNodeAt: null };
  let outcome: RunReport["outcome"] = "failed";
  try {
    const store = await exclusive(() => openStore(options as RunOptions<WorkflowState>)); // the saver's constructor writes
    try {
      const result = await new Run(workflow, nodes, options, call, store).go();
      outcome = result.status;
      return result;
    } finally {
      store.close();
    }
  } finally {
    const endedAt = performance.now();
    const continued = call.kind === "resume" && call.resumedFrom !== null;
    const report: RunReport = {
      threadId: options.threadId,
      schemaVersion: workflow.schemaVersion,
      kind: call.kind,
      outcome,
      resumedFrom: call.kind === "resume" ? call.resumedFrom : null,
      recoveryMs: continued ? (call.firstNodeAt ?? endedAt) - calledAt : null,
    };
    try {
      options.onReport?.(report);
    } catch {
      // A broken metrics sink must not change the run's result.
    }
  }
}

export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume");
  const times = resumes
    .map((report) => report.recoveryMs)
    .filter((ms): ms is number => typeof ms === "number" && !Number.isNaN(ms))
    .sort((a, b) => a - b);
  const share = (count: number) => (resumes.length > 0 ? count / resumes.length : null);
  return {
    resumes: resumes.length,
    hitRate: share(resumes.filter((report) => report.resumedFrom !== null && report.resumedFrom !== undefined).length),
    failureRate: share(resumes.filter((report) => report.outcome === "failed").length),
    meanRecoveryMs: times.length > 0 ? times.reduce((sum, ms) => sum + ms, 0) / times.length : null,
    // Nearest rank: the ceil(0.95 n)-th smallest.
    p95RecoveryMs: times.length > 0 ? times[Math.ceil(0.95 * times.length) - 1]! : null,
  };
}
