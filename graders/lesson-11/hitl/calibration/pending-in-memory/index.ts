/**
 * Calibration answer (adequate). Planted mistake: the pending review lives only
 * in process memory. The graph is checkpointed in a MemorySaver, so everything
 * works while the process lives, and a restart between the interrupt and the
 * resume loses the review (the resume finds no session). Everything else is the reference.
 */
import { MemorySaver } from "#runtime";
import { buildReviewGraph } from "../../../../../solutions/lesson-11/hitl/review-graph.ts";
import { ReviewSessions } from "../../../../../solutions/lesson-11/hitl/review-sessions.ts";
import { serveHitl } from "../../../../../solutions/lesson-11/hitl/serve.ts";
import { resolveSettings } from "../../../../../solutions/lesson-11/hitl/server.ts";
import type { HitlServer, HitlServerOptions } from "../../../../../solutions/lesson-11/hitl/types.ts";

export * from "../../../../../solutions/lesson-11/hitl/index.ts";

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const graph = buildReviewGraph({ ...settings, checkpointer: new MemorySaver() });
  return serveHitl(new ReviewSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
  });
}
