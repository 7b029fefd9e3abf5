/** Hidden checks of the serde unit (interviewer grading only). */
import { isDeepStrictEqual } from "node:util";
import { defineGrader } from "#harness/check.ts";
import { show, thrown, v1Body, type SerdeApi } from "./fixture.ts";

type LearnerFixture = typeof import("./learner-fixture.ts");

const grader = defineGrader<SerdeApi>({
  lesson: "lesson-11",
  unit: "serde",
  exports: ["dumpsTyped", "loadsTyped", "SerdeError"],
  fixtures: { serde: new URL("./learner-fixture.ts", import.meta.url).pathname },
});

grader.excellence(
  "a cyclic value is refused with SerdeError, not a stack overflow",
  { hint: "Track the containers on the current path while encoding and refuse one that contains itself.", section: "failing-loudly-on-bad-input", visibility: "hidden", category: "robustness" },
  async (api) => {
    const tree = { name: "tree", shared: [1], again: [1] };
    if (!isDeepStrictEqual(await api.loadsTyped(await api.dumpsTyped(tree)), tree)) throw new Error("A plain tree did not round-trip, so refusing cycles proves nothing yet.");
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = { back: cyclic };
    const error = await thrown(() => api.dumpsTyped(cyclic));
    if (!(error instanceof api.SerdeError)) throw new Error(`Dumping a cyclic value gave ${show(error)}; refuse it with SerdeError.`);
  },
);

grader.excellence(
  "sparse arrays keep their holes, and plain objects that use a \"$t\" key are not mistaken for tagged values",
  { hint: "Write holes as their own tagged value, and escape plain objects whose keys collide with your tag field.", section: "typed-tags", visibility: "hidden", category: "edge cases" },
  async (api) => {
    // eslint-disable-next-line no-sparse-arrays
    const value = { sparse: [1, , 3], lookalike: { $t: "date", v: "2020-01-01T00:00:00.000Z" }, other: { $t: "undef" } };
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
      if (!((await thrown(() => api.dumpsTyped(value))) instanceof api.SerdeError)) throw new Error(`Dumping ${show(value)} must throw SerdeError; JSON.stringify would silently drop it.`);
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
    if (deep.error === undefined && deep.depth !== 50_000) throw new Error(`A value nested 50,000 arrays deep came back ${deep.depth} deep.`);
    // A stored version-1 body (JSON) nested 100,000 arrays deep: what a hostile or buggy writer can leave in the store.
    const forged = v1Body(undefined, Buffer.from("[".repeat(100_000) + "]".repeat(100_000), "utf8"));
    const loaded = await f.loadArrayChain(api.loadsTyped, ["ck", forged]);
    if (loaded.error !== undefined && !(loaded.error instanceof api.SerdeError)) throw new Error(`A stored body nested 100,000 arrays deep gave ${show(loaded.error)} on load; refuse it with SerdeError (or decode it).`);
    if (loaded.error === undefined && loaded.depth !== 100_000) throw new Error(`A stored body nested 100,000 arrays deep decoded to a different depth (${loaded.depth}).`);
  },
);
