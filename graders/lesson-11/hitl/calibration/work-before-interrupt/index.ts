/**
 * Calibration answer (adequate). Planted mistake: expensive work before
 * interrupt() in the interrupting node. The policy check runs inside the review
 * node, above the interrupt() call, so it runs once when the node pauses and
 * again when it re-runs on resume. Everything else is the reference.
 */
import { END, START, SqliteSaver, StateGraph } from "#runtime";
import { reviewNodes, TURN_CHANNELS, type TurnState } from "../../../../../solutions/lesson-11/hitl/review-graph.ts";
import { ReviewSessions } from "../../../../../solutions/lesson-11/hitl/review-sessions.ts";
import { serveHitl } from "../../../../../solutions/lesson-11/hitl/serve.ts";
import { resolveSettings } from "../../../../../solutions/lesson-11/hitl/server.ts";
import type { HitlServer, HitlServerOptions } from "../../../../../solutions/lesson-11/hitl/types.ts";

export * from "../../../../../solutions/lesson-11/hitl/index.ts";

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const checkpointer = new SqliteSaver(settings.dbPath);
  const nodes = reviewNodes(settings);
  // The check node no longer asks the policy service; the review node does, before interrupt().
  const prepare = reviewNodes({ ...settings, effects: { ...settings.effects, checkPolicy: async () => ({ risk: "low", notes: [] }) } });
  const graph = new StateGraph<TurnState>(TURN_CHANNELS)
    .addNode("draft", nodes.draft)
    .addNode("check", prepare.check)
    .addNode("review", async (state, ctx) => {
      if (!state.review || !state.draft) return nodes.review(state, ctx);
      const policy = await settings.effects.checkPolicy(state.draft, { userId: state.user_id, sessionId: state.session_id });
      return nodes.review({ ...state, review: { ...state.review, policy } }, ctx);
    })
    .addNode("publish", nodes.publish)
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addConditionalEdges("check", (state) => (state.need_human_review ? "review" : "publish"))
    .addConditionalEdges("review", (state) => (state.decision === "approve" || state.decision === "edit" ? "publish" : END))
    .addEdge("publish", END)
    .compile({ checkpointer, stateSchemaVersion: 1 });
  return serveHitl(new ReviewSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
    onClose: () => checkpointer.close(),
  });
}
