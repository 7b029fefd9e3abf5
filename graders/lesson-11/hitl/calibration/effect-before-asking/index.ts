/**
 * Calibration answer (needs improvement). Planted mistake: the side effect runs
 * before the human is asked. The graph publishes right after the policy check
 * and only then stops for review, so "approve" confirms something already done
 * and "reject" cannot undo it. Everything else is the reference.
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
  const graph = new StateGraph<TurnState>(TURN_CHANNELS)
    .addNode("draft", nodes.draft)
    .addNode("check", async (state, ctx) => ({ ...(await nodes.check(state, ctx)), action_args: state.draft }))
    .addNode("publish", nodes.publish)
    .addNode("review", nodes.review)
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addEdge("check", "publish")
    .addConditionalEdges("publish", (state) => (state.need_human_review ? "review" : END))
    .addEdge("review", END)
    .compile({ checkpointer, stateSchemaVersion: 1 });
  return serveHitl(new ReviewSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
    onClose: () => checkpointer.close(),
  });
}
