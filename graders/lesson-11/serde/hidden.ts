/** Hidden checks of the serde unit (interviewer grading only). */
import { isDeepStrictEqual } from "node:util";
import { defineGrader } from "#harness/check.ts";
import { show, thrown, type SerdeApi } from "./fixture.ts";

const grader = defineGrader<SerdeApi>({ lesson: "lesson-11", unit: "serde", exports: ["dumpsTyped", "loadsTyped", "SerdeError"] });

grader.excellence(
  "a cyclic value is refused with SerdeError, not a stack overflow",
  { hint: "Track the containers on the current path while encoding and refuse one that contains itself.", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  (api) => {
    const tree = { name: "tree", shared: [1], again: [1] };
    if (!isDeepStrictEqual(api.loadsTyped(api.dumpsTyped(tree)), tree)) throw new Error("A plain tree did not round-trip, so refusing cycles proves nothing yet.");
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = { back: cyclic };
    const error = thrown(() => api.dumpsTyped(cyclic));
    if (!(error instanceof api.SerdeError)) throw new Error(`Dumping a cyclic value gave ${show(error)}; refuse it with SerdeError.`);
  },
);

grader.excellence(
  "sparse arrays keep their holes, and plain objects that use a \"$t\" key are not mistaken for tagged values",
  { hint: "Write holes as their own tagged value, and escape plain objects whose keys collide with your tag field.", section: "typed-tags", visibility: "hidden", category: "edge cases" },
  (api) => {
    // eslint-disable-next-line no-sparse-arrays
    const value = { sparse: [1, , 3], lookalike: { $t: "date", v: "2020-01-01T00:00:00.000Z" }, other: { $t: "undef" } };
    const back = api.loadsTyped(api.dumpsTyped(value));
    if (!isDeepStrictEqual(back, value)) throw new Error(`Sparse arrays or "$t"-keyed objects changed in a round trip: ${show(back)}.`);
  },
);

grader.excellence(
  "functions and symbols are refused at dump time instead of vanishing",
  { hint: "Throw SerdeError for values that are behaviour, not data (functions, symbols).", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  (api) => {
    if (!isDeepStrictEqual(api.loadsTyped(api.dumpsTyped({ id: "x" })), { id: "x" })) throw new Error("A plain object did not round-trip, so refusing functions proves nothing yet.");
    for (const value of [{ callback: () => 1 }, { id: Symbol("x") }]) {
      if (!(thrown(() => api.dumpsTyped(value)) instanceof api.SerdeError)) throw new Error(`Dumping ${show(value)} must throw SerdeError; JSON.stringify would silently drop it.`);
    }
  },
);
