/**
 * Grader of lesson-11 / serde: typed serialization of checkpoints. Core: what JSON holds and
 * what it cannot (Date, Map, Set, BigInt, bytes, undefined, NaN, ±Infinity, -0) round-trip
 * through [typeTag, bytes]; broken input raises SerdeError, never a SyntaxError or a wrong
 * value; metadata stays plain JSON. Excellence: arbitrary nested values (fast-check), the
 * versioned envelope with migrations, an allow-list of custom types that never constructs a
 * class the payload names, prototype-pollution keys kept as data, compression, decode limits.
 */
import { gzipSync } from "node:zlib";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { assertProperty, seededRandom, withSeed } from "#harness/seed.ts";
import type * as Reference from "../../solutions/lesson-11/serde/index.ts";
import { checkpointLike, corruptions, forgeBody, jsonValue, serdeValue, show, thrown, type SerdeApi } from "./serde/fixture.ts";

type LearnerFixture = typeof import("./serde/learner-fixture.ts");

const grader = defineGrader<SerdeApi>({
  lesson: "lesson-11",
  unit: "serde",
  exports: ["dumpsTyped", "loadsTyped", "createSerde", "SerdeError", "dumpsMetadata", "loadsMetadata", "CURRENT_VERSION"],
  fixtures: { serde: new URL("./serde/learner-fixture.ts", import.meta.url).pathname },
});

/** What a check calls: the module's own functions or a createSerde() instance, both in the learner process. */
type SerdeLike = { dumpsTyped(value: unknown): unknown; loadsTyped(typed: readonly [string, Uint8Array]): unknown };

async function dumped(serde: SerdeLike, value: unknown): Promise<[string, Uint8Array]> {
  const typed = await serde.dumpsTyped(value);
  if (!Array.isArray(typed) || typed.length !== 2 || typeof typed[0] !== "string" || !(typed[1] instanceof Uint8Array)) {
    throw new Error(`dumpsTyped must return [typeTag: string, bytes: Uint8Array]; it returned ${show(typed)}.`);
  }
  return [typed[0], typed[1]];
}

async function roundTrip(api: SerdeApi, value: unknown, serde: SerdeLike = api): Promise<unknown> {
  return serde.loadsTyped(await dumped(serde, value));
}

async function expectRoundTrip(api: SerdeApi, value: unknown, what: string): Promise<void> {
  const back = await roundTrip(api, value);
  if (!isDeepStrictEqual(back, value)) {
    throw new Error(withSeed(`${what} did not survive a round trip.\n  in:  ${show(value)}\n  out: ${show(back)}`));
  }
}

grader.core(
  "round-trips every JSON value through [typeTag, bytes]: the tag names the encoding, the bytes are a Uint8Array",
  { hint: "dumpsTyped returns a [tag, bytes] pair: a string tag naming the encoding and the encoded body as a Uint8Array; loadsTyped reverses it.", section: "typed-tags", weight: 2 },
  async (api) => {
    const random = seededRandom();
    for (let i = 0; i < 40; i++) await expectRoundTrip(api, jsonValue(random, 4), "A JSON value");
    const [tag] = await dumped(api, { a: 1 });
    if (!/^[\w.+-]{1,40}$/.test(tag)) throw new Error(`The type tag "${tag}" should be a short name of the encoding (e.g. "ck" or "json").`);
  },
);

grader.core(
  "round-trips what JSON cannot hold: Date, Map with non-string keys, Set, BigInt, Uint8Array, undefined, NaN, ±Infinity, -0",
  { hint: "Encode each kind JSON loses as a tagged value (e.g. { $t: 'date', v: iso }) and rebuild it on load; keep undefined distinct from null and absent keys absent.", section: "why-jsonstringify-is-not-a-serializer", weight: 3 },
  async (api) => {
    await expectRoundTrip(api, { at: new Date(Date.UTC(2026, 10, 22, 9, 3)), epoch: new Date(0) }, "Dates");
    const invalid = await roundTrip(api, new Date(Number.NaN));
    if (!(invalid instanceof Date) || !Number.isNaN(invalid.getTime())) throw new Error(`An invalid Date came back as ${show(invalid)}; it must stay an (invalid) Date.`);
    await expectRoundTrip(api, new Map<unknown, unknown>([[1, "one"], [true, "yes"], [null, 0], ["1", "string one"], [2n, new Date(0)]]), "A Map with number, boolean, null and bigint keys");
    await expectRoundTrip(api, new Set([1, "1", 1n, null]), "A Set of mixed values");
    await expectRoundTrip(api, { big: 2n ** 80n, negative: -(2n ** 70n) }, "BigInt values");
    await expectRoundTrip(api, { bytes: new Uint8Array([0, 1, 254, 255]), empty: new Uint8Array(0) }, "Uint8Array bytes");
    await expectRoundTrip(api, { values: [undefined, null, undefined], nested: { missing: undefined, present: null } }, "undefined inside arrays and objects");
    await expectRoundTrip(api, [Number.NaN, Infinity, -Infinity, -0, 0], "NaN, ±Infinity and -0");
    const back = (await roundTrip(api, { kept: undefined })) as Record<string, unknown>;
    if (!Object.hasOwn(back, "kept")) throw new Error("A key whose value is undefined disappeared; it must come back, with the value undefined.");
    const absent = (await roundTrip(api, {})) as Record<string, unknown>;
    if (Object.keys(absent).length !== 0) throw new Error(`An empty object came back as ${show(absent)}.`);
  },
);

grader.core(
  "malformed bytes, truncated bytes and unknown tags raise your SerdeError with a message, never a SyntaxError or a wrong value",
  { hint: "Validate before you decode: a known tag, a well-formed body, every tagged value's shape. Wrap every failure in SerdeError with a message that says what was wrong.", section: "failing-loudly-on-bad-input", weight: 2 },
  async (api) => {
    const random = seededRandom();
    const [tag, bytes] = await dumped(api, checkpointLike(random));
    const cases = corruptions(random, tag, bytes);
    for (const { what, typed } of cases) {
      const error = await thrown(() => api.loadsTyped(typed));
      if (error === undefined) throw new Error(withSeed(`loadsTyped accepted ${what} and returned a value; it must throw SerdeError.`));
      if (!(error instanceof api.SerdeError)) throw new Error(withSeed(`loadsTyped threw ${show(error)} for ${what}; throw your SerdeError instead.`));
      if (!error.message || error.message.length < 10) throw new Error(`The SerdeError for ${what} needs a message that says what was wrong.`);
    }
  },
);

grader.core(
  "metadata is plain JSON, readable without the serializer, and loads back as written",
  { hint: "dumpsMetadata is JSON.stringify of a plain object (refuse values JSON cannot hold); loadsMetadata parses, checks the result is an object, and wraps every failure in SerdeError.", section: "metadata-goes-its-own-way", weight: 1 },
  async (api) => {
    const random = seededRandom();
    for (let i = 0; i < 10; i++) {
      const metadata = { source: "loop", step: Math.floor(random() * 100), node: `node-${i}`, stage: ["draft", "review"][i % 2]!, userId: `u${i}`, tags: ["a", "b"] };
      const text = await api.dumpsMetadata(metadata);
      if (typeof text !== "string" || !isDeepStrictEqual(JSON.parse(text), metadata)) throw new Error(`dumpsMetadata(${show(metadata)}) returned ${show(text)}; it must be plain JSON of the same object.`);
      if (!isDeepStrictEqual(await api.loadsMetadata(text), metadata)) throw new Error("loadsMetadata did not return what dumpsMetadata was given.");
    }
    for (const text of ["{not json", "[1, 2]", '"a string"', "null"]) {
      const error = await thrown(() => api.loadsMetadata(text));
      if (!(error instanceof api.SerdeError)) throw new Error(`loadsMetadata(${show(text)}) must throw SerdeError (metadata is a JSON object); got ${show(error)}.`);
    }
  },
);

grader.excellence(
  "property: arbitrary nested values (objects, arrays, maps, sets, dates, bigints, bytes, special numbers) round-trip",
  { hint: "Recurse through every container kind, including Map keys and Set members; fast-check prints the smallest failing value and the seed.", section: "typed-tags", weight: 2, timeout: 20_000 },
  async (api) => {
    await assertProperty(fc.asyncProperty(serdeValue, async (value) => isDeepStrictEqual(await roundTrip(api, value), value)), { numRuns: 150 });
  },
);

grader.excellence(
  "the envelope is versioned: a version-1 body loads through its migration, a body from an unknown newer version is refused",
  { hint: "Write the format version into every body (see the byte layout in the contract); on load, run the migrations from that version up to CURRENT_VERSION, and refuse any version above it with SerdeError.", section: "versioned-envelopes-and-migrations", weight: 2 },
  async (api) => {
    const when = Date.UTC(2025, 0, 2, 3, 4, 5);
    const v1 = forgeBody(1, { $t: "date", v: when });
    const loaded = await api.loadsTyped(["ck", v1]);
    if (!(loaded instanceof Date) || loaded.getTime() !== when) throw new Error(`A version-1 body holding a date as epoch milliseconds loaded as ${show(loaded)}; expected new Date(${when}).`);
    const future = await thrown(() => api.loadsTyped(["ck", forgeBody(api.CURRENT_VERSION + 97, { a: 1 })]));
    if (!(future instanceof api.SerdeError) || !/version/i.test(future.message)) throw new Error(`A body from format version ${api.CURRENT_VERSION + 97} must be refused with a SerdeError that names the version; got ${show(future)}.`);
  },
);

grader.excellence(
  "registered classes come back as real instances; unregistered ones are refused, and no class named by the payload is ever constructed",
  { hint: "Keep an allow-list { name, class, encode, decode }; write the registered name, and on load look it up only in that list. Never new/eval/Function a name from the payload.", section: "never-construct-what-the-payload-names", weight: 2 },
  async (api, check) => {
    const f = await check.fixture<LearnerFixture>("serde");
    await f.installBait();
    try {
      const serde = (await api.createSerde({ types: [f.moneyType] })) as SerdeLike;
      const value = { price: await f.money(1999n, "EUR"), list: [await f.money(1n, "USD")] };
      const back = (await roundTrip(api, value, serde)) as { price: { format(): Promise<string> }; list: unknown[] };
      const price = back?.price;
      if (!(back.price instanceof f.Money) || (await price.format()) !== "EUR 1999" || !(back.list[0] instanceof f.Money)) throw new Error(`A registered Money came back as ${show(back)}; expected Money instances with working methods.`);
      const stranger = await f.unregistered();
      const refused = await thrown(() => serde.dumpsTyped({ x: stranger }));
      if (!(refused instanceof api.SerdeError)) throw new Error(`Dumping an unregistered class instance must throw SerdeError (it would load as a plain object); got ${show(refused)}.`);
      const unknownName = await thrown(() => serde.loadsTyped(["ck", forgeBody(api.CURRENT_VERSION, { $t: "custom", name: "Dangerous", v: {} })]));
      let report = await f.baitReport();
      if (report.constructed > 0) throw new Error(`Loading { $t: "custom", name: "Dangerous" } ran the constructor of globalThis.Dangerous: the payload chose which class to build. Look names up in the registered types only.`);
      if (!(unknownName instanceof api.SerdeError)) throw new Error(`Loading { $t: "custom", name: "Dangerous" }, a name that is not registered, must throw SerdeError; got ${show(unknownName)}.`);
      // Pickle-style markers other serializers use: they must stay plain data.
      const markers = { __class__: "Dangerous", __type__: "Dangerous", $type: "Dangerous", className: "Dangerous", type: "Dangerous" };
      const asData = await serde.loadsTyped(["ck", forgeBody(api.CURRENT_VERSION, markers)]);
      if (!isDeepStrictEqual(asData, markers)) throw new Error(`A plain object whose fields name a class loaded as ${show(asData)}; it must stay the plain object it was.`);
      // The learner's own payload with the registered name swapped for a global class name, re-checksummed.
      const [tag, bytes] = await dumped(serde, { m: await f.money(5n, "GBP") });
      const swapped = Buffer.from(bytes.subarray(8)).toString("utf8").replaceAll('"money"', '"Dangerous"');
      await thrown(() => serde.loadsTyped([tag, forgeBody(bytes[2]!, undefined, Buffer.from(swapped, "utf8"))]));
      report = await f.baitReport();
      if (report.constructed > 0) throw new Error(`Loading a payload that names "Dangerous" ran its constructor ${report.constructed} time(s); only registered types may be built, looked up by the registered name.`);
    } finally {
      await f.removeBait();
    }
  },
);

grader.excellence(
  "__proto__, constructor and prototype keys in a payload stay plain data; Object.prototype is untouched",
  { hint: "Build decoded objects with Object.defineProperty (or from Object.entries into a fresh object) instead of obj[key] = value, which calls the __proto__ setter.", section: "never-construct-what-the-payload-names", weight: 1 },
  async (api) => {
    const hostile = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"polluted2": "yes"}}, "inner": [{"__proto__": {"polluted3": "yes"}}]}') as Record<string, unknown>;
    const back = (await roundTrip(api, hostile)) as Record<string, unknown>;
    // Pollution happens in the learner process: a fresh object made there, after the load, must carry none of it.
    const probe = (await roundTrip(api, {})) as Record<string, unknown>;
    const again = (await roundTrip(api, { probe: {} })) as Record<string, unknown>;
    for (const object of [probe, again.probe as Record<string, unknown>]) {
      if (object.polluted !== undefined || object.polluted2 !== undefined || object.polluted3 !== undefined) throw new Error("Decoding a payload with __proto__ keys polluted Object.prototype.");
    }
    if (Object.getPrototypeOf(back) !== Object.prototype || !Object.hasOwn(back, "__proto__")) throw new Error(`The "__proto__" key must come back as an own data property of a plain object; got ${show(back)}.`);
    if (!isDeepStrictEqual(back, hostile)) throw new Error(`The payload came back changed: ${show(back)}.`);
  },
);

grader.excellence(
  "a repetitive 1 MB state is compressed to at most half, and the tag says so",
  { hint: "Above a size threshold, gzip the body (node:zlib) and use a different tag (e.g. ck+gzip) so the reader knows to inflate it.", section: "compression-and-size-limits", weight: 1 },
  async (api) => {
    const random = seededRandom();
    const messages = Array.from({ length: 4000 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `step ${i % 20}: ${"the quick brown fox ".repeat(12)}`, at: new Date(1_700_000_000_000 + Math.floor(random() * 1000)) }));
    const state = { messages, stage: "draft" };
    const plain = Buffer.byteLength(JSON.stringify(state));
    const [tag, bytes] = await dumped(api, state);
    if (bytes.length * 2 > plain) throw new Error(`A ${Math.round(plain / 1024)} KB repetitive state encoded to ${Math.round(bytes.length / 1024)} KB; compress bodies above a threshold so it is at most half.`);
    const [smallTag] = await dumped(api, { a: 1 });
    if (tag === smallTag) throw new Error(`The compressed body has the same tag as an uncompressed one ("${tag}"); flag compression in the tag.`);
    if (!isDeepStrictEqual(await api.loadsTyped([tag, bytes]), state)) throw new Error("The compressed state did not load back equal.");
  },
);

grader.excellence(
  "decoding is bounded: a decompression bomb is refused with SerdeError, quickly",
  { hint: "Inflate with a maxOutputLength (createSerde's maxDecodedBytes) and turn the RangeError into SerdeError; check plain bodies' size too.", section: "compression-and-size-limits", weight: 1 },
  async (api) => {
    const serde = (await api.createSerde({ maxDecodedBytes: 1024 * 1024 })) as SerdeLike;
    const fits = { text: "y".repeat(200_000) };
    if (!isDeepStrictEqual(await roundTrip(api, fits, serde), fits)) throw new Error("With maxDecodedBytes of 1 MB, a 200 KB state must still round-trip.");
    // 16 MB of JSON in about 16 KB of gzip: a thousandfold expansion, sixteen times the limit.
    const bomb = forgeBody(api.CURRENT_VERSION, undefined, gzipSync(Buffer.from(JSON.stringify({ big: "a".repeat(16 * 1024 * 1024) }))));
    const started = performance.now();
    const error = await thrown(() => serde.loadsTyped(["ck+gzip", bomb]));
    if (!(error instanceof api.SerdeError)) throw new Error(`A body that inflates to 16 MB was not refused with SerdeError under a 1 MB limit; got ${show(error)}.`);
    if (performance.now() - started > 2000) throw new Error("Refusing the bomb took over 2 s: stop inflating at the limit instead of inflating everything first.");
  },
);

if (hiddenChecksEnabled()) await import("./serde/hidden.ts");
