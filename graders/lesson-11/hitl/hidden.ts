/**
 * Hidden checks of lesson-11 / hitl (interviewer grading only): what a
 * candidate who passed the public checks may still get wrong about who may
 * answer a review and whether an answer can be changed after the fact.
 */
import { isDeepStrictEqual } from "node:util";
import type { Grader } from "#harness/check.ts";
import { chat, effectCalls, expectFinal, expectRefusal, expectReview, fail, json, newQuery, newSession, resume, sharedServer, type HitlApi } from "./driver.ts";

export function registerHiddenChecks(grader: Grader<HitlApi>): void {
  grader.excellence(
    "another user cannot answer a review by reusing its session id",
    {
      hint: "Derive the thread id from user_id and session_id together, so a session id alone never reaches another user's pending review.",
      section: "message-history-across-turns",
      visibility: "hidden",
      category: "session isolation",
    },
    async (api, check) => {
      const server = await sharedServer(api, check);
      const owner = newSession();
      const review = expectReview(await chat(server, owner, newQuery()), "The owner's turn");
      const intruder = { user_id: `${owner.user_id}-other`, session_id: owner.session_id };
      expectRefusal(await resume(server, intruder, "approve"), [403, 404], "An approve from another user_id with the same session_id");
      if (effectCalls(server, owner, "publish").length > 0) fail("Another user's approve published the owner's pending action.");
      expectFinal(await resume(server, owner, "approve"), "The owner's approve after the refused one");
      const published = effectCalls(server, owner, "publish");
      if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, review.pending_action.args)) {
        fail(`The owner's approve must still publish the reviewed arguments once; publish ran with ${json(published.map((call) => call.args))}.`);
      }
    },
  );

  grader.excellence(
    "a rejected review cannot be approved afterwards",
    {
      hint: "Once a review is answered, a different answer is a 409 (the checkpoint records the decision); only the same answer may be replayed.",
      section: "double-approvals-and-concurrent-resumes",
      visibility: "hidden",
      category: "decision integrity",
    },
    async (api, check) => {
      const server = await sharedServer(api, check);
      const who = newSession();
      expectReview(await chat(server, who, newQuery()), "The first turn");
      expectFinal(await resume(server, who, "reject"), "The reject");
      expectRefusal(await resume(server, who, "approve"), [409], "An approve sent after the review was rejected");
      if (effectCalls(server, who, "publish").length > 0) fail("An approve after a reject published the action.");
    },
  );

  grader.excellence(
    "an edit with a mistyped, empty or missing edited_args, or edited_args on another action, is a 400 and leaves the review pending",
    {
      hint: "Validate edited_args against the action's argument schema before resuming (title and/or body, at least one of them; required for edit, refused for approve and reject); a refused edit must not consume the review.",
      section: "validating-requests",
      visibility: "hidden",
      category: "input validation",
    },
    async (api, check) => {
      const server = await sharedServer(api, check);
      const who = newSession();
      const review = expectReview(await chat(server, who, newQuery()), "The first turn");
      expectRefusal(await resume(server, who, "edit", { edited_args: { title: 42 } }), [400], "An edit whose title is a number");
      const cases: Array<{ action: "approve" | "reject" | "edit"; extra: Record<string, unknown>; what: string }> = [
        { action: "edit", extra: {}, what: "An edit without edited_args" },
        { action: "edit", extra: { edited_args: {} }, what: "An edit whose edited_args change nothing ({})" },
        { action: "approve", extra: { edited_args: { title: "Another title" } }, what: "An approve that carries edited_args" },
      ];
      for (const { action, extra, what } of cases) {
        const answer = await resume(server, who, action, extra);
        expectRefusal(answer, [400], what);
        const named = (answer.json as { error?: { field?: unknown } } | undefined)?.error?.field;
        if (!answer.text.includes("edited_args") || named !== "edited_args") {
          fail(`${what}: the 400 answer must name the field "edited_args" (in its message and as error.field); got ${json(answer.json ?? answer.text)}.`);
        }
      }
      expectFinal(await resume(server, who, "approve"), "An approve after the refused edit");
      const published = effectCalls(server, who, "publish");
      if (published.length !== 1 || !isDeepStrictEqual(published[0]?.args, review.pending_action.args)) {
        fail(`After a refused edit and an approve, publish must run once with the original arguments; it ran with ${json(published.map((call) => call.args))}.`);
      }
    },
  );
}
