import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { z } from "zod";
import { Command, SqliteSaver, type CompiledStateGraph, type StateSnapshot, type StreamEvent } from "#runtime";
import { TURN_RESET, buildGraph, stageOf, type HitlState, type ReviewAnswer, type ReviewRequest } from "./graph.ts";
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

  const exclusive = (_threadId: string, work: () => Promise<void>): Promise<void> => work();
  /** The last final_result of each session, answered again to a repeated decision. */
  const finals = new Map<string, { decision: string; event: FinalResultEvent }>();

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
  const recordExpiry = async (threadId: string) => {
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
  const pump = async (sse: SseWriter, sessionId: string, events: AsyncIterable<StreamEvent<HitlState>>, failure: string): Promise<void> => {
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
          sse.send("human_review_required", data);
        } else if (event.state.status === "published" || event.state.status === "rejected") {
          sse.send("final_result", finalEvent(event.state, sessionId));
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
        await recordExpiry(threadId);
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
      await pump(sse, body.session_id, graph.stream(input, { threadId }), "The turn could not be completed; the session is intact, send the message again.");
    });
  };

  const resume: Handler = async (req, res) => {
    const body = parseBody(resumeBody, await readJsonBody(req, maxBodyBytes));
    const threadId = threadIdOf(body.user_id, body.session_id);
    await exclusive(threadId, async () => {
      const snapshot = await readState(threadId);
      if (!snapshot) throw new HttpError(404, "session_not_found", `There is no session "${body.session_id}" for this user; start one with POST /graph_v2/chat/stream.`);
      const state = snapshot.values;
      const review = state.review;
      if (!review) throw new HttpError(409, "nothing_pending", `Session "${body.session_id}" has no review in its last turn.`);
      if (body.review_id !== undefined && body.review_id !== review.review_id) {
        throw new HttpError(409, "review_mismatch", `review_id ${body.review_id} is not the session's current review (${review.review_id}).`);
      }
      const expiredMessage = `The review expired at ${review.expires_at}; start a new turn.`;
      const pending = pendingReview(snapshot);
      const sessionId = body.session_id;

      if (pending) {
        if (isExpired(pending)) {
          await recordExpiry(threadId);
          throw new HttpError(410, "review_expired", expiredMessage);
        }
        const answer: ReviewAnswer = { decision: body.action, ...(body.edited_args && { edited_args: body.edited_args }) };
        const sse = new SseWriter(res);
        await pump(sse, sessionId, graph.stream(new Command({ resume: answer }), { threadId }), "Answering the review failed; send the same answer again to retry.");
        const after = (await graph.getState({ threadId }))?.values;
        if (after && (after.status === "published" || after.status === "rejected")) finals.set(threadId, { decision: body.action, event: finalEvent(after, sessionId) });
        return;
      }

      const answer = state.answer;
      if (answer?.decision === "expire") throw new HttpError(410, "review_expired", expiredMessage);
      let recorded = finals.get(threadId);
      for (let waited = 0; !recorded && answer && waited < 100; waited++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        recorded = finals.get(threadId);
      }
      if (!recorded) throw new HttpError(409, "nothing_pending", `Session "${sessionId}" has no review waiting.`);
      if (recorded.decision !== body.action) {
        throw new HttpError(409, "already_resolved", `Review ${review.review_id} was already answered with "${recorded.decision}"; that decision stands.`);
      }
      const sse = new SseWriter(res);
      sse.send("final_result", { ...recorded.event, replayed: true });
      sse.end();
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
