/**
 * The graph behind the endpoints: draft -> check -> review -> publish.
 *
 * `check` does the expensive pre-review work (the policy check) and writes the
 * review request, with its id and deadline, into the state. `review` only
 * calls interrupt(): the runtime re-runs an interrupted node from its start on
 * resume, so anything before interrupt() runs twice, and here nothing is there.
 * `publish` is the side effect; it is reached only after an approve or an edit.
 * The wiring guarantees what each node reads (check runs after draft, review
 * after check asked, publish after an approve or edit), hence the `!`s.
 */
import { randomUUID } from "node:crypto";
import { END, START, StateGraph, interrupt, type Channels, type CheckpointSaver, type CompiledStateGraph, type NodeFn } from "#runtime";
import type { ChatMessage, Draft, HitlEffects, PolicyReport, PublishArgs, PublishReceipt } from "./types.ts";

export interface ReviewRequest {
  id: string;
  action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  requestedAt: number;
  expiresAt: number;
}

/** The value a resume passes to interrupt(); `expire` is the server's own answer to a review nobody answered in time. */
export type ReviewAnswer =
  | { decision: "approve" }
  | { decision: "reject" }
  | { decision: "edit"; args: Partial<PublishArgs> }
  | { decision: "expire" };

export type TurnStatus = "running" | "awaiting_review" | "published" | "rejected" | "expired";

/** One session's state. Every field but `messages` describes the current turn and is reset by the next. */
export interface TurnState {
  user_id: string;
  session_id: string;
  query: string;
  /** The whole conversation of the session. Overwritten, not appended: the endpoint passes existing + new. */
  messages: ChatMessage[];
  need_human_review: boolean;
  /** What the last node did, streamed as `event: stage` (the seed's `current_stage`). */
  stage: string;
  draft: Draft | null;
  review: ReviewRequest | null;
  decision: ReviewAnswer["decision"] | null;
  /** The arguments publish runs with: the draft, or the reviewer's edit of it. */
  action_args: PublishArgs | null;
  result: PublishReceipt | null;
  status: TurnStatus;
}

/** Input of a new turn: the conversation so far plus the new message, and a clean slate for the rest. */
export function newTurnInput(fields: { userId: string; sessionId: string; query: string; needHumanReview: boolean; history: ChatMessage[] }): TurnState {
  return {
    user_id: fields.userId,
    session_id: fields.sessionId,
    query: fields.query,
    messages: [...fields.history, { role: "user", content: fields.query }],
    need_human_review: fields.needHumanReview,
    // Stryker disable next-line StringLiteral: the input's stage is never streamed (only finished nodes yield updates) and the first node overwrites it
    stage: "received",
    draft: null,
    review: null,
    decision: null,
    action_args: null,
    result: null,
    // Stryker disable next-line StringLiteral: nothing reads a running turn's status (final_result is built only from published and rejected turns)
    status: "running",
  };
}

export interface ReviewGraphOptions {
  checkpointer: CheckpointSaver;
  effects: HitlEffects;
  now: () => number;
  reviewTtlMs: number;
}

/** The state's channels: every one is overwritten by the latest write (no reducers). */
// Stryker disable all: newTurnInput writes every channel at the start of every turn, so no default is ever read
export const TURN_CHANNELS: Channels<TurnState> = {
  user_id: {},
  session_id: {},
  query: {},
  messages: { default: () => [] },
  need_human_review: { default: () => true },
  stage: { default: () => "received" },
  draft: { default: () => null },
  review: { default: () => null },
  decision: { default: () => null },
  action_args: { default: () => null },
  result: { default: () => null },
  status: { default: () => "running" },
};
// Stryker restore all

/** The four nodes, apart from their wiring. */
export function reviewNodes({ effects, now, reviewTtlMs }: Omit<ReviewGraphOptions, "checkpointer">): Record<"draft" | "check" | "review" | "publish", NodeFn<TurnState>> {
  const context = (state: TurnState) => ({ userId: state.user_id, sessionId: state.session_id });
  const reply = (state: TurnState, content: string): ChatMessage[] => [...state.messages, { role: "assistant", content }];

  return {
    async draft(state) {
      const draft = await effects.writeDraft({ query: state.query, messages: state.messages }, context(state));
      return { draft, stage: "drafted" };
    },

    async check(state) {
      const draft = state.draft!;
      const policy = await effects.checkPolicy(draft, context(state));
      if (!state.need_human_review) return { action_args: draft, stage: "checked" };
      const requestedAt = now();
      const review: ReviewRequest = {
        id: randomUUID(),
        action: { name: "publish", args: draft },
        policy,
        requestedAt,
        expiresAt: requestedAt + reviewTtlMs,
      };
      // Stryker disable next-line StringLiteral: nothing reads a waiting turn's status (the pending review is told by the checkpoint's next node)
      return { review, status: "awaiting_review", stage: "checked" };
    },

    async review(state) {
      // Nothing above this line: the node re-runs from here on resume.
      const review = state.review!;
      const answer = interrupt<ReviewAnswer>(review);
      switch (answer.decision) {
        case "approve":
          return { decision: "approve", action_args: review.action.args, stage: "approved" };
        case "edit":
          return { decision: "edit", action_args: { ...review.action.args, ...answer.args }, stage: "edited" };
        case "reject":
          return {
            decision: "reject",
            status: "rejected",
            stage: "rejected",
            messages: reply(state, `The reviewer rejected "${review.action.args.title}"; nothing was published.`),
          };
        case "expire":
          return {
            decision: "expire",
            // Stryker disable next-line StringLiteral: read by nothing (final_result is sent for published and rejected only, and an expiry runs through invoke(), not the stream)
            status: "expired",
            // Stryker disable next-line StringLiteral: the expiry runs through invoke(), so its stage is never streamed
            stage: "expired",
            messages: reply(state, `The review of "${review.action.args.title}" expired; nothing was published.`),
          };
      }
    },

    async publish(state, ctx) {
      const args = state.action_args!;
      // The step's checkpoint id is the same on every retry of this step, so it deduplicates downstream.
      const idempotencyKey = `${ctx.threadId}/${ctx.checkpointId}`;
      const result = await effects.publish(args, { ...context(state), idempotencyKey });
      return { result, status: "published", stage: "published", messages: reply(state, `Published "${args.title}".`) };
    },
  };
}

export function buildReviewGraph(options: ReviewGraphOptions) {
  const nodes = reviewNodes(options);
  return new StateGraph<TurnState>(TURN_CHANNELS)
    .addNode("draft", nodes.draft)
    .addNode("check", nodes.check)
    .addNode("review", nodes.review)
    .addNode("publish", nodes.publish)
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addConditionalEdges("check", (state) => (state.need_human_review ? "review" : "publish"))
    .addConditionalEdges("review", (state) => (state.decision === "approve" || state.decision === "edit" ? "publish" : END))
    .addEdge("publish", END)
    .compile({ checkpointer: options.checkpointer, stateSchemaVersion: 1 });
}

/** Any compiled graph over TurnState: the endpoints work with other wirings of the same nodes. */
export type ReviewGraph = CompiledStateGraph<TurnState>;
