import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { z } from "zod";
import { Command, SqliteSaver, type CompiledStateGraph, type StateSnapshot, type StreamEvent } from "#runtime";
import { TURN_RESET, buildGraph, stageOf, type HitlState, type ReviewAnswer, type ReviewRequest } from "./graph.ts";
import { ReviewLog } from "./review-log.ts";
import { HttpError, SseWriter, parseBody, readJsonBody, sendError, sendJson } from "./http.ts";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REVIEW_TTL_MS,
  type FinalResultEvent,
  type HitlServer,
  type HitlServerOptions,
  type HumanReviewRequiredEvent,
} from "./index.ts";

const ALLOWED_ACTIONS = ["approve", "reject", "edit"] as const;

const optionsSchema = z.object({
  dbPath: z.string().trim().min(1, "dbPath must be a non-empty file path"),
  effects: z.object({
    writeDraft: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "effects.writeDraft must be a function"),
    checkPolicy: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "effects.checkPolicy must be a function"),
    publish: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "effects.publish must be a function"),
  }),
  reviewTtlMs: z.number().finite().positive().optional(),
  now: z.custom<() => number>((v) => typeof v === "function", "now must be a function").optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  logError: z.custom<(m: string, e: unknown) => void>((v) => typeof v === "function", "logError must be a function").optional(),
});

const id = (name: string) => z.string().trim().min(1, `${name} must not be empty`).max(200);

const streamBody = z.strictObject({
  user_id: id("user_id"),
  session_id: id("session_id"),
  query: z.string().trim().min(1, "query must not be empty").max(10_000),
  enable_human_review: z.boolean().default(true),
});

const editedArgs = z
  .strictObject({ title: z.string().trim().min(1, "title must not be empty").max(500).optional(), body: z.string().min(1, "body must not be empty").max(50_000).optional() })
  .refine((v) => v.title !== undefined || v.body !== undefined, "edited_args must change title or body");

const resumeBody = z
  .strictObject({
    user_id: id("user_id"),
    session_id: id("session_id"),
    action: z.enum(ALLOWED_ACTIONS),
    approved: z.boolean(),
    edited_args: editedArgs.optional(),
    review_id: z.string().trim().min(1).max(200).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.approved !== (body.action !== "reject")) {
      ctx.addIssue({ code: "custom", path: ["approved"], message: `approved must be ${body.action !== "reject"} when action is "${body.action}"` });
    }
    if (body.action === "edit" && body.edited_args === undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: 'edited_args is required when action is "edit"' });
    }
    if (body.action !== "edit" && body.edited_args !== undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: 'edited_args is only allowed when action is "edit"' });
    }
  });

type ResumeBody = z.infer<typeof resumeBody>;

/** user_id and session_id, each URL-encoded, so no separator can be forged. */
const threadIdOf = (userId: string, sessionId: string) => `hitl/${encodeURIComponent(userId)}/${encodeURIComponent(sessionId)}`;

/** Runs the work of one key after the previous work of that key, whatever its outcome. */
class KeyedChain {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createServerImpl(options: HitlServerOptions, ConfigError: new (message: string) => Error): HitlServer {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = issue.path.map(String).join(".") || "options";
    throw new ConfigError(`createHitlServer: option "${name}" is invalid: ${issue.message}.`);
  }
  const { effects, dbPath } = options;
  const reviewTtlMs = options.reviewTtlMs ?? DEFAULT_REVIEW_TTL_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = options.now ?? Date.now;
  const logError = options.logError ?? ((message: string, error: unknown) => console.error(message, error));

  const saver = new SqliteSaver(dbPath);
  const graph = buildGraph(saver, effects, reviewTtlMs, now);
  const log = new ReviewLog(saver.db, now);
  const chain = new KeyedChain();

  /** One request of a thread at a time (a second approve waits, then reads what the first one wrote). */
  const exclusive = (threadId: string, work: () => Promise<void>): Promise<void> => chain.run(threadId, work);

  const readState = async (threadId: string): Promise<StateSnapshot<HitlState> | undefined> => {
    try {
      return await graph.getState({ threadId });
    } catch (error) {
      logError(`hitl: could not read the checkpoint of ${threadId}`, error);
      throw new HttpError(503, "history_unavailable", "The session's history could not be read; nothing ran. Try again shortly.");
    }
  };

  const pendingReview = (snapshot: StateSnapshot<HitlState> | undefined): ReviewRequest | undefined =>
    snapshot?.tasks.some((task) => task.node === "review" && task.interrupts.length > 0) ? (snapshot.values.review ?? undefined) : undefined;

  const isExpired = (review: ReviewRequest) => now() >= review.expires_at_ms;

  /** Records the expiry in the checkpoint: the review node routes an "expire" answer to END. */
  const recordExpiry = async (threadId: string, reviewId: string) => {
    log.append(threadId, reviewId, { kind: "expired" });
    const answer: ReviewAnswer = { decision: "expire" };
    await graph.invoke(new Command({ resume: answer }), { threadId });
  };

  const finalEvent = (state: HitlState, sessionId: string): FinalResultEvent => ({
    session_id: sessionId,
    status: state.status === "published" ? "published" : "rejected",
    review_id: state.review?.review_id ?? null,
    result: state.result ?? null,
    reply: state.reply ?? "",
  });

  /** Translates the graph's events into SSE as they happen; errors become one `error` event. */
  const pump = async (sse: SseWriter, threadId: string, sessionId: string, events: AsyncIterable<StreamEvent<HitlState>>, failure: string): Promise<void> => {
    try {
      for await (const event of events) {
        if (event.type === "update") {
          const stage = stageOf(event.node, event.update);
          if (stage) sse.send("stage", { session_id: sessionId, node: event.node, stage });
        } else if (event.type === "interrupt") {
          const review = event.value as ReviewRequest;
          const data: HumanReviewRequiredEvent = {
            session_id: sessionId,
            review_id: review.review_id,
            pending_action: review.pending_action,
            policy: review.policy,
            expires_at: review.expires_at,
            allowed_actions: [...ALLOWED_ACTIONS],
          };
          log.append(threadId, review.review_id, { kind: "requested", request: review });
          sse.send("human_review_required", data);
        } else if (event.state.status === "published" || event.state.status === "rejected") {
          const final = finalEvent(event.state, sessionId);
          if (final.review_id !== null) log.append(threadId, final.review_id, { kind: "completed", final });
          sse.send("final_result", final);
        }
      }
    } catch (error) {
      logError(`hitl: run of session ${sessionId} failed`, error);
      sse.send("error", { session_id: sessionId, code: "run_failed", message: failure, retryable: true });
    } finally {
      sse.end();
    }
  };

  const stream: Handler = async (req, res) => {
    const body = parseBody(streamBody, await readJsonBody(req, maxBodyBytes));
    const threadId = threadIdOf(body.user_id, body.session_id);
    await exclusive(threadId, async () => {
      let snapshot = await readState(threadId);
      const pending = pendingReview(snapshot);
      if (pending && !isExpired(pending)) {
        throw new HttpError(409, "review_pending", `Session "${body.session_id}" has a review waiting (review_id ${pending.review_id}); approve, reject or edit it first.`);
      }
      if (pending) {
        await recordExpiry(threadId, pending.review_id);
        snapshot = await readState(threadId);
      }
      const existing = snapshot?.values.messages ?? [];
      const input: Partial<HitlState> = {
        ...TURN_RESET,
        user_id: body.user_id,
        session_id: body.session_id,
        query: body.query,
        enable_human_review: body.enable_human_review,
        messages: [...existing, { role: "user", content: body.query }],
      };
      const sse = new SseWriter(res);
      await pump(sse, threadId, body.session_id, graph.stream(input, { threadId }), "The turn could not be completed; the session is intact, send the message again.");
    });
  };

  const sameAnswer = (answer: ReviewAnswer, body: ResumeBody) =>
    answer.decision === body.action && (body.action !== "edit" || JSON.stringify(answer.edited_args ?? {}) === JSON.stringify(body.edited_args ?? {}));

  const resume: Handler = async (req, res) => {
    const body = parseBody(resumeBody, await readJsonBody(req, maxBodyBytes));
    const threadId = threadIdOf(body.user_id, body.session_id);
    await exclusive(threadId, async () => {
      const snapshot = await readState(threadId);
      if (!snapshot) throw new HttpError(404, "session_not_found", `There is no session "${body.session_id}" for this user; start one with POST /graph_v2/chat/stream.`);
      const state = snapshot.values;
      const current = state.review;
      if (!current) throw new HttpError(409, "nothing_pending", `Session "${body.session_id}" has no review in its last turn.`);
      if (body.review_id !== undefined && body.review_id !== current.review_id) {
        throw new HttpError(409, "review_mismatch", `review_id ${body.review_id} is not the session's current review (${current.review_id}).`);
      }
      const sessionId = body.session_id;
      const reviewId = current.review_id;
      // The checkpoint is written before the log: a process killed in between left a request the
      // log has not seen yet, so it is appended here first (appends are idempotent per kind).
      if (pendingReview(snapshot)) log.append(threadId, reviewId, { kind: "requested", request: current });
      const view = log.view(threadId, reviewId) ?? { request: current, expired: false };
      const expiredMessage = `The review expired at ${view.request.expires_at}; start a new turn.`;

      if (view.expired || state.answer?.decision === "expire") throw new HttpError(410, "review_expired", expiredMessage);
      if (!view.answer) {
        if (isExpired(view.request)) {
          await recordExpiry(threadId, reviewId);
          throw new HttpError(410, "review_expired", expiredMessage);
        }
        const answer: ReviewAnswer = { decision: body.action, ...(body.edited_args && { edited_args: body.edited_args }) };
        log.append(threadId, reviewId, { kind: "answered", answer });
        const sse = new SseWriter(res);
        await pump(sse, threadId, sessionId, graph.stream(new Command({ resume: answer }), { threadId }), "Answering the review failed; send the same answer again to retry.");
        return;
      }
      if (!sameAnswer(view.answer, body)) {
        throw new HttpError(409, "already_resolved", `Review ${reviewId} was already answered with "${view.answer.decision}"; that decision stands.`);
      }
      const sse = new SseWriter(res);
      let final = view.final;
      if (!final && (state.status === "published" || state.status === "rejected")) {
        final = finalEvent(state, sessionId); // finished, but killed before the log heard of it
        log.append(threadId, reviewId, { kind: "completed", final });
      }
      if (final) {
        sse.send("final_result", { ...final, replayed: true });
        sse.end();
        return;
      }
      // Answered but not finished: the answer never reached the graph, or publish failed.
      const input = pendingReview(snapshot) ? new Command({ resume: view.answer }) : null;
      await pump(sse, threadId, sessionId, graph.stream(input, { threadId }), "Publishing failed; send the same answer again to retry.");
    });
  };

  const routes = new Map<string, Handler>([
    ["POST /graph_v2/chat/stream", stream],
    ["POST /graph/resume", resume],
  ]);
  const paths = new Set([...routes.keys()].map((key) => key.split(" ")[1]));

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const handler = routes.get(`${req.method} ${path}`);
    const work = handler
      ? handler(req, res)
      : Promise.reject(
          paths.has(path)
            ? new HttpError(405, "method_not_allowed", `Use POST for ${path}.`)
            : new HttpError(404, "not_found", `No endpoint ${req.method} ${path}; use POST /graph_v2/chat/stream or POST /graph/resume.`),
        );
    work.catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (error.status === 413) res.setHeader("connection", "close");
        sendError(res, error);
        return;
      }
      logError(`hitl: ${req.method} ${path} failed`, error);
      if (res.headersSent) res.end();
      else sendError(res, new HttpError(500, "internal_error", "The server could not handle this request; nothing was changed by it."));
    });
  });

  return {
    server,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      saver.close();
    },
  };
}
