/**
 * Drives a submission's HTTP server from a grader.
 *
 * The server runs in a learner process (kit/sandbox/): the grader calls the
 * learner's exported factory there (through a learner-side fixture that
 * listens on 127.0.0.1:0 and returns the port), then `reach(learner, port)`
 * gives a URL the trusted side can use: inside the sandbox the learner has
 * its own network namespace, and kit/sandbox/forward.ts bridges to it.
 * `post` talks real HTTP to it, reading JSON answers and Server-Sent Events
 * alike (eventsource-parser), records when each event arrived, never waits
 * past its timeout, and reports what it saw. A restart is a real one: SIGKILL
 * the learner process, start another on the same files; only what was
 * persisted survives.
 */
import { createParser } from "eventsource-parser";
import { forwardToLearner, type Forward } from "../../kit/sandbox/forward.ts";
import type { LearnerProcess } from "../../kit/sandbox/learner.ts";

/** A URL on the trusted side for `port` of the learner's loopback (forwarded when the learner is sandboxed). */
export function reach(learner: LearnerProcess, port: number): Promise<Forward> {
  return forwardToLearner(learner, port);
}

// ---- HTTP client -----------------------------------------------------------------

export interface SseEvent {
  event: string;
  /** performance.now() when the event was parsed on the trusted side. */
  at: number;
  /** The parsed JSON of the data line, or the raw text when it is not JSON. */
  data: unknown;
  raw: string;
}

export interface Exchange {
  status: number;
  contentType: string;
  /** Events, when the answer was an event stream. */
  events: SseEvent[];
  /** The body text, when it was not an event stream. */
  text: string;
  /** `text` parsed as JSON, or undefined. */
  json: unknown;
  /** False when the answer did not finish within the timeout (a hung connection). */
  ended: boolean;
  /** Set when the connection failed (refused, reset) instead of answering. */
  networkError?: string;
}

export interface RequestOptions {
  timeoutMs?: number;
  /** Called as each event arrives (before the response has ended). */
  onEvent?: (event: SseEvent) => void;
  headers?: Record<string, string>;
}

/** POSTs `body` as JSON (or as given, when it is a string or bytes) and reads the whole answer. */
export async function post(baseUrl: string, path: string, body: unknown, options: RequestOptions = {}): Promise<Exchange> {
  const payload = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 5000);
  const exchange: Exchange = { status: 0, contentType: "", events: [], text: "", json: undefined, ended: false };
  try {
    const response = await fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: payload,
      signal: controller.signal,
    });
    exchange.status = response.status;
    exchange.contentType = response.headers.get("content-type") ?? "";
    const isStream = exchange.contentType.startsWith("text/event-stream");
    const parser = createParser({
      onEvent: (message) => {
        const event: SseEvent = { event: message.event ?? "message", at: performance.now(), data: parseJson(message.data), raw: message.data };
        exchange.events.push(event);
        options.onEvent?.(event);
      },
    });
    const decoder = new TextDecoder();
    if (response.body) {
      for await (const chunk of response.body) {
        const text = decoder.decode(chunk, { stream: true });
        if (isStream) parser.feed(text);
        else exchange.text += text;
      }
    }
    if (!isStream) exchange.json = parseJson(exchange.text);
    exchange.ended = true;
  } catch (error) {
    if (!controller.signal.aborted) exchange.networkError = error instanceof Error ? `${error.message}${causeOf(error)}` : String(error);
  } finally {
    clearTimeout(timer);
  }
  return exchange;
}

function causeOf(error: Error): string {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? ` (${cause.message})` : "";
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A short description of an answer for failure messages: status, events or body, capped. */
export function describeExchange(exchange: Exchange): string {
  if (exchange.networkError) return `the connection failed (${exchange.networkError})`;
  if (exchange.status === 0) return "no answer arrived before the timeout";
  const content =
    exchange.events.length > 0
      ? `events ${exchange.events.map((event) => `${event.event} ${event.raw}`).join(" | ")}`
      : `body ${exchange.text === "" ? "(empty)" : exchange.text}`;
  const capped = content.length > 600 ? `${content.slice(0, 600)}…` : content;
  return `status ${exchange.status}, ${capped}${exchange.ended ? "" : " (and the response never ended)"}`;
}
