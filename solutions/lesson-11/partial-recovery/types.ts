/**
 * The contract of lesson-11 / partial-recovery: a workflow of pure and side-effecting nodes,
 * and what runWorkflow takes and returns. The starter declares the same types.
 */
import type { CheckpointSaver } from "#runtime";

/** Plain JSON-like workflow state; a checkpoint stores exactly this, nothing more. */
export type WorkflowState = Record<string, unknown>;

/**
 * `pure`: may be replayed after a crash (computation, read-only lookups, an LLM call whose
 * response is cached by key). `effect`: changes the outside world (charge, email); it must
 * reach the world exactly once.
 */
export type NodeKind = "pure" | "effect";

export interface NodeContext {
  threadId: string;
  /** The checkpoint whose `next` scheduled this node: the step this run belongs to. */
  checkpointId: string;
  node: string;
  /** Stable across retries and crashes, distinct across threads, loop iterations and forks; here derived from (threadId, checkpointId, node). */
  idempotencyKey: string;
  /** 1 on the first try, 2 on the first retry within this process... */
  attempt: number;
}

export interface CompensationContext {
  threadId: string;
  node: string;
  /** The key the effect ran with: what the provider refunds or cancels. */
  effectKey: string;
  /** The compensation's own stable key, so a retried compensation is deduplicated too. */
  idempotencyKey: string;
  /** The update the effect node returned (e.g. the receipt to refund). */
  effectUpdate: WorkflowState;
}

export interface WorkflowNode<S extends WorkflowState = WorkflowState> {
  name: string;
  kind: NodeKind;
  /** Returns the update, shallow-merged into the state once every node of the step is done. */
  run(state: Readonly<S>, context: NodeContext): Promise<Partial<S> | void> | Partial<S> | void;
  /** Undoes a finished effect when a later step fails for good (saga). */
  compensate?(state: Readonly<S>, context: CompensationContext): Promise<void> | void;
  /** Successors: names, or a router over the state after the step. Absent or [] = the run ends here. */
  next?: readonly string[] | ((state: Readonly<S>) => readonly string[]);
  /** Tries before a failure counts as permanent (default 1). Retries reuse the idempotency key. */
  maxAttempts?: number;
}

export interface Workflow<S extends WorkflowState = WorkflowState> {
  /** Version of the state shape; a checkpoint written by another version is never resumed silently. */
  schemaVersion: number;
  /** Node(s) of the first step (several run in parallel). */
  start: readonly string[];
  nodes: ReadonlyArray<WorkflowNode<S>>;
  /** Turns a state written by an older schema version into this version's shape. */
  migrate?(state: WorkflowState, fromVersion: number): S;
}

export interface RunOptions<S extends WorkflowState = WorkflowState> {
  saver: CheckpointSaver;
  /** The SQLite file `saver` writes to, for designs that keep their own tables beside it (an outbox); unused here. */
  sqliteFile?: string;
  threadId: string;
  /** Starts a thread that has no checkpoint yet; ignored when the thread exists (a resume). */
  input?: S;
  /** Continue from this checkpoint instead of the latest; an older one forks a new branch. */
  checkpointId?: string;
}

export type RunStatus = "completed" | "compensated";

export interface RunResult<S extends WorkflowState = WorkflowState> {
  state: S;
  status: RunStatus;
  /** The thread's checkpoint this run ended on. */
  checkpointId: string;
  /** Why the run was compensated. */
  error?: string;
}
