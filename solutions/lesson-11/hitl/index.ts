/**
 * Reference solution of lesson-11 / hitl: human in the loop over a streaming API.
 *
 * `createHitlServer` serves the seed's two endpoints over a state graph
 * (draft -> check -> review -> publish) checkpointed in SQLite. The review
 * node stops the run with interrupt() before the side effect; the resume
 * endpoint answers it with approve, reject or edit. See server.ts for the
 * HTTP side, review-graph.ts for the graph, and server-main.ts for the demo.
 */
export { createHitlServer, DEFAULT_MAX_BODY_BYTES, DEFAULT_REVIEW_TTL_MS, HitlConfigError } from "./server.ts";
export type {
  ChatMessage,
  Draft,
  EffectContext,
  ErrorBody,
  ErrorEvent,
  FinalResultEvent,
  HitlEffects,
  HitlServer,
  HitlServerOptions,
  HumanReviewRequiredEvent,
  PolicyReport,
  PublishArgs,
  PublishContext,
  PublishReceipt,
  ReviewDecisionName,
  StageEvent,
} from "./types.ts";
