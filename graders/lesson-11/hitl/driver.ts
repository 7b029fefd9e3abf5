/**
 * How the hitl checks drive a submission: its server started in a learner
 * process (the shared one for the independent checks, spawned ones where a
 * check kills and restarts it), reached over real HTTP, opaque seeded
 * sessions, the two endpoints, and readers that turn an answer into the event
 * a check expects or a failure sentence about the learner's server.
 */
import { join } from "node:path";
import { z } from "zod";
import type { CheckContext } from "#harness/check.ts";
import { describeExchange, post, reach, type Exchange, type RequestOptions } from "#harness/http.ts";
import { failWithSeed as fail, seededRandom } from "#harness/seed.ts";
import { sharedSetup, type LearnerProcess } from "../../../kit/sandbox/learner.ts";
import type * as Api from "../../../solutions/lesson-11/hitl/index.ts";
import { Ledger, type EffectName, type LedgerEntry } from "./fixture.ts";

export type HitlApi = typeof Api;
type LearnerFixture = typeof import("./learner-fixture.ts");

export const FIXTURE = "hitl-server";
export const FIXTURE_PATH = new URL("./learner-fixture.ts", import.meta.url).pathname;

export const CHAT_PATH = "/graph_v2/chat/stream";
export const RESUME_PATH = "/graph/resume";
/** The review deadline the grader configures; the expiry check moves the clock past it. */
export const REVIEW_TTL_MS = 60_000;
/** How long one request may take on a calm machine before the driver gives up on it. */
const REQUEST_MS = 5_000;

export { fail };

// ---- server processes --------------------------------------------------------

export interface HitlServer {
  baseUrl: string;
  learner: LearnerProcess;
  /** The SQLite file; a restart opens a new process on it. */
  dbPath: string;
  ledger: Ledger;
  /** The request timeout, scaled to the machine. */
  timeoutMs: number;
  /** Moves the server's clock (the `now` it was given) forward; returns the total offset. */
  advanceClock(ms: number): Promise<number>;
  /** Calls the server's close() in its process: "resolved", or "timeout" when it did not settle within `waitMs`. */
  close(waitMs: number): Promise<"resolved" | "timeout">;
}

const random = seededRandom();
const opaque = () => Math.floor(random() * 2 ** 48).toString(16).padStart(12, "0");

/** A fresh SQLite file name in the unit's scratch folder (neutral: it names no check). */
export function newDbPath(check: CheckContext<HitlApi>): string {
  return join(check.scratch, `${opaque()}.db`);
}

export interface StartOptions {
  dbPath?: string;
  /** A restart passes the old ledger. */
  ledger?: Ledger;
  /** createHitlServer's other options; by default reviewTtlMs REVIEW_TTL_MS and nothing else. */
  serverOptions?: Record<string, unknown>;
  /** The server later checks share (see sharedSetup). */
  shared?: boolean;
}

/**
 * Starts the submission's server in `learner` (whose module is `api`) on
 * `dbPath`, recording into `ledger` (a new one unless given).
 */
export async function startHitl(
  check: CheckContext<HitlApi>,
  learner: LearnerProcess,
  api: HitlApi,
  { dbPath = newDbPath(check), ledger = new Ledger(), serverOptions = { reviewTtlMs: REVIEW_TTL_MS }, shared = false }: StartOptions = {},
): Promise<HitlServer> {
  const fixture = await check.fixture<LearnerFixture>(FIXTURE, learner);
  let port: number;
  try {
    const start = () => fixture.start(api.createHitlServer as never, { dbPath, effects: ledger.effects(), ...serverOptions });
    port = await (shared ? sharedSetup(start) : start());
  } catch (error) {
    fail(`Your server did not start: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
  const forward = await reach(learner, port);
  return {
    baseUrl: forward.url,
    learner,
    dbPath,
    ledger,
    timeoutMs: REQUEST_MS * check.slowness,
    advanceClock: async (ms) => fixture.advanceClock(ms),
    close: async (waitMs) => fixture.stop(waitMs),
  };
}

let shared: { learner: LearnerProcess; server: Promise<HitlServer> } | undefined;

/** The server the independent checks share (each uses its own sessions), in the shared learner process. */
export function sharedServer(api: HitlApi, check: CheckContext<HitlApi>): Promise<HitlServer> {
  if (!shared || shared.learner !== check.learner || !check.learner.running) {
    shared = { learner: check.learner, server: startHitl(check, check.learner, api, { shared: true }) };
    // A server that failed to start is retried by the next check, which then reports the same failure.
    shared.server.catch(() => (shared = undefined));
  }
  return shared.server;
}

/** A server in a learner process of its own: a check that kills it harms no other check. */
export async function ownServer(check: CheckContext<HitlApi>, options: Omit<StartOptions, "shared"> = {}): Promise<HitlServer> {
  const { learner, api } = await check.spawn();
  return startHitl(check, learner, api, options);
}

/** SIGKILL, as a crash or a deploy would: only what the server persisted survives. */
export async function kill(server: HitlServer): Promise<void> {
  server.learner.kill("SIGKILL");
  await server.learner.exited;
}

// ---- sessions and requests ---------------------------------------------------

export interface Who {
  user_id: string;
  session_id: string;
}

const TOPICS = ["a spring launch campaign", "the onboarding emails", "a pricing-page refresh", "the community meetup", "a churn-reduction plan", "the Q3 newsletter"];

/** A user and session no other check uses; opaque, so the server cannot tell which check sent it. */
export function newSession(): Who {
  return { user_id: `u-${opaque()}`, session_id: `s-${opaque()}` };
}

/** A seeded query, different on every call. */
export function newQuery(): string {
  const topic = TOPICS[Math.floor(random() * TOPICS.length)] ?? "a plan";
  return `Write an operations plan for ${topic} (#${Math.floor(random() * 10_000)})`;
}

export function send(server: HitlServer, path: string, body: unknown, options: RequestOptions = {}): Promise<Exchange> {
  return post(server.baseUrl, path, body, { timeoutMs: server.timeoutMs, ...options });
}

export function chat(server: HitlServer, who: Who, query: string, enableReview = true, options: RequestOptions = {}): Promise<Exchange> {
  return send(server, CHAT_PATH, { ...who, query, enable_human_review: enableReview }, options);
}

export function resume(server: HitlServer, who: Who, action: "approve" | "reject" | "edit", extra: Record<string, unknown> = {}, options: RequestOptions = {}): Promise<Exchange> {
  return send(server, RESUME_PATH, { ...who, approved: action !== "reject", action, ...extra }, options);
}

/** A request with any method (no body unless given), read as text and, when it parses, JSON. */
export async function request(server: HitlServer, method: string, path: string, body?: string): Promise<{ status: number; text: string; json: unknown }> {
  try {
    const response = await fetch(`${server.baseUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }),
      signal: AbortSignal.timeout(Math.ceil(server.timeoutMs)),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, text, json: parsed };
  } catch (error) {
    return { status: 0, text: `(the request failed: ${error instanceof Error ? `${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ""}` : String(error)})`, json: undefined };
  }
}

// ---- reading answers -----------------------------------------------------------

const publishArgs = z.object({ title: z.string(), body: z.string() });
const reviewEventSchema = z.object({
  session_id: z.string(),
  review_id: z.string().min(1),
  pending_action: z.object({ name: z.literal("publish"), args: publishArgs }),
});
const finalEventSchema = z.object({
  session_id: z.string(),
  status: z.enum(["published", "rejected"]),
  result: z.unknown(),
});
const stageEventSchema = z.object({ node: z.string(), stage: z.string() });

export type ReviewEvent = z.infer<typeof reviewEventSchema>;
export type FinalEvent = z.infer<typeof finalEventSchema>;

/** Asserts the answer is a finished 200 event stream; `what` names the request in the message. */
export function expectStream(exchange: Exchange, what: string): void {
  if (exchange.status !== 200 || !exchange.contentType.startsWith("text/event-stream")) {
    fail(`${what}: expected a 200 text/event-stream answer; got ${describeExchange(exchange)}.`);
  }
  if (!exchange.ended) fail(`${what}: the event stream never ended; end the response after the last event. Saw ${describeExchange(exchange)}.`);
}

export function stagesOf(exchange: Exchange): string[] {
  return exchange.events.filter((event) => event.event === "stage").map((event) => stageEventSchema.safeParse(event.data).data?.stage ?? "(unreadable)");
}

/** The contract's stage values, in this order (other stage events may come in between). */
export function expectStages(exchange: Exchange, expected: string[], what: string): void {
  const stages = stagesOf(exchange);
  let at = 0;
  for (const stage of stages) if (stage === expected[at]) at += 1;
  if (at < expected.length) {
    fail(`${what}: the stream must send the stage events ${expected.map((stage) => json(stage)).join(", ")} in that order; the stages were [${stages.map((stage) => json(stage)).join(", ")}].`);
  }
}

/** Asserts that a 400 names `field` in its message (what a person reads) and, where asked, in error.field. */
export function expectFieldNamed(exchange: Exchange, field: string, what: string, { inField = false } = {}): void {
  const error = (exchange.json as { error?: { message?: unknown; field?: unknown } } | undefined)?.error;
  if (typeof error?.message !== "string" || !error.message.includes(field)) {
    fail(`${what}: the 400's error.message must name the field "${field}", so the caller knows what to fix; got ${describeExchange(exchange)}.`);
  }
  if (inField && error.field !== field) fail(`${what}: the 400 answer's error.field must be "${field}", so a client can point at it; it was ${json(error.field)}.`);
}

/** The `human_review_required` event of a stream that must stop for review. */
export function expectReview(exchange: Exchange, what: string): ReviewEvent {
  expectStream(exchange, what);
  const events = exchange.events.filter((event) => event.event === "human_review_required");
  if (events.length !== 1) {
    fail(`${what}: expected exactly one human_review_required event; got ${describeExchange(exchange)}.`);
  }
  const parsed = reviewEventSchema.safeParse(events[0]?.data);
  if (!parsed.success) {
    fail(
      `${what}: the human_review_required event must carry review_id and pending_action { name: "publish", args: { title, body } }; ` +
        `got ${events[0]?.raw} (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}).`,
    );
  }
  return parsed.data;
}

/** The `final_result` event of a stream that must finish the turn. */
export function expectFinal(exchange: Exchange, what: string): FinalEvent {
  expectStream(exchange, what);
  const events = exchange.events.filter((event) => event.event === "final_result");
  if (events.length !== 1) fail(`${what}: expected exactly one final_result event; got ${describeExchange(exchange)}.`);
  const parsed = finalEventSchema.safeParse(events[0]?.data);
  if (!parsed.success) {
    fail(`${what}: the final_result event must carry session_id, status ("published" or "rejected") and result; got ${events[0]?.raw}.`);
  }
  return parsed.data;
}

export const errorBodySchema = z.object({ error: z.object({ code: z.string().min(1), message: z.string().min(1) }) });

/** Asserts a JSON error answer `{ error: { code, message } }` with one of `statuses`, and no stack trace in it. */
export function expectRefusal(exchange: Exchange, statuses: number[], what: string): void {
  if (!statuses.includes(exchange.status)) {
    fail(`${what}: expected status ${statuses.join(" or ")}; got ${describeExchange(exchange)}.`);
  }
  expectNoStack(exchange, what);
  if (!exchange.contentType.startsWith("application/json") || !errorBodySchema.safeParse(exchange.json).success) {
    fail(
      `${what}: a refusal is a JSON body (content-type application/json) { error: { code, message } } with a stable code and a sentence for the caller; ` +
        `got content-type ${json(exchange.contentType)}, ${describeExchange(exchange)}.`,
    );
  }
}

export function expectNoStack(exchange: Exchange, what: string): void {
  const text = exchange.text + exchange.events.map((event) => event.raw).join("\n");
  if (/\n\s+at .+:\d+/.test(text) || /\bat [\w.<>]+ \((?:file:|node:|\/)/.test(text)) {
    fail(`${what}: the answer contains a stack trace; answer with a short message and log the details on the server. Got ${describeExchange(exchange)}.`);
  }
}

// ---- the ledger --------------------------------------------------------------

export function effectCalls<E extends EffectName>(server: HitlServer, who: Who, effect: E): Extract<LedgerEntry, { effect: E }>[] {
  return server.ledger.entries(who.session_id).filter((entry): entry is Extract<LedgerEntry, { effect: E }> => entry.effect === effect);
}

/** The draft writeDraft returned for this session (the only one, or the latest). */
export function lastDraft(server: HitlServer, who: Who): { title: string; body: string } {
  const drafts = effectCalls(server, who, "writeDraft");
  const last = drafts.at(-1);
  if (!last) {
    fail(`No writeDraft call was recorded for session ${who.session_id}; call effects.writeDraft with { userId, sessionId } of the request as its context.`);
  }
  return last.draft;
}

export const json = (value: unknown) => JSON.stringify(value);
