/** Hidden checks of the serde unit (interviewer grading only). */
import { isDeepStrictEqual } from "node:util";
import { defineGrader } from "#harness/check.ts";
import { forgeBody, show, thrown, type SerdeApi } from "./fixture.ts";

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

/** Depth of a chain of single-element arrays, counted without recursion. */
function arrayChainDepth(value: unknown): number {
  let depth = 0;
  for (let node = value; Array.isArray(node); node = node[0]) depth++;
  return depth;
}

grader.excellence(
  "deep nesting is handled or refused with SerdeError, never a stack overflow",
  { hint: "Bound the depth on encode and on decode (or walk iteratively), and refuse past the bound with SerdeError instead of letting a RangeError escape.", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  (api) => {
    let moderate: unknown = "leaf";
    for (let i = 0; i < 200; i++) moderate = i % 3 === 0 ? new Map([[i, moderate]]) : i % 3 === 1 ? [moderate] : { next: moderate };
    if (!isDeepStrictEqual(api.loadsTyped(api.dumpsTyped(moderate)), moderate)) throw new Error("A value nested 200 levels deep (maps, arrays, objects) did not round-trip.");
    let deep: unknown = 0;
    for (let i = 0; i < 50_000; i++) deep = [deep];
    const dumped = thrown(() => {
      const back = api.loadsTyped(api.dumpsTyped(deep));
      if (arrayChainDepth(back) !== 50_000) throw new Error("it came back with a different depth");
    });
    if (dumped !== undefined && !(dumped instanceof api.SerdeError)) throw new Error(`A value nested 50,000 arrays deep gave ${show(dumped)}; refuse it with SerdeError (or round-trip it).`);
    const forged = forgeBody(api.CURRENT_VERSION, undefined, Buffer.from("[".repeat(100_000) + "]".repeat(100_000), "utf8"));
    const loaded = thrown(() => {
      if (arrayChainDepth(api.loadsTyped(["ck", forged])) !== 100_000) throw new Error("it decoded to a different depth");
    });
    if (loaded !== undefined && !(loaded instanceof api.SerdeError)) throw new Error(`A stored body nested 100,000 arrays deep gave ${show(loaded)} on load; refuse it with SerdeError (or decode it).`);
  },
);
