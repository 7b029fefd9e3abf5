/**
 * lesson-11 / hitl: human in the loop over a streaming API.
 *
 * Calibration answer (adequate). Planted mistake: the lesson's "memoize outside the node,
 * keyed by the task" done in process memory. The review node runs the policy check above
 * interrupt() through a Map keyed by ctx.taskId (stable across the node's re-run), so within
 * one process checkPolicy runs once per review; but a restart between the question and the
 * answer empties the Map, and the resumed node runs checkPolicy a second time. Everything
 * else (the pending review, the decision, the replayed result) lives in the SQLite checkpoint.
 *
 * Design: node:http with a hand-written SSE writer. `check` writes the review request (id,
 * pending action, deadline) into the state, `review` runs the (memoized) policy check on the
 * exact arguments it is about to show and then calls interrupt(), and the decision is read back
 * from the state on every request. One request at a time per thread through a keyed
 * promise-chain mutex, so a double click reads the checkpoint the first click wrote.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { z } from "zod";
import { Command, END, SqliteSaver, START, StateGraph, interrupt, type CompiledStateGraph, type StateSnapshot, type StreamEvent } from "#runtime";

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface Draft {
  title: string;
  body: string;
}

export interface PublishArgs {
  title: string;
  body: string;
}

export interface PolicyReport {
  risk: "low" | "medium" | "high";
  notes: string[];
}

export type PublishReceipt = Record<string, unknown>;

export interface EffectContext {
  userId: string;
  sessionId: string;
}

export interface PublishContext extends EffectContext {
  /** Stable for one run of the publish step, so a downstream system can deduplicate on it. */
  idempotencyKey: string;
}

export interface HitlEffects {
  /** The model call: once per turn, with the whole conversation including the new user message. */
  writeDraft(input: { query: string; messages: ChatMessage[] }, context: EffectContext): Promise<Draft>;
  /** Expensive pre-review work: once per review, never again on resume. */
  checkPolicy(draft: Draft, context: EffectContext): Promise<PolicyReport>;
  /** The side effect the human approves: at most once per approved review. */
  publish(args: PublishArgs, context: PublishContext): Promise<PublishReceipt>;
}

export interface HitlServerOptions {
  /** SQLite file of the checkpointer. */
  dbPath: string;
  effects: HitlEffects;
  /** How long a review may wait for a decision (default 15 minutes). */
  reviewTtlMs?: number;
  /** Clock in epoch milliseconds (default Date.now). Use it for every expiry decision. */
  now?: () => number;
  /** Largest accepted request body in bytes (default 64 KiB). */
  maxBodyBytes?: number;
  /** Where unexpected errors are reported (default console.error). */
  logError?: (message: string, error: unknown) => void;
}

export interface HitlServer {
  /** Not listening yet: the caller runs server.listen(port, host). */
  server: Server;
  /** Stops the server and closes the database. */
  close(): Promise<void>;
}

export type ReviewDecisionName = "approve" | "reject" | "edit";

export interface StageEvent {
  session_id: string;
  node: string;
  stage: string;
}

export interface HumanReviewRequiredEvent {
  session_id: string;
  review_id: string;
  pending_action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  expires_at: string;
  allowed_actions: ReviewDecisionName[];
}

export interface FinalResultEvent {
  session_id: string;
  status: "published" | "rejected";
  review_id: string | null;
  result: PublishReceipt | null;
  reply: string;
  replayed?: boolean;
}

export interface ErrorEvent {
  session_id: string;
  code: string;
  message: string;
  retryable: boolean;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export const DEFAULT_REVIEW_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** createHitlServer was called with options it cannot work with. */
export class HitlConfigError extends Error {
  override name = "HitlConfigError";
}

// ---------------------------------------------------------------- graph state

const ALLOWED_ACTIONS: ReviewDecisionName[] = ["approve", "reject", "edit"];

/** The review request, written once by `check`: what the reviewer sees and until when. */
interface ReviewRequest {
  review_id: string;
  pending_action: { name: "publish"; args: PublishArgs };
  policy: PolicyReport;
  expires_at: string;
  allowed_actions: ReviewDecisionName[];
}

/** What the resume endpoint hands to interrupt(); "expire" is internal (a deadline that passed). */
interface ReviewAnswer {
  action: ReviewDecisionName | "expire";
  edited_args?: Partial<PublishArgs>;
}

interface TurnState {
  user_id: string;
  session_id: string;
  /**
   * The conversation. No reducer: each turn's input carries `existing + new user message`, which
   * replaces the stored list (with an appending reducer the same input would double the history).
   */
  messages: ChatMessage[];
  query: string;
  enable_human_review: boolean;
  draft: Draft | null;
  policy: PolicyReport | null;
  review: ReviewRequest | null;
  decision: ReviewAnswer | null;
  action_args: PublishArgs | null;
  result: PublishReceipt | null;
  status: "published" | "rejected" | "expired" | null;
  reply: string | null;
}

/** Fields that belong to one turn: reset by every new message so nothing leaks from the last turn. */
const FRESH_TURN = {
  draft: null,
  policy: null,
  review: null,
  decision: null,
  action_args: null,
  result: null,
  status: null,
  reply: null,
} satisfies Partial<TurnState>;

/** An effect that failed, tagged with the node it failed in (for the `error` event's code). */
class NodeFailure extends Error {
  constructor(
    readonly node: string,
    override readonly cause: unknown,
  ) {
    super(`${node} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

const draftSchema = z.object({ title: z.string(), body: z.string() });
const policySchema = z.object({ risk: z.enum(["low", "medium", "high"]), notes: z.array(z.string()) });

function buildGraph(saver: SqliteSaver, effects: HitlEffects, reviewTtlMs: number, now: () => number): CompiledStateGraph<TurnState> {
  const context = (state: TurnState): EffectContext => ({ userId: state.user_id, sessionId: state.session_id });
  // The policy report per interrupted task: the review node re-runs on resume with the same task id.
  const policies = new Map<string, Promise<PolicyReport>>();
  const policyFor = (taskId: string, state: TurnState): Promise<PolicyReport> => {
    let report = policies.get(taskId);
    if (!report) {
      report = guarded("check", async () => policySchema.parse(await effects.checkPolicy(state.review!.pending_action.args, context(state))));
      policies.set(taskId, report);
      report.catch(() => policies.delete(taskId));
    }
    return report;
  };
  const guarded = async <T>(node: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw new NodeFailure(node, error);
    }
  };

  return new StateGraph<TurnState>({
    user_id: { default: () => "" },
    session_id: { default: () => "" },
    messages: { default: () => [] },
    query: { default: () => "" },
    enable_human_review: { default: () => true },
    draft: { default: () => null },
    policy: { default: () => null },
    review: { default: () => null },
    decision: { default: () => null },
    action_args: { default: () => null },
    result: { default: () => null },
    status: { default: () => null },
    reply: { default: () => null },
  })
    .addNode("draft", async (state) => {
      const draft = await guarded("draft", async () => draftSchema.parse(await effects.writeDraft({ query: state.query, messages: state.messages }, context(state))));
      return { draft: { title: draft.title, body: draft.body } };
    })
    .addNode("check", async (state) => {
      // The deadline is fixed here, once, in a checkpointed node.
      const draft = state.draft!;
      const args: PublishArgs = { title: draft.title, body: draft.body };
      if (!state.enable_human_review) {
        const policy = await guarded("check", async () => policySchema.parse(await effects.checkPolicy(draft, context(state))));
        return { policy, action_args: args };
      }
      const review: ReviewRequest = {
        review_id: randomUUID(),
        pending_action: { name: "publish", args },
        policy: { risk: "low", notes: [] },
        expires_at: new Date(now() + reviewTtlMs).toISOString(),
        allowed_actions: [...ALLOWED_ACTIONS],
      };
      return { review };
    })
    .addNode("review", async (state, ctx) => {
      // The policy report must describe exactly what the reviewer is shown, so it is computed next to the question,
      // once per task: the re-run on resume finds it in the memo.
      const policy = await policyFor(ctx.taskId, state);
      const review: ReviewRequest = { ...state.review!, policy };
      const answer = interrupt<ReviewAnswer>(review);
      switch (answer.action) {
        case "approve":
          return { decision: { action: "approve" }, policy, review, action_args: review.pending_action.args };
        case "edit": {
          const edited = { ...review.pending_action.args, ...answer.edited_args };
          return { decision: { action: "edit", edited_args: answer.edited_args ?? {} }, action_args: edited };
        }
        case "reject": {
          const reply = `The reviewer rejected "${review.pending_action.args.title}"; nothing was published.`;
          return { decision: { action: "reject" }, status: "rejected", reply, messages: [...state.messages, { role: "assistant", content: reply }] };
        }
        case "expire":
          return { decision: { action: "expire" }, status: "expired", reply: `The review expired at ${review.expires_at}; nothing was published.` };
      }
    })
    .addNode("publish", async (state, ctx) => {
      const args = state.action_args!;
      const idempotencyKey = `${ctx.threadId}:${ctx.checkpointId}:publish`;
      const receipt = await guarded("publish", () => effects.publish(args, { ...context(state), idempotencyKey }));
      const reply = `Published "${args.title}".`;
      return { result: receipt ?? {}, status: "published", reply, messages: [...state.messages, { role: "assistant", content: reply }] };
    })
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addConditionalEdges("check", (state) => (state.enable_human_review ? "review" : "publish"))
    .addConditionalEdges("review", (state) => (state.decision?.action === "approve" || state.decision?.action === "edit" ? "publish" : END))
    .addEdge("publish", END)
    .compile({ checkpointer: saver, stateSchemaVersion: 1 });
}

// ---------------------------------------------------------------- HTTP plumbing

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

function sendError(res: ServerResponse, error: HttpError): void {
  const body: ErrorBody = { error: { code: error.code, message: error.message, ...(error.field !== undefined && { field: error.field }) } };
  sendJson(res, error.status, body);
}

/** How much of an oversized body we read (and drop) so the client gets the 413 instead of a reset. */
const DRAIN_LIMIT_BYTES = 1024 * 1024;

/** Reads the body, counting bytes as they arrive; never keeps more than `maxBytes`. */
function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    let size = 0;
    let tooLarge = Number.isFinite(declared) && declared > maxBytes;
    const chunks: Buffer[] = [];
    const tooLargeError = () => new HttpError(413, "body_too_large", `The request body is larger than ${maxBytes} bytes.`);
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
      else if (size > maxBytes + DRAIN_LIMIT_BYTES) {
        req.pause(); // stop reading: answer now, the connection is closed after the answer
        reject(tooLargeError());
      }
    });
    req.on("end", () => (tooLarge ? reject(tooLargeError()) : resolve(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "invalid_json", `The request body is not valid JSON: ${(error as Error).message}.`);
  }
}

function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
  const message =
    issue.code === "unrecognized_keys"
      ? `Field "${field}" is not allowed: ${issue.message}.`
      : field !== undefined
        ? `Field "${field}" is invalid: ${issue.message}.`
        : `The request body is invalid: ${issue.message}.`;
  throw new HttpError(400, "invalid_body", message, field);
}

const id = z.string().min(1).max(200);

const streamBodySchema = z.strictObject({
  user_id: id,
  session_id: id,
  query: z.string().min(1).max(10_000),
  enable_human_review: z.boolean().default(true),
});

const editedArgsSchema = z
  .strictObject({ title: z.string().min(1).max(500).optional(), body: z.string().min(1).max(20_000).optional() })
  .refine((args) => args.title !== undefined || args.body !== undefined, { message: "edited_args must change title or body" });

const resumeBodySchema = z
  .strictObject({
    user_id: id,
    session_id: id,
    action: z.enum(["approve", "reject", "edit"]),
    approved: z.boolean(),
    edited_args: editedArgsSchema.optional(),
    review_id: id.optional(),
  })
  .superRefine((body, ctx) => {
    // The seed's body says the decision twice; refuse a contradiction rather than guess.
    if (body.approved !== (body.action !== "reject")) {
      ctx.addIssue({ code: "custom", path: ["approved"], message: `approved must be ${body.action !== "reject"} when action is "${body.action}"` });
    }
    if (body.action === "edit" && body.edited_args === undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: `edited_args is required when action is "edit"` });
    }
    if (body.action !== "edit" && body.edited_args !== undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: `edited_args is only allowed when action is "edit"` });
    }
  });

type ResumeBody = z.infer<typeof resumeBodySchema>;

/** One thread per (user, session); each part encoded so no separator can be forged. */
function threadIdOf(userId: string, sessionId: string): string {
  return `hitl/${encodeURIComponent(userId)}/${encodeURIComponent(sessionId)}`;
}

/** Runs work for one key at a time, in arrival order (a promise chain per key). */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** A Server-Sent Events response: headers flushed at once, one write per event, always ended. */
class SseStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
  }

  send(event: string, data: unknown): void {
    // A client that went away does not stop the run: its events are dropped, the checkpoint keeps the outcome.
    if (this.res.writableEnded || this.res.destroyed) return;
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }
}

// ---------------------------------------------------------------- the server

const optionsSchema = z.object({
  dbPath: z.string().min(1),
  effects: z.object({
    writeDraft: z.custom<HitlEffects["writeDraft"]>((v) => typeof v === "function", "must be a function"),
    checkPolicy: z.custom<HitlEffects["checkPolicy"]>((v) => typeof v === "function", "must be a function"),
    publish: z.custom<HitlEffects["publish"]>((v) => typeof v === "function", "must be a function"),
  }),
  reviewTtlMs: z.number().int().positive().optional(),
  now: z.custom<() => number>((v) => typeof v === "function", "must be a function").optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  logError: z.custom<(message: string, error: unknown) => void>((v) => typeof v === "function", "must be a function").optional(),
});

export function createHitlServer(options: HitlServerOptions): HitlServer {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new HitlConfigError(`createHitlServer: option "${issue.path.join(".") || "options"}" is invalid: ${issue.message}.`);
  }
  const effects = options.effects;
  const reviewTtlMs = options.reviewTtlMs ?? DEFAULT_REVIEW_TTL_MS;
  const now = options.now ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logError = options.logError ?? ((message: string, error: unknown) => console.error(message, error));

  const saver = new SqliteSaver(options.dbPath);
  const graph = buildGraph(saver, effects, reviewTtlMs, now);
  const locks = new KeyedMutex();

  /** The session's latest checkpoint; a store failure is a 503, never "no history". */
  async function loadSession(threadId: string): Promise<StateSnapshot<TurnState> | undefined> {
    try {
      return await graph.getState({ threadId });
    } catch (error) {
      logError(`hitl: could not read the checkpoint of ${threadId}`, error);
      throw new HttpError(503, "history_unavailable", "The session's history could not be read; nothing was run. Try again shortly.");
    }
  }

  const pendingReview = (snapshot: StateSnapshot<TurnState> | undefined): ReviewRequest | undefined =>
    snapshot?.tasks.some((task) => task.node === "review" && task.interrupts.length > 0) ? (snapshot.values.review ?? undefined) : undefined;

  const isExpired = (review: ReviewRequest) => now() > Date.parse(review.expires_at);

  /** Closes an expired review in the checkpoint (routes to END without publishing), so every later answer sees it. */
  async function recordExpiry(threadId: string): Promise<void> {
    await graph.invoke(new Command({ resume: { action: "expire" } satisfies ReviewAnswer }), { threadId });
  }

  function finalResult(state: TurnState, replayed: boolean): FinalResultEvent {
    return {
      session_id: state.session_id,
      status: state.status === "published" ? "published" : "rejected",
      review_id: state.review?.review_id ?? null,
      result: state.result ?? null,
      reply: state.reply ?? "",
      ...(replayed && { replayed: true }),
    };
  }

  /** Streams one run of the graph; every failure after the 200 becomes an `error` event, and the response always ends. */
  async function streamRun(res: ServerResponse, sessionId: string, events: AsyncIterable<StreamEvent<TurnState>>): Promise<void> {
    const sse = new SseStream(res);
    try {
      for await (const event of events) {
        if (event.type === "update") {
          const stage = stageOf(event.node, event.update);
          if (stage) sse.send("stage", { session_id: sessionId, node: event.node, stage } satisfies StageEvent);
        } else if (event.type === "interrupt") {
          const review = event.value as ReviewRequest;
          sse.send("human_review_required", {
            session_id: sessionId,
            review_id: review.review_id,
            pending_action: review.pending_action,
            policy: review.policy,
            expires_at: review.expires_at,
            allowed_actions: review.allowed_actions,
          } satisfies HumanReviewRequiredEvent);
        } else if (event.state.status === "published" || event.state.status === "rejected") {
          sse.send("final_result", finalResult(event.state, false));
        }
      }
    } catch (error) {
      logError(`hitl: run of session ${sessionId} failed`, error);
      const node = error instanceof NodeFailure ? error.node : "graph";
      const message =
        node === "publish"
          ? "Publishing failed; nothing was recorded as published. Send the same answer again to retry."
          : `The ${node} step failed; the session is unchanged and your message is kept. Try again.`;
      sse.send("error", { session_id: sessionId, code: `${node}_failed`, message, retryable: true } satisfies ErrorEvent);
    } finally {
      sse.end();
    }
  }

  async function handleStream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = validate(streamBodySchema, parseJson(await readBody(req, maxBodyBytes)));
    const threadId = threadIdOf(body.user_id, body.session_id);
    await locks.run(threadId, async () => {
      let snapshot = await loadSession(threadId);
      const pending = pendingReview(snapshot);
      if (pending) {
        if (!isExpired(pending)) {
          throw new HttpError(409, "review_pending", `Review ${pending.review_id} is still waiting for a decision; answer it at POST /graph/resume first.`);
        }
        await recordExpiry(threadId); // an expired review is closed first, then the new turn starts
        snapshot = await loadSession(threadId);
      }
      const existing = snapshot?.values.messages ?? [];
      const input: Partial<TurnState> = {
        ...FRESH_TURN,
        user_id: body.user_id,
        session_id: body.session_id,
        query: body.query,
        enable_human_review: body.enable_human_review,
        messages: [...existing, { role: "user", content: body.query }],
      };
      await streamRun(res, body.session_id, graph.stream(input, { threadId }));
    });
  }

  async function handleResume(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = validate(resumeBodySchema, parseJson(await readBody(req, maxBodyBytes)));
    const threadId = threadIdOf(body.user_id, body.session_id);
    await locks.run(threadId, async () => {
      const snapshot = await loadSession(threadId);
      if (!snapshot) throw new HttpError(404, "session_not_found", `Session "${body.session_id}" does not exist for this user; start a turn at POST /graph_v2/chat/stream.`);

      const pending = pendingReview(snapshot);
      if (pending) {
        if (isExpired(pending)) {
          await recordExpiry(threadId);
          throw new HttpError(410, "review_expired", `Review ${pending.review_id} expired at ${pending.expires_at}; send a new message to start again.`);
        }
        if (body.review_id !== undefined && body.review_id !== pending.review_id) {
          throw new HttpError(409, "review_mismatch", `Review ${body.review_id} is not the pending review of this session (${pending.review_id}).`);
        }
        const answer: ReviewAnswer = { action: body.action, ...(body.edited_args && { edited_args: body.edited_args }) };
        await streamRun(res, body.session_id, graph.stream(new Command({ resume: answer }), { threadId }));
        return;
      }

      const review = snapshot.values.review;
      const decision = snapshot.values.decision;
      if (!review || !decision) throw new HttpError(409, "nothing_pending", `Session "${body.session_id}" has no review waiting for a decision.`);
      if (body.review_id !== undefined && body.review_id !== review.review_id) {
        throw new HttpError(409, "review_mismatch", `Review ${body.review_id} is not the latest review of this session (${review.review_id}).`);
      }
      if (decision.action === "expire") {
        throw new HttpError(410, "review_expired", `Review ${review.review_id} expired at ${review.expires_at}; send a new message to start again.`);
      }
      if (!sameAnswer(decision, body)) {
        throw new HttpError(409, "already_resolved", `Review ${review.review_id} was already answered with "${decision.action}"; a decision cannot be changed.`);
      }
      if (snapshot.next.length > 0) {
        // Answered the same way, but the run did not finish (publish failed): continue it, do not refuse.
        await streamRun(res, body.session_id, graph.stream(null, { threadId }));
        return;
      }
      // A retried or double-clicked answer: the recorded result, nothing runs.
      const sse = new SseStream(res);
      sse.send("final_result", finalResult(snapshot.values, true));
      sse.end();
    });
  }

  const server = createServer((req, res) => {
    res.on("error", () => {}); // a client that disconnected: nothing to tell it
    route(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        sendError(res, error);
        if (error.status === 413) res.once("finish", () => req.destroy());
        return;
      }
      logError(`hitl: unexpected error on ${req.method} ${req.url}`, error);
      if (res.headersSent) res.end();
      else sendError(res, new HttpError(500, "internal_error", "Something went wrong on the server; the error was logged."));
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    const handler = path === "/graph_v2/chat/stream" ? handleStream : path === "/graph/resume" ? handleResume : undefined;
    if (!handler) {
      req.resume();
      throw new HttpError(404, "not_found", `No endpoint at ${path}; use POST /graph_v2/chat/stream or POST /graph/resume.`);
    }
    if (req.method !== "POST") {
      req.resume();
      res.setHeader("allow", "POST");
      throw new HttpError(405, "method_not_allowed", `${path} only accepts POST.`);
    }
    await handler(req, res);
  }

  let closed = false;
  return {
    server,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      saver.close();
    },
  };
}

function stageOf(node: string, update: Partial<TurnState>): string | undefined {
  switch (node) {
    case "draft":
      return "drafted";
    case "check":
      return "checked";
    case "review":
      return ({ approve: "approved", edit: "edited", reject: "rejected", expire: "expired" } as const)[update.decision?.action ?? "expire"];
    case "publish":
      return "published";
    default:
      return undefined;
  }
}

function sameAnswer(recorded: ReviewAnswer, body: ResumeBody): boolean {
  if (recorded.action !== body.action) return false;
  if (body.action !== "edit") return true;
  const canonical = (args: Partial<PublishArgs> | undefined) => JSON.stringify({ title: args?.title, body: args?.body });
  return canonical(recorded.edited_args) === canonical(body.edited_args);
}
