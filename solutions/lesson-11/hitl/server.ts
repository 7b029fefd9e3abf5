/**
 * createHitlServer: the SQLite checkpointer, the review graph, the session
 * logic and the HTTP layer, put together from validated options.
 */
import { z } from "zod";
import { SqliteSaver } from "#runtime";
import { buildReviewGraph } from "./review-graph.ts";
import { ReviewSessions } from "./review-sessions.ts";
import { serveHitl } from "./serve.ts";
import type { HitlServer, HitlServerOptions } from "./types.ts";

export const DEFAULT_REVIEW_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** createHitlServer was called with options it cannot work with. */
export class HitlConfigError extends Error {
  override name = "HitlConfigError";
}

const fn = z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", "must be a function");

const optionsSchema = z.object({
  dbPath: z.string().min(1),
  effects: z.object({ writeDraft: fn, checkPolicy: fn, publish: fn }),
  reviewTtlMs: z.number().int().positive().optional(),
  now: fn.optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  logError: fn.optional(),
});

/** Options after validation, with every default filled in. */
export interface HitlSettings {
  dbPath: string;
  effects: HitlServerOptions["effects"];
  reviewTtlMs: number;
  now: () => number;
  maxBodyBytes: number;
  logError: (message: string, error: unknown) => void;
}

export function resolveSettings(options: HitlServerOptions): HitlSettings {
  const checked = optionsSchema.safeParse(options);
  if (!checked.success) {
    // A failed parse reports at least one issue; an empty path is the options argument itself.
    const issue = checked.error.issues[0]!;
    throw new HitlConfigError(`createHitlServer: ${issue.path.join(".") || "options"}: ${issue.message}.`);
  }
  return {
    dbPath: options.dbPath,
    effects: options.effects,
    reviewTtlMs: options.reviewTtlMs ?? DEFAULT_REVIEW_TTL_MS,
    now: options.now ?? Date.now,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    // Stryker disable next-line ArrowFunction: the default logger only writes the server's stderr, which no client sees
    logError: options.logError ?? ((message: string, error: unknown) => console.error(message, error)),
  };
}

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const settings = resolveSettings(options);
  const checkpointer = new SqliteSaver(settings.dbPath);
  const graph = buildReviewGraph({ ...settings, checkpointer });
  return serveHitl(new ReviewSessions({ graph, now: settings.now, logError: settings.logError }), {
    maxBodyBytes: settings.maxBodyBytes,
    logError: settings.logError,
    onClose: () => checkpointer.close(),
  });
}
