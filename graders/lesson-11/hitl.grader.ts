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
import { describeExchange, type SseEvent } from "#harness/http.ts";
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
  FIXTURE,
  FIXTURE_PATH,
  kill,
  ownServer,
  send,
  type HitlApi,
} from "./hitl/driver.ts";
import { isDeepStrictEqual } from "node:util";

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
      if (!answer.text.includes(field)) fail(`${what}: the 400 answer must name the field "${field}"; got ${describeExchange(answer)}.`);
    }
    for (const path of [CHAT_PATH, RESUME_PATH]) {
      const malformed = await send(server, path, `{"user_id": "${who.user_id}", "session_id": `);
      expectRefusal(malformed, [400], `POST ${path} with a truncated JSON body`);
    }
    const oversize = await send(server, CHAT_PATH, { ...who, query: "x".repeat(256 * 1024) });
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
  async (api, check) => {
    const server = await sharedServer(api, check);
    const unknown = newSession();
    expectRefusal(await resume(server, unknown, "approve"), [404], "POST /graph/resume for a session that never started");
    const finished = newSession();
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
    const final = expectFinal(await resume(server, who, "edit", { edited_args: edited }), "POST /graph/resume with action edit");
    if (final.status !== "published") fail(`After edit, final_result.status must be "published"; got ${json(final.status)}.`);
    const published = effectCalls(server, who, "publish");
    if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, edited)) {
      fail(`After edit, publish must run once with the edited arguments ${json(edited)}; it ran with ${json(published.map((call) => call.args))}.`);
    }
  },
);

grader.excellence(
  "a pending review expires after the configured time and is then refused with 410, without running the side effect",
  {
    hint: "Store the review's deadline (now() + reviewTtlMs) in the checkpoint when you ask; on resume compare it with now() and answer 410 Gone once it has passed.",
    section: "expiring-a-pending-review",
  },
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    await server.advanceClock(REVIEW_TTL_MS + 1000);
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
  async (api, check) => {
    const server = await sharedServer(api, check);
    const who = newSession();
    expectReview(await chat(server, who, newQuery()), "The first turn");
    expectFinal(await resume(server, who, "approve"), "The approve");
    const checks = effectCalls(server, who, "checkPolicy");
    if (checks.length !== 1) {
      fail(`checkPolicy ran ${checks.length} times for one review; the work before interrupt() ran again when the node re-ran on resume.`);
    }
  },
);

if (hiddenChecksEnabled()) (await import("./hitl/hidden.ts")).registerHiddenChecks(grader);
