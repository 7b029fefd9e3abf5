/**
 * Calibration answer (needs improvement). Planted mistake: the message history
 * is accumulated twice. The endpoint passes existing + new messages (as the
 * seed does), but the `messages` channel has an appending reducer, so every
 * turn stores the whole conversation again. Everything else is the reference.
 */
import { END, START, SqliteSaver, StateGraph } from "#runtime";
import { reviewNodes, TURN_CHANNELS, type TurnState } from "../../../../../solutions/lesson-11/hitl/review-graph.ts";
import { ReviewSessions } from "../../../../../solutions/lesson-11/hitl/review-sessions.ts";
import { serveHitl } from "../../../../../solutions/lesson-11/hitl/serve.ts";
import { resolveSettings } from "../../../../../solutions/lesson-11/hitl/server.ts";
import type { ChatMessage, HitlServer, HitlServerOptions } from "../../../../../solutions/lesson-11/hitl/types.ts";

export * from "../../../../../solutions/lesson-11/hitl/index.ts";

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const checkpointer = new SqliteSaver(settings.dbPath);
  const nodes = reviewNodes(settings);
  const appendMessages = (current: ChatMessage[], update: ChatMessage[]) => current.concat(update);
  const graph = new StateGraph<TurnState>({ ...TURN_CHANNELS, messages: { reducer: appendMessages, default: () => [] } })
    .addNode("draft", nodes.draft)
    .addNode("check", nodes.check)
    .addNode("review", nodes.review)
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
