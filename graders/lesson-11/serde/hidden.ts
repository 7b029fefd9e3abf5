/** Hidden checks of the serde unit (interviewer grading only). */
import { isDeepStrictEqual } from "node:util";
import { defineGrader } from "#harness/check.ts";
import { notSerdeError, show, thrown, v1Body, type SerdeApi } from "./fixture.ts";

type LearnerFixture = typeof import("./learner-fixture.ts");

const grader = defineGrader<SerdeApi>({
  lesson: "lesson-11",
  unit: "serde",
  exports: ["dumpsTyped", "loadsTyped", "SerdeError"],
  fixtures: { serde: new URL("./learner-fixture.ts", import.meta.url).pathname },
});

grader.excellence(
  "a cyclic value is refused with SerdeError CYCLE, not a stack overflow",
  { hint: "Track the containers on the current path while encoding (add on the way down, remove on the way back up) and refuse one that contains itself with CYCLE.", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  async (api, check) => {
    const tree = { name: "tree", shared: [1], again: [1] };
    if (!isDeepStrictEqual(await api.loadsTyped(await api.dumpsTyped(tree)), tree)) throw new Error("A plain tree did not round-trip, so refusing cycles proves nothing yet.");
    // (A value holding the same object twice, which is no cycle, is a core check: see the JSON round trip.)
    void check;
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = { back: cyclic };
    const problem = notSerdeError(api, await thrown(() => api.dumpsTyped(cyclic)), ["CYCLE"]);
    if (problem) throw new Error(`Dumping a cyclic value must be refused with SerdeError CYCLE, but ${problem}.`);
  },
);

grader.excellence(
  "sparse arrays keep their holes, and plain objects that use a \"$t\" key are not mistaken for tagged values",
  { hint: "Write holes as their own tagged value, and escape plain objects whose keys collide with your tag field.", section: "typed-tags", visibility: "hidden", category: "edge cases" },
  async (api) => {
    // eslint-disable-next-line no-sparse-arrays
    const value = { sparse: [1, , 3], trailing: [1, , 3, , ], empty: new Array(3), lookalike: { $t: "date", v: "2020-01-01T00:00:00.000Z" }, other: { $t: "undef" } };
    const back = await api.loadsTyped(await api.dumpsTyped(value));
    if (!isDeepStrictEqual(back, value)) throw new Error(`Sparse arrays or "$t"-keyed objects changed in a round trip: ${show(back)}.`);
  },
);

grader.excellence(
  "functions and symbols are refused at dump time instead of vanishing",
  { hint: "Throw SerdeError for values that are behaviour, not data (functions, symbols).", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  async (api) => {
    if (!isDeepStrictEqual(await api.loadsTyped(await api.dumpsTyped({ id: "x" })), { id: "x" })) throw new Error("A plain object did not round-trip, so refusing functions proves nothing yet.");
    for (const value of [{ callback: () => 1 }, { id: Symbol("x") }]) {
      // A trusted-side function crosses as a callback, which is still a function over there.
      const problem = notSerdeError(api, await thrown(() => api.dumpsTyped(value)));
      if (problem) throw new Error(`Dumping ${show(value)} must throw SerdeError (JSON.stringify would silently drop it), but ${problem}.`);
    }
  },
);

grader.excellence(
  "deep nesting is handled or refused with SerdeError, never a stack overflow",
  { hint: "Bound the depth on encode and on decode (or walk iteratively), and refuse past the bound with SerdeError instead of letting a RangeError escape.", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  async (api, check) => {
    const f = await check.fixture<LearnerFixture>("serde");
    // 200 levels cross the channel; the deeper values below are built and measured in the learner process.
    const moderate = await f.mixedNesting(200);
    if (!isDeepStrictEqual(await api.loadsTyped(await api.dumpsTyped(moderate)), moderate)) throw new Error("A value nested 200 levels deep (maps, arrays, objects) did not round-trip.");
    const deep = await f.roundTripArrayChain(api.dumpsTyped, api.loadsTyped, 50_000);
    if (deep.error !== undefined && !(deep.error instanceof api.SerdeError)) throw new Error(`A value nested 50,000 arrays deep gave ${show(deep.error)} on ${deep.stage}; refuse it with SerdeError (or round-trip it).`);
    const deepProblem = deep.error === undefined ? undefined : notSerdeError(api, deep.error, ["TOO_DEEP"]);
    if (deepProblem) throw new Error(`A value nested 50,000 arrays deep was refused on ${deep.stage}, but ${deepProblem}.`);
    if (deep.error === undefined && deep.depth !== 50_000) throw new Error(`A value nested 50,000 arrays deep came back ${deep.depth} deep.`);
    // A stored version-1 body (JSON) nested 100,000 arrays deep: what a hostile or buggy writer can leave in the store.
    const forged = v1Body(undefined, Buffer.from("[".repeat(100_000) + "]".repeat(100_000), "utf8"));
    const loaded = await f.loadArrayChain(api.loadsTyped, ["ck", forged]);
    if (loaded.error !== undefined && !(loaded.error instanceof api.SerdeError)) throw new Error(`A stored body nested 100,000 arrays deep gave ${show(loaded.error)} on load; refuse it with SerdeError (or decode it).`);
    const loadProblem = loaded.error === undefined ? undefined : notSerdeError(api, loaded.error, ["TOO_DEEP", "MALFORMED"]);
    if (loadProblem) throw new Error(`A stored body nested 100,000 arrays deep was refused, but ${loadProblem}.`);
    if (loaded.error === undefined && loaded.depth !== 100_000) throw new Error(`A stored body nested 100,000 arrays deep decoded to a different depth (${loaded.depth}).`);
  },
);
