/**
 * How the hitl checks drive a submission: server processes (one shared by
 * the independent checks, fresh ones where a check needs its own), unique
 * seeded sessions, the two endpoints, and readers that turn an answer into
 * the event a check expects or a failure sentence about the learner's server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";
import { z } from "zod";
import { describeExchange, post, startServerProcess, type Exchange, type ServerProcess } from "#harness/http.ts";
import { seededRandom, withSeed } from "#harness/seed.ts";
import type * as Api from "../../../solutions/lesson-11/hitl/index.ts";
import { ENV, readLedger, type LedgerEntry } from "./fixture.ts";

export type HitlApi = typeof Api;

export const CHAT_PATH = "/graph_v2/chat/stream";
export const RESUME_PATH = "/graph/resume";
/** The review deadline the grader configures; the expiry check moves the clock past it. */
export const REVIEW_TTL_MS = 60_000;

const CHILD_ENTRY = fileURLToPath(new URL("./server-process.ts", import.meta.url));

export function fail(message: string): never {
  throw new Error(withSeed(message));
}

// ---- server processes --------------------------------------------------------

export interface HitlProcess {
  baseUrl: string;
  process: ServerProcess;
  /** Directory holding the SQLite file and the ledger; a restart reuses it. */
  dir: string;
  ledger(sessionId: string): LedgerEntry[];
}

const started: HitlProcess[] = [];
const directories: string[] = [];

export function newDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kit-hitl-"));
  directories.push(dir);
  return dir;
}

/** Starts the submission's server in a child process on `dir` (a fresh directory unless given). */
export async function startHitlProcess(dir = newDataDir()): Promise<HitlProcess> {
  const ledgerPath = join(dir, "effects.jsonl");
  let child: ServerProcess;
  try {
    child = await startServerProcess({
      entry: CHILD_ENTRY,
      env: { [ENV.dbPath]: join(dir, "checkpoints.db"), [ENV.ledgerPath]: ledgerPath, [ENV.reviewTtlMs]: String(REVIEW_TTL_MS) },
    });
  } catch (error) {
    fail(`Your server did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
  const handle: HitlProcess = { baseUrl: child.baseUrl, process: child, dir, ledger: (sessionId) => readLedger(ledgerPath, sessionId) };
  started.push(handle);
  return handle;
}

let shared: Promise<HitlProcess> | undefined;

/** The server the independent checks share (each uses its own sessions). */
export function sharedServer(): Promise<HitlProcess> {
  shared ??= startHitlProcess();
  return shared;
}

afterAll(async () => {
  await Promise.all(started.map((handle) => handle.process.kill()));
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

// ---- sessions and requests ---------------------------------------------------

export interface Who {
  user_id: string;
  session_id: string;
}

const random = seededRandom();
const TOPICS = ["a spring launch campaign", "the onboarding emails", "a pricing-page refresh", "the community meetup", "a churn-reduction plan", "the Q3 newsletter"];
let sessionCount = 0;

/** A user and session no other check uses. */
export function newSession(label: string): Who {
  const tag = Math.floor(random() * 1e9).toString(36);
  sessionCount += 1;
  return { user_id: `u-${tag}`, session_id: `${label}-${tag}-${sessionCount}` };
}

/** A seeded query, different on every call. */
export function newQuery(): string {
  const topic = TOPICS[Math.floor(random() * TOPICS.length)] ?? "a plan";
  return `Write an operations plan for ${topic} (#${Math.floor(random() * 10_000)})`;
}

export function chat(server: HitlProcess, who: Who, query: string, enableReview = true): Promise<Exchange> {
  return post(server.baseUrl, CHAT_PATH, { ...who, query, enable_human_review: enableReview });
}

export function resume(server: HitlProcess, who: Who, action: "approve" | "reject" | "edit", extra: Record<string, unknown> = {}): Promise<Exchange> {
  return post(server.baseUrl, RESUME_PATH, { ...who, approved: action !== "reject", action, ...extra });
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

/** Asserts a JSON error answer with one of `statuses`, and no stack trace in it. */
export function expectRefusal(exchange: Exchange, statuses: number[], what: string): void {
  if (!statuses.includes(exchange.status)) {
    fail(`${what}: expected status ${statuses.join(" or ")}; got ${describeExchange(exchange)}.`);
  }
  expectNoStack(exchange, what);
}

export function expectNoStack(exchange: Exchange, what: string): void {
  const text = exchange.text + exchange.events.map((event) => event.raw).join("\n");
  if (/\n\s+at .+:\d+/.test(text) || /\bat [\w.<>]+ \((?:file:|node:|\/)/.test(text)) {
    fail(`${what}: the answer contains a stack trace; answer with a short message and log the details on the server. Got ${describeExchange(exchange)}.`);
  }
}

// ---- the ledger --------------------------------------------------------------

export function effectCalls<E extends LedgerEntry["effect"]>(server: HitlProcess, who: Who, effect: E): Extract<LedgerEntry, { effect: E }>[] {
  return server.ledger(who.session_id).filter((entry): entry is Extract<LedgerEntry, { effect: E }> => entry.effect === effect);
}

/** The draft writeDraft returned for this session (the only one, or the latest). */
export function lastDraft(server: HitlProcess, who: Who): { title: string; body: string } {
  const drafts = effectCalls(server, who, "writeDraft");
  const last = drafts.at(-1);
  if (!last) {
    fail(`No writeDraft call was recorded for session ${who.session_id}; call effects.writeDraft with { userId, sessionId } of the request as its context.`);
  }
  return last.draft;
}

export const json = (value: unknown) => JSON.stringify(value);
