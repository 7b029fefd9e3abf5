/** The HTTP boundary: errors with a status, bounded JSON bodies, schema errors that name the field, SSE. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, { error: { code: error.code, message: error.message, ...(error.field !== undefined && { field: error.field }) } });
}

/**
 * Reads a JSON body of at most `maxBytes`. Past the limit the bytes are no longer kept; the rest is
 * drained (up to a bound) so the client reads the 413 instead of a reset connection.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const drainLimit = maxBytes + 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (error: HttpError) => {
      if (!settled) {
        settled = true;
        reject(error);
      }
    };
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else if (size > drainLimit) {
        req.pause();
        fail(new HttpError(413, "body_too_large", `The request body is larger than ${maxBytes} bytes.`));
      }
    });
    req.on("end", () => {
      if (settled) return;
      if (size > maxBytes) return fail(new HttpError(413, "body_too_large", `The request body is larger than ${maxBytes} bytes.`));
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return fail(new HttpError(400, "invalid_json", "The request body is empty; send a JSON object."));
      try {
        settled = true;
        resolve(JSON.parse(text));
      } catch (error) {
        settled = false;
        fail(new HttpError(400, "invalid_json", `The request body is not valid JSON: ${(error as Error).message}.`));
      }
    });
    req.on("error", () => fail(new HttpError(400, "body_unreadable", "The request body could not be read.")));
  });
}

/** Parses with a zod schema; the first issue becomes a 400 naming its field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "invalid_body", "The request body must be a JSON object.");
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const field = String(issue.keys[0]);
    throw new HttpError(400, "invalid_body", `Field "${field}" is not allowed: unknown field.`, field);
  }
  const field = issue.path.map(String).join(".");
  if (field === "") throw new HttpError(400, "invalid_body", `The request body is invalid: ${issue.message}.`);
  throw new HttpError(400, "invalid_body", `Field "${field}" is invalid: ${issue.message}.`, field.split(".")[0]);
}

/** A hand-written Server-Sent Events writer: one write per event, flushed as it happens. */
export class SseWriter {
  private open = true;

  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    res.on("close", () => {
      this.open = false;
    });
  }

  send(event: string, data: unknown): void {
    // A client that went away does not stop the run: the graph finishes its step and checkpoints.
    if (!this.open || this.res.writableEnded || this.res.destroyed) return;
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }
}
