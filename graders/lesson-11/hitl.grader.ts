/**
 * Grader of lesson-11 / hitl: human in the loop over a streaming API.
 *
 * The submission's server runs in a child process on an ephemeral port and is
 * driven over real HTTP (fetch + an SSE parser). Its effects are injected and
 * append to a ledger file, so every check counts side effects from outside.
 * Core: the review stop, approve, reject, request validation, message
 * history, errors inside the graph. Excellence: double and concurrent
 * approvals, edit, a restart between interrupt and resume, expiry, and
 * pre-interrupt work that does not run twice.
 */
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeExchange, post } from "#harness/http.ts";
import { ADVANCE_CLOCK, FAIL_DRAFT_MARKER } from "./hitl/fixture.ts";
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
  expectStream,
  fail,
  json,
  lastDraft,
  newQuery,
  newSession,
  resume,
  sharedServer,
  stagesOf,
  startHitlProcess,
  type HitlApi,
} from "./hitl/driver.ts";
import { isDeepStrictEqual } from "node:util";

const grader = defineGrader<HitlApi>({ lesson: "lesson-11", unit: "hitl", exports: ["createHitlServer"] });

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
  async () => {
    const server = await sharedServer();
    const who = newSession("review-stop");
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
  },
);

grader.core(
  "approve resumes the checkpointed run: it publishes exactly the reviewed arguments, once, and ends with final_result",
  {
    hint: "Answer the pending interrupt with graph.stream(new Command({ resume: ... }), { threadId }) on the session's thread; never start a new run (that drafts again and publishes something nobody reviewed).",
    section: "answering-a-review",
    weight: 2,
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("approve");
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    const answer = await resume(server, who, "approve");
    const final = expectFinal(answer, "POST /graph/resume with action approve");
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
  async () => {
    const server = await sharedServer();
    const who = newSession("reject");
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const final = expectFinal(await resume(server, who, "reject"), "POST /graph/resume with action reject");
    if (final.status !== "rejected") fail(`After reject, final_result.status must be "rejected"; got ${json(final.status)}.`);
    if (final.result !== null) fail(`After reject nothing was published, so final_result.result must be null; got ${json(final.result)}.`);
    const published = effectCalls(server, who, "publish");
    if (published.length > 0) fail(`publish ran ${published.length} time(s) although the reviewer rejected the action.`);
  },
);

grader.core(
  "request bodies are validated: a missing or mistyped field is a 400 naming it, malformed JSON a 400, an oversize body a 413",
  {
    hint: "Parse bodies with a zod schema and answer 400 with the path of the first issue in the message; catch JSON.parse errors (400); stop reading past a size limit (413). Never let these reach a 500.",
    section: "validating-requests",
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("validation");
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
      const answer = await post(server.baseUrl, path, body);
      const what = `POST ${path} with ${json(body)}`;
      expectRefusal(answer, [400], what);
      if (!answer.text.includes(field)) fail(`${what}: the 400 answer must name the field "${field}"; got ${describeExchange(answer)}.`);
    }
    for (const path of [CHAT_PATH, RESUME_PATH]) {
      const malformed = await post(server.baseUrl, path, `{"user_id": "${who.user_id}", "session_id": `);
      expectRefusal(malformed, [400], `POST ${path} with a truncated JSON body`);
    }
    const oversize = await post(server.baseUrl, CHAT_PATH, { ...who, query: "x".repeat(256 * 1024) });
    expectRefusal(oversize, [413], `POST ${CHAT_PATH} with a 256 KiB body`);
    if (effectCalls(server, who, "writeDraft").length > 0) fail("A request refused by validation still ran the graph (writeDraft was called); validate before running anything.");
  },
);

grader.core(
  "a resume for an unknown session is a 404, and a resume with nothing pending is a 409, never a 500",
  {
    hint: "Read the session's latest checkpoint first: no checkpoint -> 404; a checkpoint with no pending review (and no earlier answer to replay) -> 409, with a sentence saying why.",
    section: "answering-a-review",
  },
  async () => {
    const server = await sharedServer();
    const unknown = newSession("unknown");
    expectRefusal(await resume(server, unknown, "approve"), [404], "POST /graph/resume for a session that never started");
    const finished = newSession("nothing-pending");
    expectFinal(await chat(server, finished, newQuery(), false), "A turn with enable_human_review: false");
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
  async () => {
    const server = await sharedServer();
    const who = newSession("history");
    const [first, second, elsewhere] = [newQuery(), newQuery(), newQuery()];
    expectFinal(await chat(server, who, first, false), "The first turn");
    expectFinal(await chat(server, who, second, false), "The second turn of the same session");
    const other = newSession("history-other");
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
    if (!isDeepStrictEqual(userMessages(otherTurn?.messages), [elsewhere])) {
      fail(`A new session must start with only its own message [${json(elsewhere)}]; writeDraft saw ${json(userMessages(otherTurn?.messages))}.`);
    }
  },
);

grader.core(
  "an exception inside the graph ends the stream with an error event, and the session still works afterwards",
  {
    hint: "Wrap the stream loop in try/catch/finally: on an error send `event: error` with a short message (no stack), and always end the response. The failed turn must not leave the session unusable.",
    section: "errors-inside-the-graph",
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("graph-error");
    const answer = await chat(server, who, `${newQuery()} ${FAIL_DRAFT_MARKER}`);
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

// ---- excellence -------------------------------------------------------------------

grader.excellence(
  "approving twice (a retried request) runs the side effect once and returns the same result",
  {
    hint: "When a resume finds the review already answered the same way, answer with the recorded final_result from the checkpoint instead of running anything (or 409 only for a different answer).",
    section: "double-approvals-and-concurrent-resumes",
    weight: 2,
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("double-approve");
    expectReview(await chat(server, who, newQuery()), "The first turn");
    const first = expectFinal(await resume(server, who, "approve"), "The first approve");
    const again = await resume(server, who, "approve");
    const second = expectFinal(again, "The same approve sent again");
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1) fail(`Two approves of one review ran publish ${published.length} times; it must run once.`);
    if (!isDeepStrictEqual(second.result, first.result)) {
      fail(`The repeated approve must return the same result as the first, ${json(first.result)}; it returned ${json(second.result)}.`);
    }
  },
);

grader.excellence(
  "two concurrent resumes of one review: exactly one runs the side effect, the other gets the same result or a 409",
  {
    hint: "Serialize requests per session (a per-thread lock) so the second resume reads the checkpoint after the first one finished; then it replays the result or is refused.",
    section: "double-approvals-and-concurrent-resumes",
    weight: 2,
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("concurrent");
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
  async () => {
    const server = await sharedServer();
    const who = newSession("edit");
    const review = expectReview(await chat(server, who, newQuery()), "The first turn");
    const edited = { title: review.pending_action.args.title, body: `${review.pending_action.args.body} (edited: ${newQuery()})` };
    const final = expectFinal(await resume(server, who, "edit", { edited_args: edited }), "POST /graph/resume with action edit");
    if (final.status !== "published") fail(`After edit, final_result.status must be "published"; got ${json(final.status)}.`);
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, edited)) {
      fail(`After edit, publish must run once with the edited arguments ${json(edited)}; it ran with ${json(published.map((call) => call.args))}.`);
    }
  },
);

grader.excellence(
  "a pending review survives a server restart: a new process on the same SQLite file resumes it",
  {
    hint: "Keep nothing about a pending review in process memory: read it from the SQLite checkpointer on resume, so any process opened on the same file can answer it.",
    section: "where-the-pending-review-lives",
    weight: 2,
    // Starts two server processes.
    timeout: 20_000,
  },
  async () => {
    const before = await startHitlProcess();
    const who = newSession("restart");
    const review = expectReview(await chat(before, who, newQuery()), "The first turn");
    await before.process.kill();
    const after = await startHitlProcess(before.dir);
    const final = expectFinal(await resume(after, who, "approve"), "An approve sent to a new server process on the same SQLite file");
    if (final.status !== "published") fail(`After the restart, approve must publish; final_result.status was ${json(final.status)}.`);
    const published = effectCalls(after, who, "publish");
    if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, review.pending_action.args)) {
      fail(`After the restart, publish must run once with the reviewed arguments ${json(review.pending_action.args)}; it ran with ${json(published.map((call) => call.args))}.`);
    }
    if (effectCalls(after, who, "writeDraft").length !== 1) fail("After the restart, the resume drafted again; continue the checkpointed run instead.");
  },
);

grader.excellence(
  "a pending review expires after the configured time and is then refused with 410, without running the side effect",
  {
    hint: "Store the review's deadline (now() + reviewTtlMs) in the checkpoint when you ask; on resume compare it with now() and answer 410 Gone once it has passed.",
    section: "expiring-a-pending-review",
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("expiry");
    expectReview(await chat(server, who, newQuery()), "The first turn");
    await server.process.control(ADVANCE_CLOCK, { ms: REVIEW_TTL_MS + 1000 });
    expectRefusal(await resume(server, who, "approve"), [410], `An approve sent ${REVIEW_TTL_MS / 1000 + 1} s after the review was asked (reviewTtlMs ${REVIEW_TTL_MS})`);
    if (effectCalls(server, who, "publish").length > 0) fail("An expired review was approved anyway: publish ran.");
  },
);

grader.excellence(
  "the interrupted node's pre-interrupt work runs once per review, not again on resume",
  {
    hint: "The node that calls interrupt() re-runs from its start on resume: move the policy check (and anything expensive or effectful) into an earlier node, or keep its result in the state and reuse it.",
    section: "interrupt-semantics",
  },
  async () => {
    const server = await sharedServer();
    const who = newSession("pre-interrupt");
    expectReview(await chat(server, who, newQuery()), "The first turn");
    expectFinal(await resume(server, who, "approve"), "The approve");
    const checks = effectCalls(server, who, "checkPolicy");
    if (checks.length !== 1) {
      fail(`checkPolicy ran ${checks.length} times for one review; the work before interrupt() ran again when the node re-ran on resume.`);
    }
  },
);

if (hiddenChecksEnabled()) (await import("./hitl/hidden.ts")).registerHiddenChecks(grader);
