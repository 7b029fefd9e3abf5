import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { z } from "zod";
import { Command, SqliteSaver, type CheckpointSaver, type CompiledStateGraph, type StateSnapshot, type StreamEvent } from "#runtime";
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

class LeaseLostError extends Error {}

/**
 * A lease per thread in SQLite, with a fencing token that grows on every grant. Within one process
 * the chain already serializes; the lease keeps a second process off a thread this one is running.
 * Leases use the wall clock (they are about processes, not about reviews) and are short, so a
 * process killed while holding one blocks the thread for at most LEASE_MS.
 */
class LeaseStore {
  static readonly LEASE_MS = 10_000;
  private readonly owner = randomUUID();
  private readonly held = new Map<string, number>();
  private readonly grant;
  private readonly release_;
  private readonly current;

  constructor(private readonly db: SqliteSaver["db"]) {
    db.exec(`CREATE TABLE IF NOT EXISTS hitl_leases (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, expires_at INTEGER NOT NULL)`);
    const select = db.prepare<[string], { owner: string; token: number; expires_at: number }>(`SELECT owner, token, expires_at FROM hitl_leases WHERE thread_id = ?`);
    const upsert = db.prepare(
      `INSERT INTO hitl_leases (thread_id, owner, token, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at`,
    );
    this.grant = db.transaction((threadId: string, nowMs: number): number | undefined => {
      const row = select.get(threadId);
      if (row && row.owner !== this.owner && row.expires_at > nowMs) return undefined;
      const token = (row?.token ?? 0) + 1;
      upsert.run(threadId, this.owner, token, nowMs + LeaseStore.LEASE_MS);
      return token;
    });
    this.release_ = db.prepare(`UPDATE hitl_leases SET expires_at = 0 WHERE thread_id = ? AND owner = ? AND token = ?`);
    this.current = select;
  }

  async acquire(threadId: string): Promise<void> {
    const deadline = Date.now() + LeaseStore.LEASE_MS + 2_000;
    for (;;) {
      const token = this.grant.immediate(threadId, Date.now());
      if (token !== undefined) {
        this.held.set(threadId, token);
        return;
      }
      if (Date.now() > deadline) throw new HttpError(503, "session_busy", "Another server is working on this session; try again in a few seconds.");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  release(threadId: string): void {
    const token = this.held.get(threadId);
    this.held.delete(threadId);
    if (token !== undefined) this.release_.run(threadId, this.owner, token);
  }

  /** Refuses a write from a holder that lost its lease (the fencing check); renews it otherwise. */
  fence(threadId: string): void {
    const token = this.held.get(threadId);
    if (token === undefined) return; // reads outside a request (none today) are not fenced
    const row = this.current.get(threadId);
    if (!row || row.owner !== this.owner || row.token !== token) throw new LeaseLostError(`Lost the lease on ${threadId}.`);
    this.renew(threadId, token);
  }

  private renew(threadId: string, token: number): void {
    this.db.prepare(`UPDATE hitl_leases SET expires_at = ? WHERE thread_id = ? AND owner = ? AND token = ?`).run(Date.now() + LeaseStore.LEASE_MS, threadId, this.owner, token);
  }
}

/** The checkpointer with the fencing check in front of every write. */
function fencedSaver(saver: SqliteSaver, leases: LeaseStore): CheckpointSaver {
  return {
    getTuple: (config) => saver.getTuple(config),
    list: (config, options) => saver.list(config, options),
    put: async (config, checkpoint, metadata, newVersions) => {
      leases.fence(config.threadId);
      return saver.put(config, checkpoint, metadata, newVersions);
    },
    putWrites: async (config, writes, taskId) => {
      leases.fence(config.threadId);
      return saver.putWrites(config, writes, taskId);
    },
    deleteThread: (threadId) => saver.deleteThread(threadId),
  };
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
  const leases = new LeaseStore(saver.db);
  const graph = buildGraph(fencedSaver(saver, leases), effects, reviewTtlMs, now);
  const chain = new KeyedChain();

  /** One request of a thread at a time: in this process through the chain, across processes through the lease. */
  // `work` may return a last step (writing the stream's terminal event) that runs once the lease is
  // released: a client that has read that event may at once send the next request, to this process
  // or to a new one (after a restart), and must not find the thread still leased.
  const exclusive = (threadId: string, work: () => Promise<(() => void) | void>): Promise<void> =>
    chain.run(threadId, async () => {
      await leases.acquire(threadId);
      let after: (() => void) | void;
      try {
        after = await work();
      } finally {
        leases.release(threadId);
      }
      after?.();
    });

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

  /**
   * Translates the graph's events into SSE as they happen; errors become one `error` event. Stage
   * events are written at once; the terminal event (review, result or error) is returned as the
   * step that writes it and ends the stream, run after the lease is released.
   */
  const pump = async (sse: SseWriter, sessionId: string, events: AsyncIterable<StreamEvent<HitlState>>, failure: string): Promise<() => void> => {
    let terminal: [string, unknown] | undefined;
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
          terminal = ["human_review_required", data];
        } else if (event.state.status === "published" || event.state.status === "rejected") {
          terminal = ["final_result", finalEvent(event.state, sessionId)];
        }
      }
    } catch (error) {
      logError(`hitl: run of session ${sessionId} failed`, error);
      const retryable = !(error instanceof LeaseLostError);
      terminal = ["error", { session_id: sessionId, code: "run_failed", message: failure, retryable }];
    }
    return () => {
      if (terminal) sse.send(...terminal);
      sse.end();
    };
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
      return pump(sse, body.session_id, graph.stream(input, { threadId }), "The turn could not be completed; the session is intact, send the message again.");
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
        return pump(sse, sessionId, graph.stream(new Command({ resume: answer }), { threadId }), "Answering the review failed; send the same answer again to retry.");
      }

      const answer = state.answer;
      if (!answer) throw new HttpError(409, "nothing_pending", `Session "${sessionId}" has no review waiting.`);
      if (answer.decision === "expire") throw new HttpError(410, "review_expired", expiredMessage);
      if (!sameAnswer(answer, body)) {
        throw new HttpError(409, "already_resolved", `Review ${review.review_id} was already answered with "${answer.decision}"; that decision stands.`);
      }
      const sse = new SseWriter(res);
      if (state.status === "published" || state.status === "rejected") {
        sse.send("final_result", { ...finalEvent(state, sessionId), replayed: true });
        sse.end();
        return;
      }
      // The decision is recorded but the run did not finish (publish failed): continue that run.
      return pump(sse, sessionId, graph.stream(null, { threadId }), "Publishing failed; send the same answer again to retry.");
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
