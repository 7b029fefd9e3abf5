/**
 * lesson-11 / hitl: human in the loop over a streaming API.
 *
 * A node:http server with a route table, a hand-written SSE writer and a per-thread promise chain;
 * the review (request, deadline, answer, outcome) lives in the graph state in SQLite.
 */
import type { Server } from "node:http";
import { createServerImpl } from "./server.ts";

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface Draft {
  title: string;
  body: string;
}

export interface PublishArgs {
  title: string;
  body: string;
}

export interface PolicyReport {
  risk: "low" | "medium" | "high";
  notes: string[];
}

export type PublishReceipt = Record<string, unknown>;

export interface EffectContext {
  userId: string;
  sessionId: string;
}

export interface PublishContext extends EffectContext {
  /** Stable for one run of the publish step, so a downstream system can deduplicate on it. */
  idempotencyKey: string;
}

export interface HitlEffects {
  /** The model call: once per turn, with the whole conversation including the new user message. */
  writeDraft(input: { query: string; messages: ChatMessage[] }, context: EffectContext): Promise<Draft>;
  /** Expensive pre-review work: once per review, never again on resume. */
  checkPolicy(draft: Draft, context: EffectContext): Promise<PolicyReport>;
  /** The side effect the human approves: at most once per approved review. */
  publish(args: PublishArgs, context: PublishContext): Promise<PublishReceipt>;
}

export interface HitlServerOptions {
  /** SQLite file of the checkpointer. */
  dbPath: string;
  effects: HitlEffects;
  /** How long a review may wait for a decision (default 15 minutes). */
  reviewTtlMs?: number;
  /** Clock in epoch milliseconds (default Date.now). Use it for every expiry decision. */
  now?: () => number;
  /** Largest accepted request body in bytes (default 64 KiB). */
  maxBodyBytes?: number;
  /** Where unexpected errors are reported (default console.error). */
  logError?: (message: string, error: unknown) => void;
}

export interface HitlServer {
  /** Not listening yet: the caller runs server.listen(port, host). */
  server: Server;
  /** Stops the server and closes the database. */
  close(): Promise<void>;
}

export type ReviewDecisionName = "approve" | "reject" | "edit";

export interface StageEvent {
  session_id: string;
  node: string;
  stage: string;
}

export interface HumanReviewRequiredEvent {
  session_id: string;
  review_id: string;
  pending_action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  expires_at: string;
  allowed_actions: ReviewDecisionName[];
}

export interface FinalResultEvent {
  session_id: string;
  status: "published" | "rejected";
  review_id: string | null;
  result: PublishReceipt | null;
  reply: string;
  replayed?: boolean;
}

export interface ErrorEvent {
  session_id: string;
  code: string;
  message: string;
  retryable: boolean;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export const DEFAULT_REVIEW_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** createHitlServer was called with options it cannot work with. */
export class HitlConfigError extends Error {
  override name = "HitlConfigError";
}

export function createHitlServer(options: HitlServerOptions): HitlServer {
  return createServerImpl(options, HitlConfigError);
}
