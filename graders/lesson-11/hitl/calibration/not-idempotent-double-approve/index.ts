/**
 * Calibration answer (adequate). Planted mistake: requests of one session are
 * not serialized. Two approves sent at once (a double click) both read "review
 * pending" or "approved, publish not done yet" from the checkpoint and both run
 * publish. A retried approve sent after the first finished is still answered
 * from the checkpoint, so only the concurrent case shows the bug.
 */
import { SqliteSaver } from "#runtime";
import { buildReviewGraph } from "../../../../../solutions/lesson-11/hitl/review-graph.ts";
import { ReviewSessions } from "../../../../../solutions/lesson-11/hitl/review-sessions.ts";
import { serveHitl } from "../../../../../solutions/lesson-11/hitl/serve.ts";
import { resolveSettings } from "../../../../../solutions/lesson-11/hitl/server.ts";
import type { HitlServer, HitlServerOptions } from "../../../../../solutions/lesson-11/hitl/types.ts";

export * from "../../../../../solutions/lesson-11/hitl/index.ts";

class UnlockedSessions extends ReviewSessions {
  protected override exclusive<T>(_threadId: string, task: () => Promise<T>): Promise<T> {
    return task();
  }
}

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const checkpointer = new SqliteSaver(settings.dbPath);
  const graph = buildReviewGraph({ ...settings, checkpointer });
  return serveHitl(new UnlockedSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
    onClose: () => checkpointer.close(),
  });
}
