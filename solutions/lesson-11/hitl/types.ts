/**
 * The public contract of the hitl server: what the caller injects (effects,
 * clock, limits) and what goes over the wire (request bodies, SSE events).
 * Wire names are snake_case, as in the seed's endpoints; TypeScript names are camelCase.
 */
import type { Server } from "node:http";

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

/** What the "model" writes for one turn. */
export interface Draft {
  title: string;
  body: string;
}

/** Arguments of the pending action (`publish`); `edit` may change either field. */
export interface PublishArgs {
  title: string;
  body: string;
}

/** Findings of the pre-review policy check, shown to the reviewer. */
export interface PolicyReport {
  risk: "low" | "medium" | "high";
  notes: string[];
}

/** Whatever the publishing system answers; stored in the checkpoint and returned in `final_result`. */
export type PublishReceipt = Record<string, unknown>;

export interface EffectContext {
  userId: string;
  sessionId: string;
}

export interface PublishContext extends EffectContext {
  /** Stable for one run of the publish step: a downstream system can deduplicate on it. */
  idempotencyKey: string;
}

/** Everything the graph does to the outside world, injected so tests can count and fail it. */
export interface HitlEffects {
  /** The model call: one per turn, sees the whole conversation including the new user message. */
  writeDraft(input: { query: string; messages: ChatMessage[] }, context: EffectContext): Promise<Draft>;
  /** Expensive pre-review work; must run once per review, never again on resume. */
  checkPolicy(draft: Draft, context: EffectContext): Promise<PolicyReport>;
  /** The side effect the human approves. Must run at most once per approved review. */
  publish(args: PublishArgs, context: PublishContext): Promise<PublishReceipt>;
}

export interface HitlServerOptions {
  /** SQLite file of the checkpointer; a new process on the same file sees every pending review. */
  dbPath: string;
  effects: HitlEffects;
  /** How long a pending review may wait for a decision (default 15 minutes). */
  reviewTtlMs?: number;
  /** Clock in epoch milliseconds (default Date.now); injected so expiry can be tested. */
  now?: () => number;
  /** Largest accepted request body in bytes (default 64 KiB); larger is a 413. */
  maxBodyBytes?: number;
  /** Where unexpected errors are reported (default console.error); clients never see stacks. */
  logError?: (message: string, error: unknown) => void;
}

export interface HitlServer {
  /** Not yet listening: call `server.listen(port, host)`. */
  server: Server;
  /** Stops accepting connections, waits for open ones to end, then closes the database. */
  close(): Promise<void>;
}

// ---- wire format --------------------------------------------------------------

export type ReviewDecisionName = "approve" | "reject" | "edit";

/** `event: stage`: one graph node finished. */
export interface StageEvent {
  session_id: string;
  node: string;
  stage: string;
}

/** `event: human_review_required`: the run stopped before the side effect. */
export interface HumanReviewRequiredEvent {
  session_id: string;
  review_id: string;
  pending_action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  expires_at: string;
  allowed_actions: ReviewDecisionName[];
}

/** `event: final_result`: the turn is over. */
export interface FinalResultEvent {
  session_id: string;
  status: "published" | "rejected";
  review_id: string | null;
  /** The publish receipt, or null when nothing was published. */
  result: PublishReceipt | null;
  reply: string;
  /** True when this answers a repeated resume from the checkpoint instead of running anything. */
  replayed?: boolean;
}

/** `event: error`: the run failed; the stream ends after it. */
export interface ErrorEvent {
  session_id: string;
  code: string;
  message: string;
  retryable: boolean;
}

/** Body of every non-stream answer (4xx, and the rare 5xx). */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}
