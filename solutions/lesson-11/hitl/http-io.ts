/**
 * The little HTTP plumbing node:http leaves to us: a bounded JSON body reader,
 * JSON error answers, and a Server-Sent Events writer.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ErrorBody } from "./types.ts";

/** An answer to send instead of a stream: status, a stable code, and a sentence for the caller. */
export class HttpError extends Error {
  // Stryker disable next-line StringLiteral: a class name shows only in the server's own logs and stack traces
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The client hung up before its body arrived; there is nobody left to answer. */
export class ClientGoneError extends Error {
  // Stryker disable next-line StringLiteral: a class name shows only in the server's own logs and stack traces
  override name = "ClientGoneError";
}

/** Past this many times the limit we stop draining and drop the connection. */
const DRAIN_FACTOR = 16;

/**
 * Reads and parses a JSON body of at most `maxBytes`. An oversize body is
 * drained (up to a bound) before the 413 is sent, so the client reads our
 * answer instead of a reset connection; nothing past the limit is kept.
 */
export function readJsonBody(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;

    request.on("data", (chunk: Buffer) => {
      received += chunk.length;
      // Stryker disable next-line ConditionalExpression: keeping the chunks past the limit changes only the memory held until the 413
      if (received <= maxBytes) chunks.push(chunk);
      else if (received > maxBytes * DRAIN_FACTOR) {
        request.destroy();
        reject(bodyTooLarge(maxBytes));
      }
    });
    // Stryker disable next-line all: the client has left, so no answer can be observed; the promise only settles (or not) unseen
    request.on("error", (error) => reject(new ClientGoneError(error.message)));
    request.on("end", () => {
      if (received > maxBytes) return reject(bodyTooLarge(maxBytes));
      try {
        // An empty body is malformed JSON too.
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        reject(new HttpError(400, "invalid_json", `The request body is not valid JSON (${reason}); send a JSON object.`));
      }
    });
  });
}

function bodyTooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "body_too_large", `The request body is larger than ${maxBytes} bytes; send a smaller body.`);
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

export function sendError(response: ServerResponse, error: HttpError): void {
  const body: ErrorBody = { error: { code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}) } };
  sendJson(response, error.status, body);
}

/**
 * One Server-Sent Events response. Each event is one `event:` line and one
 * `data:` line of single-line JSON. Writes after the client left are dropped
 * by node:http itself: the graph run still finishes and checkpoints, only the
 * audience is gone.
 */
export class SseStream {
  constructor(private readonly response: ServerResponse) {
    response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      // Proxies such as nginx buffer responses unless told not to; an event stream must flow.
      "x-accel-buffering": "no",
    });
    response.flushHeaders();
  }

  send(event: string, data: unknown): void {
    this.response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    this.response.end();
  }
}
