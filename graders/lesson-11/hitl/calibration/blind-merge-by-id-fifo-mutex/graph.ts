/**
 * The review graph: draft -> check -> review -> publish. Every decision the server makes about a
 * review is read back from the checkpoint this graph writes; nothing about a review lives in memory.
 */
import { randomUUID } from "node:crypto";
import { END, START, StateGraph, interrupt, type CheckpointSaver, type CompiledStateGraph } from "#runtime";
import type { ChatMessage, Draft, HitlEffects, PolicyReport, PublishArgs, PublishReceipt, ReviewDecisionName } from "./index.ts";

export interface StoredMessage extends ChatMessage {
  id: string;
}

export function mergeById(current: StoredMessage[], update: StoredMessage[]): StoredMessage[] {
  const merged = [...current];
  const at = new Map(current.map((m, i) => [m.id, i]));
  for (const message of update) {
    const index = at.get(message.id);
    if (index === undefined) {
      at.set(message.id, merged.length);
      merged.push(message);
    } else merged[index] = message;
  }
  return merged;
}

export interface ReviewRequest {
  review_id: string;
  pending_action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  expires_at: string;
  /** The same deadline in epoch milliseconds, compared with the injected clock. */
  expires_at_ms: number;
}

export type Decision = ReviewDecisionName | "expire";

export interface ReviewAnswer {
  decision: Decision;
  edited_args?: Partial<PublishArgs>;
}

export interface HitlState {
  user_id: string;
  session_id: string;
  /**
   * Reducer merging by message id (as LangGraph's add_messages): a turn's input of existing + new
   * keeps each stored message once, because the stored ones already carry their ids.
   */
  messages: StoredMessage[];
  query: string;
  enable_human_review: boolean;
  draft: Draft | null;
  policy: PolicyReport | null;
  review: ReviewRequest | null;
  answer: ReviewAnswer | null;
  action_args: PublishArgs | null;
  status: "published" | "rejected" | "expired" | null;
  result: PublishReceipt | null;
  reply: string | null;
}

/** Per-turn fields a new message resets, so a turn never sees the last turn's review. */
export const TURN_RESET: Pick<HitlState, "draft" | "policy" | "review" | "answer" | "action_args" | "status" | "result" | "reply"> = {
  draft: null,
  policy: null,
  review: null,
  answer: null,
  action_args: null,
  status: null,
  result: null,
  reply: null,
};

const nullable = <V>() => ({ default: () => null as V });

export function buildGraph(checkpointer: CheckpointSaver, effects: HitlEffects, reviewTtlMs: number, now: () => number): CompiledStateGraph<HitlState> {
  const context = (state: HitlState) => ({ userId: state.user_id, sessionId: state.session_id });

  return new StateGraph<HitlState>({
    user_id: { default: () => "" },
    session_id: { default: () => "" },
    messages: { reducer: mergeById, default: () => [] },
    query: { default: () => "" },
    enable_human_review: { default: () => true },
    draft: nullable<Draft | null>(),
    policy: nullable<PolicyReport | null>(),
    review: nullable<ReviewRequest | null>(),
    answer: nullable<ReviewAnswer | null>(),
    action_args: nullable<PublishArgs | null>(),
    status: nullable<HitlState["status"]>(),
    result: nullable<PublishReceipt | null>(),
    reply: nullable<string | null>(),
  })
    .addNode("draft", async (state) => {
      const draft = await effects.writeDraft({ query: state.query, messages: state.messages.map(({ role, content }) => ({ role, content })) }, context(state));
      return { draft: { title: draft.title, body: draft.body } };
    })
    .addNode("check", async (state) => {
      // The expensive pre-review work and the deadline live here, in a node that is checkpointed
      // once, never in the review node (which runs again from its first line on resume).
      const draft = state.draft!;
      const policy = await effects.checkPolicy(draft, context(state));
      if (!state.enable_human_review) return { policy, action_args: { ...draft } };
      const expiresAtMs = now() + reviewTtlMs;
      const review: ReviewRequest = {
        review_id: randomUUID(),
        pending_action: { name: "publish", args: { title: draft.title, body: draft.body } },
        policy,
        expires_at: new Date(expiresAtMs).toISOString(),
        expires_at_ms: expiresAtMs,
      };
      return { policy, review };
    })
    .addNode("review", (state) => {
      // Nothing may go above interrupt(): this node re-runs from here when the answer arrives.
      const answer = interrupt<ReviewAnswer>(state.review);
      const review = state.review!;
      const args = review.pending_action.args;
      switch (answer.decision) {
        case "approve":
          return { answer, action_args: { ...args } };
        case "edit":
          return { answer, action_args: { ...args, ...answer.edited_args } };
        case "reject": {
          const reply = `Not published: the reviewer rejected "${args.title}".`;
          return { answer, status: "rejected", result: null, reply, messages: [{ id: `${review.review_id}:reply`, role: "assistant", content: reply }] };
        }
        case "expire":
          return { answer, status: "expired", result: null, reply: `The review expired at ${review.expires_at}; nothing was published.` };
      }
    })
    .addNode("publish", async (state, ctx) => {
      const args = state.action_args!;
      // The checkpoint id of this step is stable across retries of the step and new for every review.
      const result = await effects.publish(args, { ...context(state), idempotencyKey: `${ctx.threadId}:${ctx.checkpointId}:publish` });
      const reply = `Published "${args.title}".`;
      return { status: "published", result, reply, messages: [{ id: `${ctx.taskId}:reply`, role: "assistant", content: reply }] };
    })
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addConditionalEdges("check", (state) => (state.enable_human_review ? "review" : "publish"))
    .addConditionalEdges("review", (state) => (state.answer?.decision === "approve" || state.answer?.decision === "edit" ? "publish" : END))
    .addEdge("publish", END)
    .compile({ checkpointer, stateSchemaVersion: 1 });
}

/** The stage name a node's update is announced with (undefined: not announced). */
export function stageOf(node: string, update: Partial<HitlState>): string | undefined {
  switch (node) {
    case "draft":
      return "drafted";
    case "check":
      return "checked";
    case "review":
      return { approve: "approved", edit: "edited", reject: "rejected", expire: undefined }[update.answer?.decision ?? "expire"];
    case "publish":
      return "published";
    default:
      return undefined;
  }
}
