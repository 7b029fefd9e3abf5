/**
 * Grader of lesson-11 / hitl: human in the loop over a streaming API.
 *
 * The submission's server runs in a learner process (started through its
 * createHitlServer) and is driven over real HTTP (fetch + an SSE parser).
 * Its effects are trusted-side functions that record into a ledger here, so
 * every check counts side effects where the submission cannot edit them.
 * Core: the review stop, approve, reject, request validation, message
 * history, errors inside the graph, a restart between interrupt and resume.
 * Excellence: double and concurrent approvals, edit, expiry, and
 * pre-interrupt work that does not run twice.
 */
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeExchange, type Exchange, type SseEvent } from "#harness/http.ts";
import {
  CHAT_PATH,
  REVIEW_TTL_MS,
  RESUME_PATH,
  chat,
  effectCalls,
  expectFinal,
  expectNoStack,
  expectRefusal,
  expectReview,
  errorBodySchema,
  expectFieldNamed,
  expectStages,
  expectStream,
  fail,
  json,
  lastDraft,
  newDbPath,
  newQuery,
  newSession,
  resume,
  sharedServer,
  stagesOf,
  FIXTURE,
  FIXTURE_PATH,
  kill,
  ownServer,
  send,
  request,
  type HitlApi,
  type HitlServer,
  type Who,
} from "./hitl/driver.ts";
import { closeSync, existsSync, openSync, writeSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { Ledger } from "./hitl/fixture.ts";

/** The starter's default maxBodyBytes (64 KiB); the grader's servers run with the default. */
const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** The JSON text of `body` with `field` padded (with "x") so that the text is exactly `bytes` bytes long. */
function bodyOfBytes(body: Record<string, unknown>, field: string, bytes: number): string {
  const base = Buffer.byteLength(JSON.stringify({ ...body, [field]: "" }));
  return JSON.stringify({ ...body, [field]: "x".repeat(bytes - base) });
}

/**
 * The body limit itself: one byte over `limit` is a 413; a body of exactly `limit` (padded in query,
 * with a mistyped enable_human_review) is read whole and refused for a field, not as malformed JSON,
 * so a reader that drops the chunk reaching the limit fails here.
 */
async function expectBodyLimit(server: HitlServer, who: Who, limit: number, which: string): Promise<void> {
  for (const extra of [0, 1]) {
    const bytes = limit + extra;
    const answer = await send(server, CHAT_PATH, bodyOfBytes({ ...who, enable_human_review: "yes", query: "" }, "query", bytes));
    const what = `POST ${CHAT_PATH} with a body of ${bytes} bytes (${which}) and a mistyped enable_human_review`;
    expectRefusal(answer, extra === 0 ? [400] : [413], what);
    const message = (answer.json as { error?: { message?: unknown } } | undefined)?.error?.message;
    if (extra === 0 && (typeof message !== "string" || !/query|enable_human_review/.test(message))) {
      fail(`${what}: a body of exactly the limit must be read whole, and refused for its field (query or enable_human_review), not as malformed JSON; got ${describeExchange(answer)}.`);
    }
  }
}

/** Whether human_review_required's expires_at is `ttlMs` after a moment between `before` and `after` (1 s of slack either side). */
function expiresAfter(answer: Exchange, ttlMs: number, before: number, after: number): { ok: boolean; sent: unknown } {
  const sent = (answer.events.find((event) => event.event === "human_review_required")?.data as { expires_at?: unknown } | undefined)?.expires_at;
  const expires = typeof sent === "string" ? Date.parse(sent) : Number.NaN;
  return { ok: Number.isFinite(expires) && expires >= before + ttlMs - 1000 && expires <= after + ttlMs + 1000, sent };
}

/** Overwrites the start of the SQLite file and its WAL files in place (same inodes, so open connections see it). */
function corrupt(dbPath: string): void {
  for (const file of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) {
    if (!existsSync(file)) continue;
    const fd = openSync(file, "r+");
    writeSync(fd, Buffer.alloc(64 * 1024, 0x5a), 0, 64 * 1024, 0);
    closeSync(fd);
  }
}

const grader = defineGrader<HitlApi>({ lesson: "lesson-11", unit: "hitl", exports: ["createHitlServer"], fixtures: { [FIXTURE]: FIXTURE_PATH } });

// ---- core ------------------------------------------------------------------------

grader.core(
  "the stream emits stage events in order and stops with human_review_required naming the pending action, before the side effect runs",
  {
    hint: "Stream one `stage` event per finished node (drafted, then checked); stop the run with interrupt() in a review node placed before publish, and send `human_review_required` with pending_action { name: \"publish\", args }.",
    section: "streaming-stages-and-the-review-stop",
    weight: 2,
    // Includes starting the shared server process.
    timeout: 20_000,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const answer = await chat(server, who, newQuery());
    const review = expectReview(answer, "POST /graph_v2/chat/stream with enable_human_review: true");
    const stages = stagesOf(answer);
    const drafted = stages.indexOf("drafted");
    if (drafted < 0 || stages.indexOf("checked", drafted) < 0) {
      fail(`The stream must send stage events "drafted" then "checked" before the review; the stages were [${stages.join(", ")}].`);
    }
    if (answer.events.at(-1)?.event !== "human_review_required") {
      fail(`human_review_required must be the last event of the stream (the run is paused); got ${describeExchange(answer)}.`);
    }
    const published = effectCalls(server, who, "publish");
    if (published.length > 0) {
      fail(`publish ran ${published.length} time(s) before anyone answered the review; the side effect must wait for approve.`);
    }
    const draft = lastDraft(server, who);
    if (!isDeepStrictEqual(review.pending_action.args, draft)) {
      fail(`pending_action.args must be what will be published, the draft ${json(draft)}; the event showed ${json(review.pending_action.args)}.`);
    }
    // enable_human_review is optional and defaults to true: a client that leaves it out still gets the review.
    const unset = newSession();
    expectReview(await send(server, CHAT_PATH, { ...unset, query: newQuery() }), "POST /graph_v2/chat/stream without enable_human_review (it defaults to true)");
    if (effectCalls(server, unset, "publish").length > 0) fail("A turn sent without enable_human_review published without a review; the field defaults to true.");
  },
);

grader.core(
  "approve resumes the checkpointed run: it publishes exactly the reviewed arguments, once, and ends with final_result",
  {
    hint: "Answer the pending interrupt with graph.stream(new Command({ resume: ... }), { threadId }) on the session's thread; never start a new run (that drafts again and publishes something nobody reviewed).",
    section: "answering-a-review",
    weight: 2,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    const answer = await resume(server, who, "approve");
    const final = expectFinal(answer, "POST /graph/resume with action approve");
    expectStages(answer, ["approved", "published"], "POST /graph/resume with action approve");
    if (final.status !== "published") fail(`After approve, final_result.status must be "published"; got ${json(final.status)}.`);
    const drafts = effectCalls(server, who, "writeDraft");
    if (drafts.length !== 1) {
      fail(`writeDraft ran ${drafts.length} times for one turn: the resume started the run again instead of continuing the checkpoint after the review.`);
    }
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1) fail(`After one approve, publish must have run exactly once; it ran ${published.length} times.`);
    if (!isDeepStrictEqual(published[0]?.args, review.pending_action.args)) {
      fail(`publish ran with ${json(published[0]?.args)}, but the reviewer approved ${json(review.pending_action.args)}; publish what was reviewed.`);
    }
    if (!isDeepStrictEqual(final.result, published[0]?.receipt)) {
      fail(`final_result.result must be what publish returned, ${json(published[0]?.receipt)}; got ${json(final.result)}.`);
    }
  },
);

grader.core(
  "reject runs no side effect and ends the turn with status rejected",
  {
    hint: "On reject, route from the review node to END (or to a revise node) without calling publish, and send final_result with status \"rejected\" and result null.",
    section: "answering-a-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const rejected = await resume(server, who, "reject");
    const final = expectFinal(rejected, "POST /graph/resume with action reject");
    expectStages(rejected, ["rejected"], "POST /graph/resume with action reject");
    if (final.status !== "rejected") fail(`After reject, final_result.status must be "rejected"; got ${json(final.status)}.`);
    if (final.result !== null) fail(`After reject nothing was published, so final_result.result must be null; got ${json(final.result)}.`);
    const published = effectCalls(server, who, "publish");
    if (published.length > 0) fail(`publish ran ${published.length} time(s) although the reviewer rejected the action.`);
  },
);

grader.core(
  "request bodies are validated: a missing or mistyped field is a 400 naming it, malformed JSON or a body that is not an object a 400, an oversize body a 413",
  {
    hint: "Parse bodies with a zod schema and answer 400 with the path of the first issue in the message; catch JSON.parse errors (400); refuse JSON that is not an object (null, [], a string) with 400; stop reading past a size limit (413). Never let these reach a 500.",
    section: "validating-requests",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const query = newQuery();
    const cases: Array<{ path: string; body: unknown; field: string }> = [
      { path: CHAT_PATH, body: { user_id: who.user_id, query }, field: "session_id" },
      { path: CHAT_PATH, body: { ...who, query: 42 }, field: "query" },
      { path: CHAT_PATH, body: { ...who, query, enable_human_review: "yes" }, field: "enable_human_review" },
      { path: RESUME_PATH, body: { ...who, approved: true }, field: "action" },
      { path: RESUME_PATH, body: { ...who, approved: true, action: "ship-it" }, field: "action" },
      { path: RESUME_PATH, body: { ...who, approved: "true", action: "approve" }, field: "approved" },
    ];
    for (const { path, body, field } of cases) {
      const answer = await send(server, path, body);
      const what = `POST ${path} with ${json(body)}`;
      expectRefusal(answer, [400], what);
      expectFieldNamed(answer, field, what);
    }
    for (const path of [CHAT_PATH, RESUME_PATH]) {
      const malformed = await send(server, path, `{"user_id": "${who.user_id}", "session_id": `);
      expectRefusal(malformed, [400], `POST ${path} with a truncated JSON body`);
      // Valid JSON that is not an object: reading a field of null must not become a 500.
      for (const text of ["null", "[]", '"publish"', "42"]) {
        expectRefusal(await send(server, path, text), [400], `POST ${path} with the JSON body ${text} (not an object)`);
      }
    }
    const oversize = await send(server, CHAT_PATH, { ...who, query: "x".repeat(256 * 1024) });
    expectRefusal(oversize, [413], `POST ${CHAT_PATH} with a 256 KiB body`);
    await expectBodyLimit(server, who, DEFAULT_MAX_BODY_BYTES, `the default maxBodyBytes is ${DEFAULT_MAX_BODY_BYTES}`);
    if (effectCalls(server, who, "writeDraft").length > 0) fail("A request refused by validation still ran the graph (writeDraft was called); validate before running anything.");
  },
);

grader.core(
  "a resume for an unknown session is a 404, and a resume with nothing pending is a 409, never a 500",
  {
    hint: "Read the session's latest checkpoint first: no checkpoint -> 404; a checkpoint with no pending review (and no earlier answer to replay) -> 409, with a sentence saying why.",
    section: "answering-a-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const unknown = newSession();
    expectRefusal(await resume(server, unknown, "approve"), [404], "POST /graph/resume for a session that never started");
    const finished = newSession();
    const unreviewed = await chat(server, finished, newQuery(), false);
    expectFinal(unreviewed, "A turn with enable_human_review: false");
    expectStages(unreviewed, ["drafted", "checked", "published"], "A turn with enable_human_review: false");
    expectRefusal(await resume(server, finished, "approve"), [409], "POST /graph/resume for a session whose turn finished without a review");
    if (effectCalls(server, finished, "publish").length !== 1) {
      fail("The resume with nothing pending ran publish again; refuse it without running the graph.");
    }
  },
);

grader.core(
  "a second turn in a session sees the first turn's messages (existing + new), and a new session starts empty",
  {
    hint: "Before streaming, read the session's messages from the checkpoint (graph.getState) and pass existing + the new user message; key the thread on user_id and session_id so another session does not see them.",
    section: "message-history-across-turns",
    weight: 2,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const [first, second, elsewhere] = [newQuery(), newQuery(), newQuery()];
    expectFinal(await chat(server, who, first, false), "The first turn");
    expectFinal(await chat(server, who, second, false), "The second turn of the same session");
    const other = newSession();
    expectFinal(await chat(server, other, elsewhere, false), "The first turn of another session");

    const userMessages = (messages: unknown) =>
      Array.isArray(messages) ? messages.filter((m) => m?.role === "user").map((m) => m?.content) : `not an array: ${json(messages)}`;
    const secondTurn = effectCalls(server, who, "writeDraft").at(-1);
    if (!isDeepStrictEqual(userMessages(secondTurn?.messages), [first, second])) {
      fail(
        `In the second turn writeDraft must see the user messages [${json(first)}, ${json(second)}] in that order (once each); ` +
          `it saw ${json(userMessages(secondTurn?.messages))}.`,
      );
    }
    const otherTurn = effectCalls(server, other, "writeDraft").at(-1);
    const alone = [{ role: "user", content: elsewhere }];
    if (!isDeepStrictEqual(otherTurn?.messages, alone)) {
      fail(`A new session's first turn must see exactly its own message, ${json(alone)}; writeDraft saw ${json(otherTurn?.messages)}.`);
    }
  },
);

grader.core(
  "an exception inside the graph ends the stream with an error event, and the session still works afterwards",
  {
    hint: "Wrap the stream loop in try/catch/finally: on an error send `event: error` with a short message (no stack), and always end the response. The failed turn must not leave the session unusable.",
    section: "errors-inside-the-graph",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    server.ledger.gate(who.session_id, "writeDraft", async () => {
      throw new Error("the draft model is unavailable");
    });
    const answer = await chat(server, who, newQuery());
    server.ledger.gate(who.session_id, "writeDraft", async () => {});
    expectStream(answer, "A turn whose writeDraft throws");
    expectNoStack(answer, "A turn whose writeDraft throws");
    const error = answer.events.find((event) => event.event === "error");
    if (!error) fail(`When a node throws, the stream must send an error event; got ${describeExchange(answer)}.`);
    const message = (error.data as { message?: unknown } | undefined)?.message;
    if (typeof message !== "string" || message === "") {
      fail(`The error event must carry a JSON object with a message sentence for the client; it carried ${error.raw}.`);
    }
    if (answer.events.some((event) => event.event === "final_result" || event.event === "human_review_required")) {
      fail(`A failed run must not report a result or a review; got ${describeExchange(answer)}.`);
    }
    expectFinal(await chat(server, who, newQuery(), false), "The next turn of the session whose run failed");
  },
);

grader.core(
  "a pending review survives a server restart: a new process on the same SQLite file resumes it",
  {
    hint: "Keep nothing about a pending review in process memory (no MemorySaver, no Map of reviews, no lock or lease that only the dead process could release): read it from the SQLite checkpointer on resume, so any process opened on the same file can answer it.",
    section: "where-the-pending-review-lives",
    weight: 2,
    // Starts two server processes.
    timeout: 20_000,
  },
  async (_api, check) => {
    const before = await ownServer(check);
    const who = newSession();
    const review = expectReview(await chat(before, who, newQuery()), "The first turn");
    // The deploy: the process dies (SIGKILL, no clean shutdown) right after it asked, and a new one opens the same file.
    await kill(before);
    const after = await ownServer(check, { dbPath: before.dbPath, ledger: before.ledger });
    const answer = await resume(after, who, "approve");
    const what = "An approve sent to a new server process on the same SQLite file, right after the old one was killed";
    if (answer.status === 0 || [409, 423, 429, 503].includes(answer.status)) {
      fail(
        `${what}: ${describeExchange(answer)}. The likely cause is a lock or lease left by the killed process (a lock file, a lease row, ` +
          `a "running" flag in the checkpoint): a process that died cannot release it, so a new process must not wait for it or be refused by it ` +
          `(take it over when its holder is gone, or do not hold one past the response).`,
      );
    }
    if (answer.status === 404) {
      fail(`${what}: 404, the session was not found. The pending review lived only in the killed process's memory; keep it in the SQLite checkpoint. Got ${describeExchange(answer)}.`);
    }
    const final = expectFinal(answer, what);
    if (final.status !== "published") fail(`After the restart, approve must publish; final_result.status was ${json(final.status)}.`);
    const published = effectCalls(after, who, "publish");
    if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, review.pending_action.args)) {
      fail(`After the restart, publish must run once with the reviewed arguments ${json(review.pending_action.args)}; it ran with ${json(published.map((call) => call.args))}.`);
    }
    if (effectCalls(after, who, "writeDraft").length !== 1) fail("After the restart, the resume drafted again; continue the checkpointed run instead.");
  },
);

// ---- excellence -------------------------------------------------------------------

grader.excellence(
  "events are sent as they happen: each stage reaches the client while the next node is still running, after a resume too",
  {
    hint: "Write each event to the response as soon as its node finishes (res.write per event, headers flushed first), never collect them and send them at the end: a reviewer waiting on a slow model must see progress.",
    section: "streaming-stages-and-the-review-stop",
    weight: 2,
    // A buffering server is held at each gate for the full wait.
    timeout: 30_000,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    // How long a node is held waiting for the previous stage to reach the client; only a buffering server waits it out.
    const holdMs = 3_000 * check.slowness;
    const seen = new Set<string>();
    const waiters: Array<() => void> = [];
    const onEvent = (event: SseEvent) => {
      const stage = (event.data as { stage?: unknown } | undefined)?.stage;
      if (event.event === "stage" && typeof stage === "string") seen.add(stage);
      for (const wake of waiters.splice(0)) wake();
    };
    const arrived = (stage: string) =>
      new Promise<boolean>((resolve) => {
        const deadline = setTimeout(() => resolve(seen.has(stage)), holdMs);
        const look = () => {
          if (seen.has(stage)) {
            clearTimeout(deadline);
            resolve(true);
          } else waiters.push(look);
        };
        look();
      });
    let draftedLive: boolean | undefined;
    let approvedLive: boolean | undefined;
    // checkPolicy (node "check") starts only after "drafted" was sent; hold it until the client has that event.
    server.ledger.gate(who.session_id, "checkPolicy", async () => void (draftedLive = await arrived("drafted")));
    server.ledger.gate(who.session_id, "publish", async () => void (approvedLive = await arrived("approved")));
    const first = await chat(server, who, newQuery(), true, { onEvent, timeoutMs: server.timeoutMs + holdMs });
    expectReview(first, "The first turn");
    if (draftedLive !== true) {
      fail(
        `While the check node was running (held ${Math.round(holdMs / 1000)} s), the client had not received the stage event "drafted" ` +
          `of the node before it: the server holds events back and sends them later (buffered until the end?). Got ${describeExchange(first)}.`,
      );
    }
    const second = await resume(server, who, "approve", {}, { onEvent, timeoutMs: server.timeoutMs + holdMs });
    expectFinal(second, "The approve");
    const stages = stagesOf(second);
    if (stages.indexOf("approved") < 0 || stages.indexOf("published") < stages.indexOf("approved")) {
      fail(`The resumed run must stream its own stage events, "approved" then "published", before final_result; its stages were [${stages.join(", ")}].`);
    }
    if (approvedLive !== true) {
      fail(`While publish was running after the approve (held ${Math.round(holdMs / 1000)} s), the client had not received the stage event "approved": the resumed run's events are held back and sent later.`);
    }
  },
);

grader.excellence(
  "approving twice (a retried request) runs the side effect once and returns the same result",
  {
    hint: "When a resume finds the review already answered the same way, answer with the recorded final_result from the checkpoint instead of running anything (or 409 only for a different answer).",
    section: "double-approvals-and-concurrent-resumes",
    weight: 2,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const first = expectFinal(await resume(server, who, "approve"), "The first approve");
    const again = await resume(server, who, "approve");
    const second = expectFinal(again, "The same approve sent again");
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1) fail(`Two approves of one review ran publish ${published.length} times; it must run once.`);
    if (!isDeepStrictEqual(second.result, first.result)) {
      fail(`The repeated approve must return the same result as the first, ${json(first.result)}; it returned ${json(second.result)}.`);
    }
    const replayed = (again.events.find((event) => event.event === "final_result")?.data as { replayed?: unknown } | undefined)?.replayed;
    if (replayed !== true) {
      fail(`The repeated approve is answered from the checkpoint, so its final_result must say replayed: true (the first one ran publish); it sent ${json(second)}.`);
    }
    // A retried reject is the same kind of retry: the recorded outcome again, not a 409.
    const rejecter = newSession();
    expectReview(await chat(server, rejecter, newQuery()), "Another session's first turn");
    expectFinal(await resume(server, rejecter, "reject"), "A reject");
    const rejectedAgain = expectFinal(await resume(server, rejecter, "reject"), "The same reject sent again");
    if (rejectedAgain.status !== "rejected") fail(`The repeated reject must return the recorded outcome, status "rejected"; it returned ${json(rejectedAgain)}.`);
  },
);

grader.excellence(
  "two concurrent resumes of one review: exactly one runs the side effect, the other gets the same result or a 409",
  {
    hint: "Serialize requests per session (a per-thread lock) so the second resume reads the checkpoint after the first one finished; then it replays the result or is refused.",
    section: "double-approvals-and-concurrent-resumes",
    weight: 2,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const answers = await Promise.all([resume(server, who, "approve"), resume(server, who, "approve")]);
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1) fail(`Two concurrent approves of one review ran publish ${published.length} times; exactly one may run it.`);
    const finals = answers.filter((answer) => answer.events.some((event) => event.event === "final_result"));
    if (finals.length === 0) fail(`Neither concurrent approve ended with final_result: ${answers.map(describeExchange).join(" / ")}.`);
    for (const answer of answers) {
      if (finals.includes(answer)) {
        const final = expectFinal(answer, "A concurrent approve");
        if (!isDeepStrictEqual(final.result, published[0]?.receipt)) {
          fail(`Both answers must report the one publish, ${json(published[0]?.receipt)}; one reported ${json(final.result)}.`);
        }
      } else {
        expectRefusal(answer, [409], "The concurrent approve that did not win");
      }
    }
  },
);

grader.excellence(
  "edit changes the pending action's arguments before the side effect runs",
  {
    hint: "Pass the edited arguments as the resume value; in the review node merge them over the pending action's arguments and let publish run with the result.",
    section: "answering-a-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    const edited = { title: review.pending_action.args.title, body: `${review.pending_action.args.body} (edited: ${newQuery()})` };
    const editedAnswer = await resume(server, who, "edit", { edited_args: edited });
    const final = expectFinal(editedAnswer, "POST /graph/resume with action edit");
    expectStages(editedAnswer, ["edited", "published"], "POST /graph/resume with action edit");
    if (final.status !== "published") fail(`After edit, final_result.status must be "published"; got ${json(final.status)}.`);
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, edited)) {
      fail(`After edit, publish must run once with the edited arguments ${json(edited)}; it ran with ${json(published.map((call) => call.args))}.`);
    }
    // The same edit again is the same answer (replayed); an edit with other arguments is a different answer (409).
    const again = expectFinal(await resume(server, who, "edit", { edited_args: edited }), "The same edit sent again");
    if (!isDeepStrictEqual(again.result, final.result)) fail(`The repeated edit must return the recorded result ${json(final.result)}; it returned ${json(again.result)}.`);
    const other = { body: `${edited.body} (changed again)` };
    expectRefusal(await resume(server, who, "edit", { edited_args: other }), [409], `An edit with other arguments (${json(other)}) after the review was answered with an edit`);
    if (effectCalls(server, who, "publish").length !== 1) fail(`After an edit, its repetition and a different edit, publish must have run once; it ran ${effectCalls(server, who, "publish").length} times.`);
  },
);

grader.excellence(
  "a pending review expires after the configured time: every later answer is a 410 without the side effect, and a new message starts a new turn",
  {
    hint: "Store the review's deadline (now() + reviewTtlMs) in the checkpoint when you ask; on resume compare it with now() and answer 410 Gone once it has passed (record the expiry, so a second answer is refused the same way); a new message after the deadline is a new turn, not a 409.",
    section: "expiring-a-pending-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    await server.advanceClock(REVIEW_TTL_MS + 1000);
    expectRefusal(await resume(server, who, "approve"), [410], `An approve sent ${REVIEW_TTL_MS / 1000 + 1} s after the review was asked (reviewTtlMs ${REVIEW_TTL_MS})`);
    if (effectCalls(server, who, "publish").length > 0) fail("An expired review was approved anyway: publish ran.");
    expectRefusal(await resume(server, who, "approve"), [410], "A second approve of the expired review");
    if (effectCalls(server, who, "publish").length > 0) fail("An expired review was approved by a second request: publish ran.");
    // An expired review no longer blocks the session: a new message starts a new turn with a new review.
    const again = expectReview(await chat(server, who, newQuery()), "A new message in the session after its review expired");
    expectFinal(await resume(server, who, "approve", { review_id: again.review_id }), "An approve of the new review");
    if (effectCalls(server, who, "publish").length !== 1) fail(`After the expiry, the new review's approve must publish once; publish ran ${effectCalls(server, who, "publish").length} times.`);
    // A review nobody answered: the first thing after its deadline is a new message, which must start a new turn too.
    const silent = newSession();
    expectReview(await chat(server, silent, newQuery()), "Another session's first turn");
    await server.advanceClock(REVIEW_TTL_MS + 1000);
    const fresh = expectReview(await chat(server, silent, newQuery()), "A new message after the session's unanswered review expired (nobody answered it)");
    expectFinal(await resume(server, silent, "approve", { review_id: fresh.review_id }), "An approve of the review the new message asked for");
    if (effectCalls(server, silent, "publish").length !== 1) fail("The approve of the new review must publish once.");
  },
);

grader.excellence(
  "the interrupted node's pre-interrupt work runs once per review, not again on resume, even when a new process answers",
  {
    hint: "The node that calls interrupt() re-runs from its start on resume: move the policy check (and anything expensive or effectful) into an earlier node, or keep its result in the state and reuse it. A memo in process memory (a Map keyed by the task or the draft) is empty after a restart, so the re-run in the new process runs the check again.",
    section: "interrupt-semantics",
    // Starts two server processes.
    timeout: 20_000,
  },
  async (_api, check) => {
    // The question is asked by one process and answered by another on the same SQLite file, as in the restart check:
    // whatever keeps "the policy already ran" only in memory is gone when the review node re-runs.
    const before = await ownServer(check);
    const who = newSession();
    expectReview(await chat(before, who, newQuery()), "The first turn");
    await kill(before);
    const after = await ownServer(check, { dbPath: before.dbPath, ledger: before.ledger });
    expectFinal(await resume(after, who, "approve"), "An approve sent to a new server process on the same SQLite file, after the one that asked was killed");
    const checks = effectCalls(after, who, "checkPolicy");
    if (checks.length === 0) fail("checkPolicy never ran for the review; run the policy check once before asking, and send its report in human_review_required.");
    if (checks.length !== 1) {
      const where = checks.map((call) => (call.instance === 1 ? "the process that asked" : "the process that answered")).join(", ");
      fail(
        `checkPolicy ran ${checks.length} times for one review (${where}): the work before interrupt() ran again when the review node re-ran on resume` +
          `${checks.some((call) => call.instance !== 1) ? "; a memo kept in process memory does not survive the restart between the question and the answer" : ""}.`,
      );
    }
  },
);

grader.excellence(
  "human_review_required tells the reviewer everything: the policy findings, when the review expires, and the allowed actions",
  {
    hint: "Send policy (what checkPolicy returned), expires_at (ISO time of now() + reviewTtlMs when the review was asked) and allowed_actions [\"approve\", \"reject\", \"edit\"] with the pending action.",
    section: "streaming-stages-and-the-review-stop",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    // The server's clock may have been moved by another check: read its offset, the request happens in between.
    const offset = await server.advanceClock(0);
    const before = Date.now() + offset;
    const answer = await chat(server, who, newQuery());
    const after = Date.now() + offset;
    expectReview(answer, "The first turn");
    const data = answer.events.find((event) => event.event === "human_review_required")?.data as Record<string, unknown>;
    const report = effectCalls(server, who, "checkPolicy").at(-1)?.report;
    if (!isDeepStrictEqual(data.policy, report)) fail(`human_review_required.policy must be what checkPolicy returned, ${json(report)}; it was ${json(data.policy)}.`);
    if (!expiresAfter(answer, REVIEW_TTL_MS, before, after).ok) {
      fail(`human_review_required.expires_at must be an ISO time reviewTtlMs (${REVIEW_TTL_MS} ms) after the server's now() when it asked; it was ${json(data.expires_at)}.`);
    }
    const allowed = Array.isArray(data.allowed_actions) ? [...data.allowed_actions].sort() : data.allowed_actions;
    if (!isDeepStrictEqual(allowed, ["approve", "edit", "reject"])) fail(`human_review_required.allowed_actions must list approve, reject and edit; it was ${json(data.allowed_actions)}.`);
  },
);

grader.excellence(
  "bodies are strict: an unknown field, or approved disagreeing with action, is a 400 naming the field, and nothing runs",
  {
    hint: "Use z.strictObject (a typo such as enable_review must not silently turn review off) and a refinement that approved is true exactly for approve and edit; put the offending field in the message.",
    section: "validating-requests",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const cases: Array<{ path: string; body: unknown; field: string }> = [
      { path: CHAT_PATH, body: { ...who, query: newQuery(), enable_review: false }, field: "enable_review" },
      { path: RESUME_PATH, body: { ...who, action: "approve", approved: true, comment: "ok" }, field: "comment" },
      { path: RESUME_PATH, body: { ...who, action: "approve", approved: false }, field: "approved" },
      { path: RESUME_PATH, body: { ...who, action: "reject", approved: true }, field: "approved" },
    ];
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    for (const { path, body, field } of cases) {
      const answer = await send(server, path, body);
      const what = `POST ${path} with ${json(body)}`;
      expectRefusal(answer, [400], what);
      expectFieldNamed(answer, field, what, { inField: true });
    }
    if (effectCalls(server, who, "writeDraft").length !== 1 || effectCalls(server, who, "publish").length > 0) {
      fail("A request refused for its body still ran something (writeDraft or publish); validate before running anything.");
    }
    expectFinal(await resume(server, who, "approve", { review_id: review.review_id }), "An approve after the refused requests");
  },
);

grader.excellence(
  "conflicts are 409 and leave the review waiting: an answer naming another review_id, and a new message while a review waits",
  {
    hint: "When review_id is sent and is not the pending review's id, answer 409 without resuming; refuse a new chat message with 409 while the session's review waits (it has not expired), without running the graph.",
    section: "answering-a-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    expectRefusal(await resume(server, who, "approve", { review_id: `${review.review_id}-other` }), [409], "An approve naming another review_id");
    expectRefusal(await chat(server, who, newQuery()), [409], "A new message in the session while its review waits");
    if (effectCalls(server, who, "writeDraft").length !== 1) fail("The new message sent while a review waited ran the graph (writeDraft ran again); refuse it with 409.");
    if (effectCalls(server, who, "publish").length > 0) fail("An approve naming another review_id published the pending action.");
    expectFinal(await resume(server, who, "approve", { review_id: review.review_id }), "The approve naming the right review_id");
    if (effectCalls(server, who, "publish").length !== 1) fail("After the refused requests, the right approve must publish once.");
  },
);

grader.excellence(
  "a failed turn keeps the user's message, and its error event carries session_id, code, message and retryable",
  {
    hint: "Checkpoint the turn's input (history + the new message) before the nodes run, as the graph's input step does, so the next turn sees it; send error as { session_id, code, message, retryable }.",
    section: "errors-inside-the-graph",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const [failed, next] = [newQuery(), newQuery()];
    server.ledger.gate(who.session_id, "writeDraft", async () => {
      throw new Error("the draft model is unavailable");
    });
    const answer = await chat(server, who, failed);
    server.ledger.gate(who.session_id, "writeDraft", async () => {});
    expectStream(answer, "A turn whose writeDraft throws");
    const error = answer.events.find((event) => event.event === "error")?.data as Record<string, unknown> | undefined;
    if (
      !error ||
      error.session_id !== who.session_id ||
      typeof error.code !== "string" ||
      error.code === "" ||
      typeof error.message !== "string" ||
      typeof error.retryable !== "boolean"
    ) {
      fail(`The error event must carry { session_id: ${json(who.session_id)}, code, message, retryable: boolean }; got ${describeExchange(answer)}.`);
    }
    if (error.retryable !== true) {
      fail(`A node that threw (the model was unavailable) is worth retrying: the turn's input is saved and the same message may succeed, so the error event must say retryable: true; got ${describeExchange(answer)}.`);
    }
    expectFinal(await chat(server, who, next, false), "The next turn of the session");
    const seen = effectCalls(server, who, "writeDraft").at(-1)?.messages;
    const users = Array.isArray(seen) ? seen.filter((m) => m?.role === "user").map((m) => m?.content) : seen;
    if (!isDeepStrictEqual(users, [failed, next])) {
      fail(`The next turn must see the failed turn's message and its own, [${json(failed)}, ${json(next)}]; writeDraft saw ${json(users)}.`);
    }
  },
);

grader.excellence(
  "two messages sent at once in one session are both kept: neither turn's messages are lost",
  {
    hint: "Serialize the requests of a session (one at a time per thread), so the second turn reads the history after the first one saved it; two turns that both read the old history lose one of them.",
    section: "message-history-across-turns",
    timeout: 20_000,
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const [first, second, third] = [newQuery(), newQuery(), newQuery()];
    // Hold the first turn's model call until the second turn's starts: only a server that lets them overlap gets there.
    let calls = 0;
    let wake: (() => void) | undefined;
    const secondStarted = new Promise<void>((resolve) => (wake = resolve));
    server.ledger.gate(who.session_id, "writeDraft", async () => {
      calls += 1;
      if (calls === 1) await Promise.race([secondStarted, new Promise((resolve) => setTimeout(resolve, 1_500 * check.slowness))]);
      else wake?.();
    });
    const answers = await Promise.all([chat(server, who, first, false), chat(server, who, second, false)]);
    for (const answer of answers) expectFinal(answer, "One of two messages sent at once (review off)");
    server.ledger.gate(who.session_id, "writeDraft", async () => {});
    expectFinal(await chat(server, who, third, false), "The turn after them");
    const seen = effectCalls(server, who, "writeDraft").at(-1)?.messages;
    const list = Array.isArray(seen) ? (seen as Array<{ role?: unknown; content?: unknown }>) : [];
    const users = list.filter((m) => m?.role === "user").map((m) => m?.content);
    const replies = list.filter((m) => m?.role === "assistant").length;
    const earlier = users.slice(0, 2).sort();
    if (!isDeepStrictEqual(earlier, [first, second].sort()) || users[2] !== third || replies !== 2) {
      fail(
        `After two messages sent at once and a third, the third turn must see both earlier user messages, both replies and its own message; ` +
          `writeDraft saw ${json(seen)}.`,
      );
    }
  },
);

grader.excellence(
  "a publish that failed is retried with the same idempotency key, and different reviews get different keys",
  {
    hint: "Derive the key from what is stable across retries of the step (thread + the checkpoint the publish step starts from), or generate it once and persist it before the call; never a timestamp or a fresh random value per attempt.",
    section: "double-approvals-and-concurrent-resumes",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const keys: unknown[] = [];
    server.ledger.gate(who.session_id, "publish", async (_args, context) => {
      keys.push((context as { idempotencyKey?: unknown } | undefined)?.idempotencyKey);
      if (keys.length === 1) throw new Error("the publishing service timed out");
    });
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const failed = await resume(server, who, "approve");
    expectStream(failed, "An approve whose publish fails");
    if (!failed.events.some((event) => event.event === "error")) fail(`A publish that throws must end the stream with an error event; got ${describeExchange(failed)}.`);
    expectFinal(await resume(server, who, "approve"), "The same approve sent again after the failed publish");
    if (keys.length !== 2 || typeof keys[0] !== "string" || keys[0] === "" || keys[0] !== keys[1]) {
      fail(`The retried publish must carry the same non-empty idempotencyKey as the failed attempt; the keys were ${json(keys)}.`);
    }
    const other = newSession();
    expectReview(await chat(server, other, newQuery()), "A turn of another session");
    expectFinal(await resume(server, other, "approve"), "The other session's approve");
    const otherKey = effectCalls(server, other, "publish")[0]?.idempotencyKey;
    if (otherKey === keys[0]) fail(`Two different reviews got the same idempotencyKey ${json(otherKey)}; a downstream system would drop the second publish.`);
  },
);

grader.excellence(
  "final_result names the review it ends and carries the reply the conversation keeps",
  {
    hint: "Send final_result with review_id (the answered review's id, null for a turn without review) and reply: the assistant message the turn added to the session's messages (so the next turn sees the same sentence).",
    section: "answering-a-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    const approved = await resume(server, who, "approve");
    expectFinal(approved, "The approve");
    const next = await chat(server, who, newQuery(), false);
    expectFinal(next, "A second turn without review");
    const rejecting = newSession();
    const rejectedReview = expectReview(await chat(server, rejecting, newQuery()), "The first turn of another session");
    const rejected = await resume(server, rejecting, "reject");
    expectFinal(rejected, "The reject");
    // The event's own fields (expectFinal's reading keeps only session_id, status and result).
    const fields = (exchange: Exchange) => (exchange.events.find((event) => event.event === "final_result")?.data ?? {}) as { review_id?: unknown; reply?: unknown };
    for (const [final, reviewId, what] of [
      [approved, review.review_id, "the approve"],
      [rejected, rejectedReview.review_id, "the reject"],
      [next, null, "the turn without review"],
    ] as const) {
      if (fields(final).review_id !== reviewId) fail(`final_result of ${what} must carry review_id ${json(reviewId)}; it carried ${json(fields(final).review_id)}.`);
      if (typeof fields(final).reply !== "string" || fields(final).reply === "") fail(`final_result of ${what} must carry a reply sentence; it carried ${json(fields(final).reply)}.`);
    }
    // What the session's latest turn saw as the assistant's messages.
    const replies = () => {
      const seen = effectCalls(server, who, "writeDraft").at(-1)?.messages;
      return Array.isArray(seen) ? seen.filter((m) => m?.role === "assistant").map((m) => m?.content) : [];
    };
    const afterApproved = replies();
    if (afterApproved.at(-1) !== fields(approved).reply) {
      fail(`The reply of the approved turn, ${json(fields(approved).reply)}, must be the assistant message the conversation keeps; the next turn saw the assistant messages ${json(afterApproved)}.`);
    }
    // The same for a later turn: its reply is its own newest message, not an earlier turn's.
    expectFinal(await chat(server, who, newQuery(), false), "A third turn without review");
    const laterReplies = replies();
    if (laterReplies.at(-1) !== fields(next).reply) {
      fail(`The reply of the second turn, ${json(fields(next).reply)}, must be the assistant message that turn added; the third turn saw the assistant messages ${json(laterReplies)}.`);
    }
  },
);

grader.excellence(
  "another path is a 404 and another method a 405, as JSON errors",
  {
    hint: "Route on the path first (404 not_found for anything but the two endpoints), then on the method (405 for anything but POST), and answer both with the JSON error body; never let an unknown route reach a handler and fail there.",
    section: "validating-requests",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const cases: Array<{ method: string; path: string; status: number }> = [
      { method: "POST", path: "/graph/resume/now", status: 404 },
      { method: "POST", path: "/graph_v2/chat", status: 404 },
      { method: "GET", path: RESUME_PATH, status: 405 },
      { method: "PUT", path: CHAT_PATH, status: 405 },
    ];
    for (const { method, path, status } of cases) {
      const answer = await request(server, method, path);
      const what = `${method} ${path}`;
      if (answer.status !== status) fail(`${what}: expected status ${status}; got ${answer.status === 0 ? `no answer ${answer.text}` : `status ${answer.status}, body ${answer.text}`}.`);
      if (!errorBodySchema.safeParse(answer.json).success) {
        fail(`${what}: the ${status} must be a JSON body { error: { code, message } } with a stable code and a sentence for the caller; got ${answer.text === "" ? "an empty body" : answer.text}.`);
      }
    }
  },
);

grader.excellence(
  "the store failing is a 503 with a JSON error, never a 500 with a stack, and runs nothing",
  {
    hint: "Catch errors reading the session's checkpoint and answer 503 with a retry message, without running the graph: treating an unreadable history as an empty one would overwrite the conversation.",
    section: "errors-inside-the-graph",
    timeout: 20_000,
  },
  async (_api, check) => {
    const server = await ownServer(check);
    const who = newSession();
    expectFinal(await chat(server, who, newQuery(), false), "The first turn");
    corrupt(server.dbPath);
    const answer = await chat(server, who, newQuery(), false);
    expectRefusal(answer, [503], "A turn sent after the SQLite file was damaged");
    if (!(answer.json as { error?: { message?: unknown } } | undefined)?.error?.message) {
      fail(`The 503 must be a JSON body { error: { code, message } }; got ${describeExchange(answer)}.`);
    }
    if (effectCalls(server, who, "writeDraft").length !== 1) fail("With the store unreadable, the turn still ran the graph (writeDraft ran); refuse it before running anything.");
  },
);

grader.excellence(
  "close() stops the server and closes the database",
  {
    hint: "In close(), stop the HTTP server (server.close, and let it finish) and close the checkpointer (SqliteSaver.close()), then resolve; a deploy's graceful shutdown waits on it.",
    section: "where-the-pending-review-lives",
    // Starts a server process of its own.
    timeout: 20_000,
  },
  async (_api, check) => {
    const server = await ownServer(check);
    const who = newSession();
    expectFinal(await chat(server, who, newQuery(), false), "A turn before close()");
    const waitMs = Math.ceil(3_000 * check.slowness);
    const outcome = await server.close(waitMs);
    if (outcome !== "resolved") fail(`close() did not settle within ${Math.round(waitMs / 1000)} s after one finished turn; it must stop the server and resolve.`);
    const after = await chat(server, newSession(), newQuery(), false);
    if (after.status !== 0) fail(`After close() resolved the server still answered a request: ${describeExchange(after)}.`);
    // SQLite removes the write-ahead log when the last connection to the file closes.
    if (existsSync(`${server.dbPath}-wal`)) fail("After close() resolved the SQLite file was still open (its -wal file remains): close the checkpointer in close().");
    await kill(server);
  },
);

grader.excellence(
  "the options' documented defaults and limits hold: a review waits 15 minutes unless reviewTtlMs says otherwise, and maxBodyBytes is the body limit",
  {
    hint: "Fill every option left out with the default the contract documents (reviewTtlMs 15 minutes, maxBodyBytes 64 KiB, now Date.now), and use the value given otherwise: options ?? default, never options && default.",
    section: "validating-requests",
    // Starts a server process of its own (other options than the shared one).
    timeout: 20_000,
  },
  async (_api, check) => {
    const limit = 2048;
    const server = await ownServer(check, { serverOptions: { maxBodyBytes: limit } });
    const who = newSession();
    const before = Date.now();
    const answer = await chat(server, who, newQuery());
    const after = Date.now();
    expectReview(answer, "The first turn on a server created without reviewTtlMs");
    const expiry = expiresAfter(answer, 15 * 60 * 1000, before, after);
    if (!expiry.ok) {
      fail(`Without reviewTtlMs a review waits the documented default of 15 minutes: expires_at must be 15 minutes after it was asked; it was ${json(expiry.sent)}.`);
    }
    await expectBodyLimit(server, newSession(), limit, `to a server created with maxBodyBytes ${limit}`);
  },
);

grader.excellence(
  "bad server options are refused when the server is created, naming the option",
  {
    hint: "Validate createHitlServer's options (a zod schema) and throw HitlConfigError naming the option: a negative reviewTtlMs or a missing effect is a deploy mistake to catch at start, not at the first review.",
    section: "validating-requests",
  },
  async (api, check) => {
    const fixture = await check.fixture<typeof import("./hitl/learner-fixture.ts")>(FIXTURE);
    const effects = new Ledger().effects();
    const cases: Array<{ options: Record<string, unknown>; names: string }> = [
      { options: { dbPath: newDbPath(check), effects, reviewTtlMs: -5 }, names: "reviewTtlMs" },
      { options: { dbPath: newDbPath(check), effects: { writeDraft: effects.writeDraft, checkPolicy: effects.checkPolicy } }, names: "publish" },
      { options: { dbPath: "", effects }, names: "dbPath" },
      { options: { dbPath: newDbPath(check), effects: { ...effects, publish: "https://example.test/publish" } }, names: "publish" },
    ];
    for (const { options, names } of cases) {
      let thrown: unknown;
      try {
        await fixture.start(api.createHitlServer as never, options);
      } catch (error) {
        thrown = error;
      }
      const message = thrown instanceof Error ? thrown.message : "";
      if (!message.includes(names)) {
        fail(`createHitlServer with a bad ${names} must throw an error naming "${names}"; ${thrown ? `it threw ${json(message)}` : "it started a server"}.`);
      }
      if ((thrown as Error).name !== "HitlConfigError") fail(`createHitlServer with a bad ${names} must throw a HitlConfigError (the class the starter exports); it threw a ${(thrown as Error).name}.`);
    }
  },
);

if (hiddenChecksEnabled()) (await import("./hitl/hidden.ts")).registerHiddenChecks(grader);
