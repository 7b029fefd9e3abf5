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
  /**
   * Recovery-point drift: are the facts this node acts on (a quoted price, a document version) still
   * current? Asked on a resume before the node runs; false (or a throw) stops the run as "stale".
   */
  revalidate?(state: Readonly<S>, context: RevalidationContext): Promise<boolean> | boolean;
}

export interface RevalidationContext {
  threadId: string;
  /** The checkpoint whose `next` scheduled the node. */
  checkpointId: string;
  node: string;
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
  /** Receives one RunReport when the call ends: the raw material of the recovery metrics. */
  onReport?(report: RunReport): void;
}

/** "stale": a resume found that the facts a node acts on changed while the run was paused, and stopped before it. */
export type RunStatus = "completed" | "compensated" | "stale";

/** One runWorkflow call, labelled like a metrics event (workflow version, kind, outcome). */
export interface RunReport {
  threadId: string;
  /** The workflow's schemaVersion. */
  schemaVersion: number;
  /** "resume": the thread had checkpoints when the call began (a plain resume, a finished thread, a fork). */
  kind: "start" | "resume";
  /** The result's status, or "failed" when the call threw. */
  outcome: RunStatus | "failed";
  /** A resume's starting checkpoint (the latest, or the one forked from); null when none was usable, and for a start. */
  resumedFrom: string | null;
  /** A resume that continued: ms from the call to the first node starting, or to the result when none ran; otherwise null. */
  recoveryMs: number | null;
}

/** What a recovery dashboard shows, computed over the resumes of a list of reports. */
export interface RecoveryMetrics {
  resumes: number;
  /** Resumes that found a usable checkpoint / resumes. */
  hitRate: number | null;
  /** Resumes that threw / resumes. */
  failureRate: number | null;
  meanRecoveryMs: number | null;
  /** Nearest rank: the ceil(0.95 n)-th smallest recovery time. */
  p95RecoveryMs: number | null;
}

export interface RunResult<S extends WorkflowState = WorkflowState> {
  state: S;
  status: RunStatus;
  /** The thread's checkpoint this run ended on. */
  checkpointId: string;
  /** Why the run was compensated, or which node's facts went stale. */
  error?: string;
}
