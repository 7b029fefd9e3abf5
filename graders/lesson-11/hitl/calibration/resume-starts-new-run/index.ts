/**
 * Calibration answer (needs improvement). Planted mistake: approve (and edit)
 * start a new run instead of continuing the checkpoint. The resume sends the
 * session's state again as a fresh input with review turned off, so the graph
 * drafts again and publishes a draft nobody reviewed. Reject is answered as in
 * the reference.
 */
import { buildReviewGraph, type ReviewAnswer } from "../../../../../solutions/lesson-11/hitl/review-graph.ts";
import { ReviewSessions, type SessionView } from "../../../../../solutions/lesson-11/hitl/review-sessions.ts";
import { serveHitl } from "../../../../../solutions/lesson-11/hitl/serve.ts";
import { resolveSettings } from "../../../../../solutions/lesson-11/hitl/server.ts";
import type { HitlServer, HitlServerOptions } from "../../../../../solutions/lesson-11/hitl/types.ts";
import { SqliteSaver } from "#runtime";

export * from "../../../../../solutions/lesson-11/hitl/index.ts";

class RerunningSessions extends ReviewSessions {
  protected override continueWithAnswer(threadId: string, answer: ReviewAnswer, session: SessionView) {
    if (answer.decision !== "approve" && answer.decision !== "edit") return super.continueWithAnswer(threadId, answer, session);
    // "Approved, so run it again without asking": a new run from START.
    return this.options.graph.stream({ ...session.values, need_human_review: false, review: null, decision: null }, { threadId });
  }
}

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const checkpointer = new SqliteSaver(settings.dbPath);
  const graph = buildReviewGraph({ ...settings, checkpointer });
  return serveHitl(new RerunningSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
    onClose: () => checkpointer.close(),
  });
}
