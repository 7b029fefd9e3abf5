/**
 * Drives a submission's HTTP server from a grader.
 *
 * Parent side (the grader): `startServerProcess` forks a child entry, a .ts
 * file written per unit that loads the submission with
 * `#harness/implementation.ts` and listens on an ephemeral 127.0.0.1 port.
 * The grader talks to it over real HTTP with `post`, which reads JSON answers
 * and Server-Sent Events alike (eventsource-parser), never waits past its
 * timeout, and reports what it saw. A separate process is what makes a
 * restart check honest: kill it, start a new one on the same files, and only
 * what was persisted survives. The child starts as learner-process.ts
 * describes: TypeScript hooks and the engine's sandbox flags, like the grader.
 *
 * Child side: `runServerChild` listens, reports the port over IPC, answers
 * control messages from the grader (e.g. "advance the clock"), and exits when
 * the grader goes away.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createParser } from "eventsource-parser";
import { forkLearnerProcess } from "./learner-process.ts";

// ---- parent side ------------------------------------------------------------------

export interface ServerProcess {
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  pid: number;
  /** Sends a control message to the child and waits for its answer. */
  control<T = unknown>(command: string, payload?: unknown): Promise<T>;
  /** SIGKILL, as a crash would: nothing the child has not persisted survives. */
  kill(): Promise<void>;
  /** Asks the child to close its server, then kills it if it does not exit in time. */
  stop(): Promise<void>;
  /** The child's stderr so far (the last few KiB), for failure messages. */
  stderr(): string;
}

export class ServerStartError extends Error {
  override name = "ServerStartError";
}

export interface StartServerOptions {
  /** Absolute path of the child entry (a .ts file). */
  entry: string;
  /** Extra environment for the child; CHECKPOINT_KIT_UNIT_DIR and the rest of the grader's environment pass through. */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** V8 heap limit of the child, in MB. */
  memoryMb?: number;
}

type ChildMessage =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string }
  | { type: "reply"; id: number; ok: true; value: unknown }
  | { type: "reply"; id: number; ok: false; message: string };


export async function startServerProcess(options: StartServerOptions): Promise<ServerProcess> {
  const { child, stderr } = forkLearnerProcess(options.entry, { env: { ...process.env, ...options.env }, memoryMb: options.memoryMb });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new ServerStartError(`The server process did not start listening within ${options.readyTimeoutMs ?? 15_000} ms.${tail(stderr())}`));
    }, options.readyTimeoutMs ?? 15_000);
    const onMessage = (message: ChildMessage) => {
      if (message.type === "listening") {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(message.port);
      } else if (message.type === "failed") {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new ServerStartError(message.message));
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new ServerStartError(`The server process exited (${signal ?? `code ${code}`}) before it was listening.${tail(stderr())}`));
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });

  let nextId = 1;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  child.on("message", (message: ChildMessage) => {
    if (message.type !== "reply") return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.ok) waiter?.resolve(message.value);
    else waiter?.reject(new Error(message.message));
  });
  child.once("exit", () => {
    for (const waiter of pending.values()) waiter.reject(new Error("the server process exited"));
    pending.clear();
  });

  const killAndWait = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    control<T>(command: string, payload?: unknown) {
      return new Promise<T>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ type: "control", id, command, payload });
      });
    },
    kill: () => killAndWait("SIGKILL"),
    async stop() {
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await killAndWait("SIGTERM");
      clearTimeout(timer);
    },
    stderr,
  };
}

function tail(stderr: string): string {
  const text = stderr.trim();
  return text === "" ? "" : ` Its stderr ended with: ${text.slice(-800)}`;
}

// ---- HTTP client -----------------------------------------------------------------

export interface SseEvent {
  event: string;
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
      onEvent: (message) => exchange.events.push({ event: message.event ?? "message", data: parseJson(message.data), raw: message.data }),
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

// ---- child side ------------------------------------------------------------------

export type ControlHandler = (command: string, payload: unknown) => unknown | Promise<unknown>;

/**
 * The body of a child entry: build the server (importing the submission may
 * throw: that is reported as a start failure, not a crash), listen on an
 * ephemeral port, report it, and serve control messages until the grader leaves.
 */
export async function runServerChild(build: () => Promise<{ server: Server; close?: () => Promise<void> }>, onControl: ControlHandler = () => undefined): Promise<void> {
  const send = (message: ChildMessage) => process.send?.(message);
  let built: { server: Server; close?: () => Promise<void> };
  try {
    built = await build();
    await new Promise<void>((resolve, reject) => {
      built.server.once("error", reject);
      built.server.listen(0, "127.0.0.1", () => resolve());
    });
  } catch (error) {
    send({ type: "failed", message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    // Let the message flush before exiting.
    setTimeout(() => process.exit(1), 50);
    return;
  }
  process.on("message", (message: { type?: string; id?: number; command?: string; payload?: unknown }) => {
    if (message.type !== "control" || typeof message.id !== "number") return;
    const id = message.id;
    Promise.resolve()
      .then(() => onControl(message.command ?? "", message.payload))
      .then(
        (value) => send({ type: "reply", id, ok: true, value: value ?? null }),
        (error: unknown) => send({ type: "reply", id, ok: false, message: error instanceof Error ? error.message : String(error) }),
      );
  });
  // The grader went away (finished or was killed): nobody will talk to this server again.
  process.on("disconnect", () => process.exit(0));
  process.on("SIGTERM", () => {
    const closing = built.close?.() ?? new Promise<void>((resolve) => built.server.close(() => resolve()));
    void closing.finally(() => process.exit(0));
  });
  send({ type: "listening", port: (built.server.address() as AddressInfo).port });
}
