/**
 * The HTTP layer: routes, bounded JSON bodies, zod validation, and the
 * mapping of outcomes to answers (an event stream, or a JSON error with a
 * 4xx status). Nothing here knows about graphs; ReviewSessions does the work.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { ClientGoneError, HttpError, SseStream, readJsonBody, sendError } from "./http-io.ts";
import type { ReviewSessions } from "./review-sessions.ts";
import { chatStreamBody, parseBody, resumeBody } from "./schemas.ts";
import type { HitlServer } from "./types.ts";

export interface ServeOptions {
  maxBodyBytes: number;
  logError: (message: string, error: unknown) => void;
  /** Releases what the sessions hold (the database) once the server has closed. */
  onClose: () => void | Promise<void>;
}

export const CHAT_STREAM_PATH = "/graph_v2/chat/stream";
export const RESUME_PATH = "/graph/resume";

export function serveHitl(sessions: ReviewSessions, options: ServeOptions): HitlServer {
  const routes: Record<string, (raw: unknown, response: ServerResponse) => Promise<void>> = {
    [CHAT_STREAM_PATH]: (raw, response) => sessions.startTurn(parseBody(chatStreamBody, raw), () => new SseStream(response)),
    [RESUME_PATH]: (raw, response) => sessions.resume(parseBody(resumeBody, raw), () => new SseStream(response)),
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      // A server's requests always have a url (node:http sets it from the request line).
      const path = new URL(request.url!, "http://localhost").pathname;
      const route = routes[path];
      if (!route) {
        throw new HttpError(404, "not_found", `No endpoint at ${path}; use POST ${CHAT_STREAM_PATH} or POST ${RESUME_PATH}.`);
      }
      if (request.method !== "POST") {
        response.setHeader("allow", "POST");
        throw new HttpError(405, "method_not_allowed", `${path} accepts POST only.`);
      }
      await route(await readJsonBody(request, options.maxBodyBytes), response);
    } catch (error) {
      // Stryker disable next-line ConditionalExpression: the client has left; whatever is answered, nobody reads it
      if (error instanceof ClientGoneError) return;
      // Stryker disable next-line ConditionalExpression: every failure the contract names is an HttpError; what follows is the net for a bug, which the reference has no way to reach
      if (error instanceof HttpError) return sendError(response, error);
      // Stryker disable all: the same net for a bug (no request reaches it in the reference); the log line is never sent to the client
      options.logError("hitl: unexpected error while handling a request", error);
      if (response.headersSent) response.end();
      else sendError(response, new HttpError(500, "internal_error", "The server failed unexpectedly; the error was logged. Retry later."));
      // Stryker restore all
    }
  }

  const server = createServer((request, response) => {
    void handle(request, response);
  });

  async function close(): Promise<void> {
    await new Promise<void>((resolve) => {
      // The callback also runs (with an error) when the server never listened: closing is still done.
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    await options.onClose();
  }

  return { server, close };
}
