/**
 * Calibration answer (adequate). Planted mistake: bodies are not strict. Unknown fields are
 * ignored (a client typo such as enable_review silently leaves review on its
 * default) and approved is not checked against action: only action decides.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isDeepStrictEqual } from "node:util";
import { Command, END, SqliteSaver, START, StateGraph, interrupt } from "#runtime";

interface Msg {
  role: "user" | "assistant";
  content: string;
}
interface Args {
  title: string;
  body: string;
}
interface Effects {
  writeDraft(input: { query: string; messages: Msg[] }, context: { userId: string; sessionId: string }): Promise<Args>;
  checkPolicy(draft: Args, context: { userId: string; sessionId: string }): Promise<{ risk: string; notes: string[] }>;
  publish(args: Args, context: { userId: string; sessionId: string; idempotencyKey: string }): Promise<Record<string, unknown>>;
}
export interface HitlServerOptions {
  dbPath: string;
  effects: Effects;
  reviewTtlMs?: number;
  now?: () => number;
  maxBodyBytes?: number;
  logError?: (message: string, error: unknown) => void;
}

interface Review {
  id: string;
  args: Args;
  policy: { risk: string; notes: string[] };
  expiresAt: number;
}
type Answer = { kind: "approve" } | { kind: "reject" } | { kind: "edit"; args: Partial<Args> } | { kind: "expire" };
interface State {
  user: string;
  session: string;
  query: string;
  messages: Msg[];
  ask: boolean;
  stage: string;
  draft: Args | null;
  review: Review | null;
  answer: Answer["kind"] | null;
  args: Args | null;
  receipt: Record<string, unknown> | null;
  outcome: "running" | "waiting" | "published" | "rejected" | "expired";
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export class HitlConfigError extends Error {
  override name = "HitlConfigError";
}

// ---- validation by hand ------------------------------------------------------

type Spec = Record<string, { type: "string" | "boolean" | "object"; required?: boolean; oneOf?: string[] }>;

function checkBody(raw: unknown, spec: Spec): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Refusal(400, "invalid_body", "The body must be a JSON object.");
  const body = raw as Record<string, unknown>;
  for (const [key, rule] of Object.entries(spec)) {
    const value = body[key];
    if (value === undefined) {
      if (rule.required) throw new Refusal(400, "invalid_body", `Field "${key}" is required.`, key);
      continue;
    }
    const ok = rule.type === "object" ? typeof value === "object" && value !== null && !Array.isArray(value) : typeof value === rule.type;
    if (!ok) throw new Refusal(400, "invalid_body", `Field "${key}" must be a ${rule.type}.`, key);
    if (rule.type === "string" && (value as string).length === 0) throw new Refusal(400, "invalid_body", `Field "${key}" must not be empty.`, key);
    if (rule.oneOf && !rule.oneOf.includes(value as string)) throw new Refusal(400, "invalid_body", `Field "${key}" must be one of ${rule.oneOf.join(", ")}.`, key);
  }
  return body;
}

const CHAT_SPEC: Spec = { user_id: { type: "string", required: true }, session_id: { type: "string", required: true }, query: { type: "string", required: true }, enable_human_review: { type: "boolean" } };
const RESUME_SPEC: Spec = {
  user_id: { type: "string", required: true },
  session_id: { type: "string", required: true },
  action: { type: "string", required: true, oneOf: ["approve", "reject", "edit"] },
  approved: { type: "boolean", required: true },
  edited_args: { type: "object" },
  review_id: { type: "string" },
};

function checkResume(raw: unknown) {
  const body = checkBody(raw, RESUME_SPEC) as { user_id: string; session_id: string; action: "approve" | "reject" | "edit"; approved: boolean; edited_args?: Record<string, unknown>; review_id?: string };
  if (body.action === "edit") {
    const edit = body.edited_args;
    if (!edit || Object.keys(edit).length === 0) throw new Refusal(400, "invalid_body", 'Field "edited_args" is required for edit.', "edited_args");
    for (const [key, value] of Object.entries(edit)) {
      if (key !== "title" && key !== "body") throw new Refusal(400, "invalid_body", `Unknown field "edited_args.${key}".`, `edited_args.${key}`);
      if (typeof value !== "string" || value === "") throw new Refusal(400, "invalid_body", `Field "edited_args.${key}" must be a non-empty string.`, `edited_args.${key}`);
    }
  } else if (body.edited_args !== undefined) throw new Refusal(400, "invalid_body", 'Field "edited_args" is only for edit.', "edited_args");
  return body;
}

function readBody(request: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0;
    let over = false;
    const parts: Buffer[] = [];
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      else parts.push(chunk);
    });
    request.on("error", reject);
    request.on("end", () => {
      if (over) return reject(new Refusal(413, "too_large", `The body is over ${limit} bytes.`));
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString("utf8")));
      } catch {
        reject(new Refusal(400, "invalid_json", "The body is not valid JSON."));
      }
    });
  });
}

// ---- SSE by hand ----------------------------------------------------------------

function openEvents(response: ServerResponse) {
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  return {
    send(event: string, data: unknown) {
      if (!response.writableEnded) response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    end() {
      if (!response.writableEnded) response.end();
    },
  };
}

function refuse(response: ServerResponse, refusal: Refusal) {
  const text = JSON.stringify({ error: { code: refusal.code, message: refusal.message, ...(refusal.field ? { field: refusal.field } : {}) } });
  response.writeHead(refusal.status, { "content-type": "application/json" });
  response.end(text);
}

// ---- the server -------------------------------------------------------------------

export function createHitlServer(options: HitlServerOptions): { server: Server; close(): Promise<void> } {
  if (typeof options?.dbPath !== "string" || options.dbPath === "") throw new HitlConfigError("dbPath must be a file path");
  for (const name of ["writeDraft", "checkPolicy", "publish"] as const) {
    if (typeof options.effects?.[name] !== "function") throw new HitlConfigError(`effects.${name} must be a function`);
  }
  const ttl = options.reviewTtlMs ?? 15 * 60_000;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new HitlConfigError("reviewTtlMs must be a positive integer");
  const now = options.now ?? Date.now;
  const limit = options.maxBodyBytes ?? 64 * 1024;
  const log = options.logError ?? ((message: string, error: unknown) => console.error(message, error));
  const { effects } = options;
  const saver = new SqliteSaver(options.dbPath);
  const who = (s: State) => ({ userId: s.user, sessionId: s.session });
  const said = (s: State, content: string): Msg[] => [...s.messages, { role: "assistant", content }];

  const keep = { default: () => null };
  const graph = new StateGraph<State>({
    user: {},
    session: {},
    query: {},
    messages: { default: () => [] },
    ask: { default: () => true },
    stage: { default: () => "" },
    draft: keep,
    review: keep,
    answer: keep,
    args: keep,
    receipt: keep,
    outcome: { default: () => "running" },
  })
    .addNode("draft", async (s) => ({ draft: await effects.writeDraft({ query: s.query, messages: s.messages }, who(s)), stage: "drafted" }))
    .addNode("check", async (s) => {
      const policy = await effects.checkPolicy(s.draft!, who(s));
      if (!s.ask) return { args: s.draft, stage: "checked" };
      return { review: { id: randomUUID(), args: s.draft!, policy, expiresAt: now() + ttl }, outcome: "waiting", stage: "checked" };
    })
    .addNode("review", (s) => {
      const answer = interrupt<Answer>(s.review);
      const review = s.review!;
      if (answer.kind === "approve") return { answer: "approve", args: review.args, stage: "approved" };
      if (answer.kind === "edit") return { answer: "edit", args: { ...review.args, ...answer.args }, stage: "edited" };
      if (answer.kind === "reject") return { answer: "reject", outcome: "rejected", stage: "rejected", messages: said(s, "Rejected; nothing was published.") };
      return { answer: "expire", outcome: "expired", stage: "expired", messages: said(s, "The review expired.") };
    })
    .addNode("publish", async (s, ctx) => {
      const receipt = await effects.publish(s.args!, { ...who(s), idempotencyKey: `${ctx.threadId}:${ctx.checkpointId}` });
      return { receipt, outcome: "published", stage: "published", messages: said(s, `Published "${s.args!.title}".`) };
    })
    .addEdge(START, "draft")
    .addEdge("draft", "check")
    .addConditionalEdges("check", (s) => (s.ask ? "review" : "publish"))
    .addConditionalEdges("review", (s) => (s.answer === "approve" || s.answer === "edit" ? "publish" : END))
    .addEdge("publish", END)
    .compile({ checkpointer: saver });

  // One request at a time per thread: each waits for the one before it.
  const queues = new Map<string, Promise<unknown>>();
  function serialized<T>(thread: string, work: () => Promise<T>): Promise<T> {
    const before = queues.get(thread) ?? Promise.resolve();
    const mine = before.then(work, work);
    const settled = mine.catch(() => undefined);
    queues.set(thread, settled);
    void settled.then(() => queues.get(thread) === settled && queues.delete(thread));
    return mine;
  }

  async function snapshot(thread: string) {
    try {
      const state = await graph.getState({ threadId: thread });
      return state?.config.checkpointId ? state : undefined;
    } catch (error) {
      log("state unreadable", error);
      throw new Refusal(503, "storage_unavailable", "The conversation store could not be read; nothing ran. Retry later.");
    }
  }
  const waiting = (s: { values: State; next: string[] }) => s.next.includes("review") && s.values.review !== null && s.values.answer === null;
  const final = (s: State, replayed = false) => ({
    session_id: s.session,
    status: s.outcome === "published" ? "published" : "rejected",
    review_id: s.review?.id ?? null,
    result: s.receipt,
    reply: s.messages.filter((m) => m.role === "assistant").at(-1)?.content ?? "",
    ...(replayed ? { replayed: true } : {}),
  });

  async function run(input: Partial<State> | Command | null, thread: string, session: string, response: ServerResponse) {
    const events = openEvents(response);
    let last: State | undefined;
    try {
      for await (const event of graph.stream(input, { threadId: thread })) {
        if (event.type === "update" && event.update.stage) events.send("stage", { session_id: session, node: event.node, stage: event.update.stage });
        if (event.type === "interrupt") {
          const r = event.value as Review;
          events.send("human_review_required", {
            session_id: session,
            review_id: r.id,
            pending_action: { name: "publish", args: r.args },
            policy: r.policy,
            expires_at: new Date(r.expiresAt).toISOString(),
            allowed_actions: ["approve", "reject", "edit"],
          });
        }
        if (event.type === "final") last = event.state;
      }
      if (last && (last.outcome === "published" || last.outcome === "rejected")) events.send("final_result", final(last));
    } catch (error) {
      log("run failed", error);
      events.send("error", { session_id: session, code: "run_failed", message: "The run failed; your message is kept. Send it again to retry.", retryable: true });
    } finally {
      events.end();
    }
  }

  async function chat(raw: unknown, response: ServerResponse) {
    const body = checkBody(raw, CHAT_SPEC) as { user_id: string; session_id: string; query: string; enable_human_review?: boolean };
    const thread = JSON.stringify([body.user_id, body.session_id]);
    await serialized(thread, async () => {
      let current = await snapshot(thread);
      if (current && waiting(current)) {
        if (now() < current.values.review!.expiresAt) throw new Refusal(409, "review_pending", "A review is waiting in this session; answer it first.");
        await graph.invoke(new Command({ resume: { kind: "expire" } }), { threadId: thread });
        current = await snapshot(thread);
      }
      const history = current?.values.messages ?? [];
      const input: State = {
        user: body.user_id,
        session: body.session_id,
        query: body.query,
        messages: [...history, { role: "user", content: body.query }],
        ask: body.enable_human_review ?? true,
        stage: "received",
        draft: null,
        review: null,
        answer: null,
        args: null,
        receipt: null,
        outcome: "running",
      };
      await run(input, thread, body.session_id, response);
    });
  }

  async function resume(raw: unknown, response: ServerResponse) {
    const body = checkResume(raw);
    const thread = JSON.stringify([body.user_id, body.session_id]);
    await serialized(thread, async () => {
      const current = await snapshot(thread);
      if (!current) throw new Refusal(404, "no_session", "No such session.");
      const s = current.values;
      if (s.review && body.review_id !== undefined && body.review_id !== s.review.id) throw new Refusal(409, "wrong_review", `review_id is not the session's review (${s.review.id}).`);
      if (waiting(current)) {
        if (now() >= s.review!.expiresAt) {
          await graph.invoke(new Command({ resume: { kind: "expire" } }), { threadId: thread });
          throw new Refusal(410, "expired", "The review expired; nothing was published.");
        }
        const answer: Answer = body.action === "edit" ? { kind: "edit", args: body.edited_args as Partial<Args> } : { kind: body.action };
        return run(new Command({ resume: answer }), thread, body.session_id, response);
      }
      if (!s.review || s.answer === null) throw new Refusal(409, "nothing_pending", "Nothing is waiting for a decision in this session.");
      if (s.answer === "expire") throw new Refusal(410, "expired", "The review expired; nothing was published.");
      const same = s.answer === body.action && (body.action !== "edit" || isDeepStrictEqual({ ...s.review.args, ...body.edited_args }, s.args));
      if (!same) throw new Refusal(409, "already_answered", `The review was already answered with ${s.answer}.`);
      if (current.next.length > 0) return run(null, thread, body.session_id, response);
      const events = openEvents(response);
      events.send("final_result", final(s, true));
      events.end();
    });
  }

  const server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    const route = path === "/graph_v2/chat/stream" ? chat : path === "/graph/resume" ? resume : undefined;
    void (async () => {
      try {
        if (!route) throw new Refusal(404, "not_found", "No such endpoint.");
        if (request.method !== "POST") throw new Refusal(405, "method", "POST only.");
        await route(await readBody(request, limit), response);
      } catch (error) {
        if (response.headersSent) return void response.end();
        if (error instanceof Refusal) return refuse(response, error);
        log("unexpected", error);
        refuse(response, new Refusal(500, "internal", "Something went wrong; it was logged."));
      }
    })();
  });

  return {
    server,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      saver.close();
    },
  };
}
