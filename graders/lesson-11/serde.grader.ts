/**
 * Grader of lesson-11 / serde: typed serialization of checkpoints. Core: what JSON holds and
 * what it cannot (Date, Map, Set, BigInt, bytes, undefined, NaN, ±Infinity, -0) round-trip
 * through [typeTag, bytes], read back by a fresh process; every truncation and every
 * single-byte change of the learner's own bytes raises SerdeError with a code; metadata stays
 * plain JSON. Excellence: arbitrary nested values (fast-check), the versioned envelope (bytes
 * from last year's version-1 encoder load; a newer version is refused), every tagged kind's
 * shape validated, an allow-list of custom types that never even looks up a name the payload
 * gives, prototype-pollution keys kept as data, compression, a decompression bomb refused
 * without inflating it.
 *
 * Only the 8-byte header is fixed by the contract; the body encoding is the learner's. The
 * grader reads and forges headers, never the learner's bodies; where it needs a body it can
 * shape (wrong kinds, deep nesting, class names) it writes a version-1 body, which every
 * loader must keep reading.
 */
import { gzipSync } from "node:zlib";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { defineGrader, hiddenChecksEnabled, type CheckContext } from "#harness/check.ts";
import { assertProperty, seededRandom, withSeed } from "#harness/seed.ts";
import { CODES, checkpointLike, jsonValue, notSerdeError, reseal, serdeValue, show, thrown, v1Body, type Code, type SerdeApi } from "./serde/fixture.ts";
import { dumpsV1 } from "./serde/legacy-v1.ts";

type LearnerFixture = typeof import("./serde/learner-fixture.ts");

const grader = defineGrader<SerdeApi>({
  lesson: "lesson-11",
  unit: "serde",
  exports: ["dumpsTyped", "loadsTyped", "createSerde", "SerdeError", "dumpsMetadata", "loadsMetadata", "CURRENT_VERSION"],
  fixtures: { serde: new URL("./serde/learner-fixture.ts", import.meta.url).pathname },
});

/** What a check calls: the module's own functions or a createSerde() instance, both in a learner process. */
type SerdeLike = { dumpsTyped(value: unknown): unknown; loadsTyped(typed: readonly [string, Uint8Array]): unknown };

async function dumped(serde: SerdeLike, value: unknown): Promise<[string, Uint8Array]> {
  const typed = await serde.dumpsTyped(value);
  if (!Array.isArray(typed) || typed.length !== 2 || typeof typed[0] !== "string" || !(typed[1] instanceof Uint8Array)) {
    throw new Error(`dumpsTyped must return [typeTag: string, bytes: Uint8Array]; it returned ${show(typed)}.`);
  }
  return [typed[0], typed[1]];
}

/** Dumps with `writer` and loads with `reader` (by default a different learner process: nothing the writer remembers helps). */
async function roundTrip(writer: SerdeLike, value: unknown, reader: SerdeLike = writer): Promise<unknown> {
  const typed = await dumped(writer, value);
  try {
    return await reader.loadsTyped(typed);
  } catch (error) {
    throw new Error(withSeed(`Your own bytes for ${show(value)} did not load${reader === writer ? "" : " in another process (a checkpoint must load after a restart, anywhere)"}: ${show(error)}`));
  }
}

async function expectRoundTrip(writer: SerdeLike, reader: SerdeLike, value: unknown, what: string): Promise<void> {
  const back = await roundTrip(writer, value, reader);
  if (!isDeepStrictEqual(back, value)) {
    throw new Error(withSeed(`${what} did not survive a round trip (dumped in one process, loaded in another).\n  in:  ${show(value)}\n  out: ${show(back)}`));
  }
}

/** Fails unless `error` is the learner's SerdeError with a message and one of the `codes`. */
function expectSerdeError(api: SerdeApi, error: unknown, what: string, codes: readonly Code[] = CODES): void {
  if (error === undefined) throw new Error(withSeed(`loadsTyped accepted ${what} and returned a value; it must throw SerdeError.`));
  if (!(error instanceof api.SerdeError)) throw new Error(withSeed(`${show(error)} was thrown for ${what}; throw your SerdeError instead.`));
  if (!error.message || error.message.length < 10) throw new Error(`The SerdeError for ${what} needs a message that says what was wrong.`);
  const code = (error as { code?: unknown }).code;
  if (!codes.includes(code as Code)) throw new Error(`The SerdeError for ${what} has code ${show(code)}; expected ${codes.length === 1 ? codes[0] : `one of ${codes.join(", ")}`} (the codes are listed in the contract).`);
}

/** What damaged bytes may be refused as (a changed version byte may read as an unknown version before the checksum is checked). */
const DAMAGE_CODES: readonly Code[] = ["MALFORMED", "CHECKSUM", "UNSUPPORTED_VERSION", "TOO_LARGE"];

async function reader(check: CheckContext<SerdeApi>): Promise<SerdeApi> {
  return (await check.spawn()).api;
}

/** Runs `calls` with a bounded number in flight: thousands of loads pipelined over the channel. */
async function inBatches<T>(items: T[], each: (item: T) => Promise<void>, batch = 256): Promise<void> {
  for (let i = 0; i < items.length; i += batch) await Promise.all(items.slice(i, i + batch).map(each));
}

grader.core(
  "round-trips every JSON value through [typeTag, bytes]: the tag names the encoding, the bytes are a Uint8Array",
  { hint: "dumpsTyped returns a [tag, bytes] pair: a string tag naming the encoding and the header plus body as a Uint8Array; loadsTyped reverses it, in any process.", section: "typed-tags", weight: 2 },
  async (api, check) => {
    const fresh = await reader(check);
    const random = seededRandom();
    for (let i = 0; i < 40; i++) await expectRoundTrip(api, fresh, jsonValue(random, 4), "A JSON value");
    // State often holds one object in two places (the same message in two lists): that is no cycle, and
    // JSON.stringify writes it twice. Built in the learner process, where the references really are shared.
    const f = await check.fixture<LearnerFixture>("serde");
    const shared = await f.roundTripShared(api.dumpsTyped, api.loadsTyped);
    if (shared.error !== undefined) throw new Error(`A value that holds the same object, Map and Date more than once (no cycle) was refused: ${show(shared.error)}. Only a container inside itself is a cycle; track the containers on the current path, not every one seen.`);
    if (!shared.same) throw new Error("A value that holds the same object, Map and Date more than once (no cycle) did not load back equal.");
    const [tag, bytes] = await dumped(api, { a: 1 });
    if (!/^[\w.+-]{1,40}$/.test(tag)) throw new Error(`The type tag "${tag}" should be a short name of the encoding (e.g. "ck").`);
    if (bytes.length < 8 || bytes[0] !== 0x63 || bytes[1] !== 0x6b || bytes[2] !== api.CURRENT_VERSION) throw new Error(`The bytes must start with the contract's header ("ck", then CURRENT_VERSION = ${api.CURRENT_VERSION}); they start ${show(bytes.subarray(0, 8))}.`);
  },
);

grader.core(
  "round-trips what JSON cannot hold: Date, Map with non-string keys, Set, BigInt, Uint8Array, undefined, NaN, ±Infinity, -0",
  { hint: "Give each kind JSON loses its own encoding and rebuild it on load; keep undefined distinct from null and absent keys absent.", section: "why-jsonstringify-is-not-a-serializer", weight: 3 },
  async (api, check) => {
    const fresh = await reader(check);
    await expectRoundTrip(api, fresh, { at: new Date(Date.UTC(2026, 10, 22, 9, 3)), epoch: new Date(0) }, "Dates");
    const invalid = await roundTrip(api, new Date(Number.NaN), fresh);
    if (!(invalid instanceof Date) || !Number.isNaN(invalid.getTime())) throw new Error(`An invalid Date came back as ${show(invalid)}; it must stay an (invalid) Date.`);
    await expectRoundTrip(api, fresh, new Map<unknown, unknown>([[1, "one"], [true, "yes"], [null, 0], ["1", "string one"], [2n, new Date(0)]]), "A Map with number, boolean, null and bigint keys");
    await expectRoundTrip(api, fresh, new Set([1, "1", 1n, null]), "A Set of mixed values");
    await expectRoundTrip(api, fresh, { big: 2n ** 80n, negative: -(2n ** 70n) }, "BigInt values");
    await expectRoundTrip(api, fresh, { bytes: new Uint8Array([0, 1, 254, 255]), empty: new Uint8Array(0) }, "Uint8Array bytes");
    await expectRoundTrip(api, fresh, { values: [undefined, null, undefined], nested: { missing: undefined, present: null } }, "undefined inside arrays and objects");
    await expectRoundTrip(api, fresh, [Number.NaN, Infinity, -Infinity, -0, 0], "NaN, ±Infinity and -0");
    const back = (await roundTrip(api, { kept: undefined }, fresh)) as Record<string, unknown>;
    if (!Object.hasOwn(back, "kept")) throw new Error("A key whose value is undefined disappeared; it must come back, with the value undefined.");
    const absent = (await roundTrip(api, {}, fresh)) as Record<string, unknown>;
    if (Object.keys(absent).length !== 0) throw new Error(`An empty object came back as ${show(absent)}.`);
  },
);

grader.core(
  "every truncation and every single-byte change of your own bytes, garbage and unknown tags raise SerdeError with a code and a message",
  { hint: "Check the tag, the header and the checksum (CRC-32 of header bytes 0-3 and the stored body) before you decode anything; wrap every failure in SerdeError with the contract's code and a message that says what was wrong.", section: "failing-loudly-on-bad-input", weight: 2, timeout: 30_000 },
  async (api, check) => {
    const random = seededRandom();
    const small = { at: new Date(0), n: 7n, s: "hi", m: new Map([[1, 2]]) };
    const [tag, bytes] = await dumped(api, small);
    expectSerdeError(api, await thrown(() => api.loadsTyped(["pickle", bytes])), 'an unknown type tag ("pickle")', ["UNKNOWN_TAG"]);
    const damaged: Array<{ what: string; bytes: Uint8Array }> = [];
    for (let cut = 0; cut < bytes.length; cut++) damaged.push({ what: `your bytes truncated to ${cut} of ${bytes.length}`, bytes: bytes.slice(0, cut) });
    // The space is small, so it is enumerated: no seed can miss a byte the checksum does not cover. From here, every
    // offset with each of its bits flipped, zeroed and saturated; all 255 other values of every byte below, in the learner process.
    for (let at = 0; at < bytes.length; at++) {
      for (const value of new Set([...Array.from({ length: 8 }, (_, bit) => bytes[at]! ^ (1 << bit)), 0, 255])) {
        if (value === bytes[at]) continue;
        const changed = bytes.slice();
        changed[at] = value;
        damaged.push({ what: `your bytes for ${show(small)} with byte ${at} changed from ${bytes[at]} to ${value}`, bytes: changed });
      }
    }
    for (let i = 0; i < 8; i++) damaged.push({ what: "random bytes", bytes: new Uint8Array(1 + Math.floor(random() * 64)).map(() => Math.floor(random() * 256)) });
    damaged.push({ what: "your bytes with a byte appended", bytes: Uint8Array.from([...bytes, 0]) });
    let failure: Error | undefined;
    await inBatches(damaged, async ({ what, bytes: b }) => {
      if (failure) return;
      try {
        expectSerdeError(api, await thrown(() => api.loadsTyped([tag, b])), what, DAMAGE_CODES);
      } catch (error) {
        failure ??= error as Error;
      }
    });
    if (failure) throw failure;
    const f = await check.fixture<LearnerFixture>("serde");
    const cut = await f.sweepTruncations(api.loadsTyped, api.SerdeError, tag, bytes, [...DAMAGE_CODES]);
    if (cut) expectSerdeError(api, cut.outcome === "returned a value" ? undefined : cut.outcome, `your bytes for ${show(small)} truncated to ${cut.length} of ${bytes.length}, each in a buffer of exactly that length`, DAMAGE_CODES);
    const missed = await f.sweepByteChanges(api.loadsTyped, api.SerdeError, tag, bytes, [...DAMAGE_CODES]);
    if (missed) expectSerdeError(api, missed.outcome === "returned a value" ? undefined : missed.outcome, `your bytes for ${show(small)} with byte ${missed.at} changed from ${missed.from} to ${missed.to}`, DAMAGE_CODES);
  },
);

grader.core(
  "metadata is plain JSON, readable without the serializer, loads back as written, and refuses what JSON cannot hold",
  { hint: "dumpsMetadata is JSON.stringify of a plain object after checking every value is JSON (a Date, Map, BigInt or undefined is refused with SerdeError); loadsMetadata parses, checks the result is an object, and wraps every failure in SerdeError.", section: "metadata-goes-its-own-way", weight: 1 },
  async (api) => {
    const random = seededRandom();
    for (let i = 0; i < 10; i++) {
      const metadata = { source: "loop", step: Math.floor(random() * 100), node: `node-${i}`, stage: ["draft", "review"][i % 2]!, userId: `u${i}`, tags: ["a", "b"], nested: { score: random() } };
      const text = await api.dumpsMetadata(metadata);
      if (typeof text !== "string" || !isDeepStrictEqual(JSON.parse(text), metadata)) throw new Error(`dumpsMetadata(${show(metadata)}) returned ${show(text)}; it must be plain JSON of the same object.`);
      if (!isDeepStrictEqual(await api.loadsMetadata(text), metadata)) throw new Error("loadsMetadata did not return what dumpsMetadata was given.");
    }
    // Every JSON value is metadata: null, booleans, zero, empty strings, lists and objects of them.
    const plainValues = { unset: null, yes: true, no: false, zero: 0, negative: -1.5, empty: "", list: [null, true, false, 0, "", [], {}], nested: { off: false, none: null } };
    const plainText = await api.dumpsMetadata(plainValues);
    if (typeof plainText !== "string" || !isDeepStrictEqual(JSON.parse(plainText), plainValues)) throw new Error(`dumpsMetadata(${show(plainValues)}) returned ${show(plainText)}; null, booleans, 0 and "" are JSON values and must be kept as written.`);
    // Metadata is an object (loadsMetadata refuses anything else): refuse writing what could not be read back.
    for (const notObject of [null, [], ["a"], "x", 5]) {
      const problem = notSerdeError(api, await thrown(() => api.dumpsMetadata(notObject as never)));
      if (problem) throw new Error(`dumpsMetadata(${show(notObject)}) must refuse with SerdeError (metadata is a JSON object), but ${problem}.`);
    }
    for (const text of ["{not json", "[1, 2]", '"a string"', "null"]) {
      const problem = notSerdeError(api, await thrown(() => api.loadsMetadata(text)));
      if (problem) throw new Error(`loadsMetadata(${show(text)}) must throw SerdeError (metadata is a JSON object), but ${problem}.`);
    }
    // JSON.stringify would turn these into a string, {}, a TypeError, nothing, and null: a query on them would silently miss.
    for (const metadata of [{ at: new Date(0) }, { seen: new Map([["a", 1]]) }, { big: 1n }, { nested: { gone: undefined } }, { score: Number.NaN }, { limit: Infinity }, { list: [new Set([1])] }]) {
      const problem = notSerdeError(api, await thrown(() => api.dumpsMetadata(metadata)));
      if (problem) throw new Error(`dumpsMetadata(${show(metadata)}) must refuse with SerdeError (metadata is plain JSON, and JSON cannot hold it), but ${problem}.`);
    }
  },
);

grader.excellence(
  "property: arbitrary nested values (objects, arrays, maps, sets, dates, bigints, bytes, special numbers) round-trip",
  { hint: "Recurse through every container kind, including Map keys and Set members; fast-check prints the smallest failing value and the seed.", section: "typed-tags", weight: 2, timeout: 20_000 },
  async (api, check) => {
    const fresh = await reader(check);
    await assertProperty(fc.asyncProperty(serdeValue, async (value) => isDeepStrictEqual(await roundTrip(api, value, fresh), value)), { numRuns: 150 });
  },
);

grader.excellence(
  "the envelope is versioned: bytes from last year's version-1 encoder load as written; a newer version is refused with UNSUPPORTED_VERSION",
  { hint: "Keep reading format version 1 (legacy-v1.ts next to the starter writes it: dates as epoch milliseconds) through a migration; refuse a version above CURRENT_VERSION with SerdeError UNSUPPORTED_VERSION and a message naming the version found.", section: "versioned-envelopes-and-migrations", weight: 2 },
  async (api) => {
    const random = seededRandom();
    const when = Date.UTC(2025, 0, 2, 3, 4, 5);
    const invalid = await api.loadsTyped(dumpsV1({ invalid: new Date(Number.NaN) }));
    if (!((invalid as { invalid?: unknown })?.invalid instanceof Date) || !Number.isNaN((invalid as { invalid: Date }).invalid.getTime())) throw new Error(`A version-1 body holding an invalid Date (v: null) loaded as ${show(invalid)}.`);
    const values = [new Date(when), { at: new Date(when), tags: new Set(["a"]), scores: new Map([[1, 2n]]), raw: new Uint8Array([9]), gone: undefined }, { none: null, list: [null, 1, [null]], nested: { empty: null } }, checkpointLike(random)];
    for (const value of values) {
      for (const gzip of [false, true]) {
        const typed = dumpsV1(value, { gzip });
        const loaded = await thrown(async () => {
          const back = await api.loadsTyped(typed);
          if (!isDeepStrictEqual(back, value)) throw new Error(`it loaded as ${show(back)}`);
        });
        if (loaded !== undefined) throw new Error(withSeed(`A version-1 body (${gzip ? "gzipped" : "plain"}, as legacy-v1.ts writes it) of ${show(value)} did not load as written: ${show(loaded)}.`));
      }
    }
    const [tag, bytes] = await dumped(api, { a: 1 });
    for (const version of [Math.min(255, api.CURRENT_VERSION + 1), Math.min(255, api.CURRENT_VERSION + 97), 0]) {
      const error = await thrown(() => api.loadsTyped([tag, reseal(bytes, { version })]));
      expectSerdeError(api, error, `your own bytes resealed as format version ${version}`, ["UNSUPPORTED_VERSION"]);
      const message = (error as Error).message;
      if (!/version/i.test(message) || !message.includes(String(version))) throw new Error(`Refusing a body of format version ${version}, say so: the message must contain "version" and ${version}; it was ${show(message)}.`);
    }
  },
);

grader.excellence(
  "every tagged kind's shape is validated: a version-1 body with a wrong shape for any kind is refused with MALFORMED, never a wrong value",
  { hint: "After parsing, check each tagged value before you rebuild it (a special number is one of four names, a map is a list of pairs, bytes are base64, ...) and refuse anything else with SerdeError MALFORMED.", section: "failing-loudly-on-bad-input", weight: 1 },
  async (api) => {
    const shapes: Array<[string, unknown]> = [
      ["a special number that is not one of the four", { $t: "num", v: "NaM" }],
      ["a special number that is a number", { $t: "num", v: 5 }],
      ["a special number that is a list", { $t: "num", v: ["NaN"] }],
      ["a bigint that is not an integer", { $t: "bigint", v: "1.5e3" }],
      ["a bigint that is a number", { $t: "bigint", v: 12 }],
      ["a date that is a string", { $t: "date", v: "not a date" }],
      ["a date that is an object", { $t: "date", v: { ms: 1 } }],
      ["a date that is an ISO string (version 1 wrote epoch milliseconds)", { $t: "date", v: "2020-01-01T00:00:00.000Z" }],
      ["a date out of the Date range", { $t: "date", v: 1e300 }],
      ["bytes that are not base64", { $t: "u8", v: "!!not base64!!" }],
      ["bytes that are a list", { $t: "u8", v: [1, 2] }],
      ["bytes that are a number", { $t: "u8", v: 1234 }],
      ["a map that is not a list", { $t: "map", v: { a: 1 } }],
      ["a map whose entries are not pairs", { $t: "map", v: [[1, 2, 3]] }],
      ["a map whose entry is not a list", { $t: "map", v: [5] }],
      ["a map whose entry is a two-character string", { $t: "map", v: ["ab"] }],
      ["a set that is not a list", { $t: "set", v: "abc" }],
      ["an escaped object that is not a list of pairs", { $t: "obj", v: { a: 1 } }],
      ["an escaped object with a non-string key", { $t: "obj", v: [[1, 2]] }],
      ["an escaped object with one non-string key among string keys", { $t: "obj", v: [["$t", 1], [2, 3]] }],
      ["a hole outside an array", { $t: "hole" }],
      ["an unknown kind", { $t: "wat", v: 1 }],
      ["a kind that is not a string", { $t: 5, v: 1 }],
      ["a body that is not JSON", undefined],
      ["a body that is not UTF-8", undefined],
    ];
    for (const [what, tree] of shapes) {
      const raw = what === "a body that is not JSON" ? Buffer.from("{not json", "utf8") : what === "a body that is not UTF-8" ? new Uint8Array([0x22, 0xff, 0xfe, 0x22]) : undefined;
      const body = v1Body(raw ? undefined : { value: tree }, raw);
      expectSerdeError(api, await thrown(() => api.loadsTyped(["ck", body])), `a version-1 body holding ${what} (${show(tree)})`, ["MALFORMED"]);
    }
  },
);

grader.excellence(
  "headers the checksum cannot vouch for are checked too: a wrong magic, unknown flag bits, a gzip flag that contradicts the tag, and arguments that are not a [typeTag, bytes] pair raise SerdeError",
  { hint: "A forger (or a bug) can recompute the CRC: still check the magic, refuse every flag bit but bit 0, and refuse a body whose flag bit 0 disagrees with its tag (ck / ck+gzip). Check that loadsTyped was given a [string, Uint8Array] pair before you read it.", section: "failing-loudly-on-bad-input", weight: 1 },
  async (api) => {
    const value = { at: new Date(0), n: 7n, s: "hi", note: "z".repeat(64) };
    const [tag, plain] = await dumped(api, value);
    const [gzTag, gz] = await dumped((await api.createSerde({ compressAbove: 1 })) as SerdeLike, value);
    if (tag !== "ck" || gzTag !== "ck+gzip") throw new Error(`A small body must be written as "ck" and one above compressAbove as "ck+gzip"; got "${tag}" and "${gzTag}".`);
    const forged: Array<[string, readonly [string, Uint8Array]]> = [
      ['your bytes with the magic changed to "cj" (checksum recomputed)', [tag, reseal(plain, { magic: [0x63, 0x6a] })]],
      ['your bytes with the magic changed to "CK" (checksum recomputed)', [tag, reseal(plain, { magic: [0x43, 0x4b] })]],
      ['your bytes with the magic changed to "dk" (checksum recomputed)', [tag, reseal(plain, { magic: [0x64, 0x6b] })]],
      ['your gzipped bytes with the magic changed to "kc" (checksum recomputed)', [gzTag, reseal(gz, { magic: [0x6b, 0x63] })]],
      ['your plain body flagged as gzipped (flag bit 0 set) under the tag "ck"', [tag, reseal(plain, { flags: 1 })]],
      ['your gzipped body (flag bit 0 set) under the tag "ck"', [tag, gz]],
      ['your gzipped body with flag bit 0 cleared, under the tag "ck+gzip"', [gzTag, reseal(gz, { flags: 0 })]],
      ['your plain body (flag bit 0 clear) under the tag "ck+gzip"', [gzTag, plain]],
    ];
    for (let bit = 1; bit < 8; bit++) {
      forged.push([`your bytes with unknown flag bit ${bit} set (checksum recomputed)`, [tag, reseal(plain, { flags: plain[3]! | (1 << bit) })]]);
      forged.push([`your gzipped bytes with unknown flag bit ${bit} set (checksum recomputed)`, [gzTag, reseal(gz, { flags: gz[3]! | (1 << bit) })]]);
    }
    for (const [what, typed] of forged) expectSerdeError(api, await thrown(() => api.loadsTyped(typed)), what);
    // A gzip flag and tag over a body that does not inflate: broken data, not a body too large.
    for (const [what, body] of [["a body that is not gzip data", plain.subarray(8)], ["a gzip stream cut in half", gz.subarray(8, 8 + Math.floor((gz.length - 8) / 2))]] as const) {
      expectSerdeError(api, await thrown(() => api.loadsTyped([gzTag, reseal(gz, { body })])), `${what}, flagged and tagged as gzipped (checksum recomputed)`, ["MALFORMED", "CHECKSUM"]);
    }
    const notPairs: Array<[string, unknown]> = [
      ["null", null],
      ['a bare string ("ck")', "ck"],
      ["an empty array", []],
      ['a one-element array (["ck"])', ["ck"]],
      ['a pair whose bytes are a string (["ck", "not bytes"])', ["ck", "not bytes"]],
      ['a pair whose bytes are missing (["ck", null])', ["ck", null]],
      ["a pair whose bytes are a plain array of your bytes' numbers", [tag, Array.from(plain)]],
    ];
    for (const [what, typed] of notPairs) expectSerdeError(api, await thrown(() => api.loadsTyped(typed as never)), `${what} instead of a [typeTag, bytes] pair`);
  },
);

grader.excellence(
  "only registered classes are built: they come back as real instances; unregistered classes and built-in subclasses are refused; a class name in the payload is never even looked up",
  { hint: "Keep an allow-list { name, class, encode, decode }; write the registered name, and on load look it up only in that list (a Map). Never read globalThis, eval, Function or require a name from the payload, not even to call a static fromJSON.", section: "never-construct-what-the-payload-names", weight: 2 },
  async (api, check) => {
    const f = await check.fixture<LearnerFixture>("serde");
    const other = await check.spawn();
    const g = await check.fixture<LearnerFixture>("serde", other.learner);
    await f.installBait();
    await g.installBait();
    try {
      const writer = (await api.createSerde({ types: [f.moneyType, f.decoyType] })) as SerdeLike;
      const readerSerde = (await other.api.createSerde({ types: [g.moneyType] })) as SerdeLike;
      const value = { price: await f.money(1999n, "EUR"), list: [await f.money(1n, "USD")] };
      const back = (await roundTrip(writer, value, readerSerde)) as { price: { format(): Promise<string> }; list: unknown[] };
      if (!(back?.price instanceof g.Money) || (await back.price.format()) !== "EUR 1999" || !(back.list[0] instanceof g.Money)) throw new Error(`A registered Money, dumped in one process and loaded in another, came back as ${show(back)}; expected Money instances with working methods.`);
      const stranger = await f.unregistered();
      expectSerdeError(api, await thrown(() => writer.dumpsTyped({ x: stranger })), "dumping an instance of an unregistered class (it would load as a plain object)", ["UNSUPPORTED_VALUE", "UNKNOWN_TYPE"]);
      for (const { what, value: sub } of await f.builtinSubclasses()) {
        expectSerdeError(api, await thrown(() => writer.dumpsTyped(sub)), `dumping ${what} (it would load as its base class)`, ["UNSUPPORTED_VALUE", "UNKNOWN_TYPE"]);
      }
      // A version-1 body naming a class that is not registered.
      expectSerdeError(api, await thrown(() => readerSerde.loadsTyped(["ck", v1Body({ $t: "custom", name: "Dangerous", v: {} })])), '{ $t: "custom", name: "Dangerous" }, a name that is not registered', ["UNKNOWN_TYPE"]);
      // Names every plain object answers to: a registry kept in a plain object looks them up on Object.prototype.
      for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
        expectSerdeError(api, await thrown(() => readerSerde.loadsTyped(["ck", v1Body({ $t: "custom", name, v: {} })])), `{ $t: "custom", name: "${name}" }, a name only Object.prototype knows (keep the registry in a Map, or check own keys)`, ["UNKNOWN_TYPE"]);
      }
      // A registered name whose data its decode cannot take (Money's decode reads data.cents of null): still a SerdeError, never the type's TypeError or a value.
      expectSerdeError(api, await thrown(() => readerSerde.loadsTyped(["ck", v1Body({ $t: "custom", name: "money", v: null })])), '{ $t: "custom", name: "money", v: null }, data the registered type\'s decode throws on');
      // Your own bytes with a registered name swapped for a global class name of the same length, resealed.
      const [decoyTag, decoy] = await dumped(writer, { c: await f.coupon("SPRING") });
      const at = Buffer.from(decoy).indexOf("Dangerou5", 8, "utf8");
      if (at < 0) throw new Error(`The registered name "Dangerou5" does not appear in your bytes as UTF-8 text; the contract asks for the registered name to be written as text, so that stored payloads stay readable.`);
      const swapped = Uint8Array.from(decoy);
      swapped[at + 8] = "s".charCodeAt(0);
      expectSerdeError(api, await thrown(() => readerSerde.loadsTyped([decoyTag, reseal(swapped, {})])), 'your own payload with its registered name changed to "Dangerous"', ["UNKNOWN_TYPE", "MALFORMED"]);
      for (const report of [await f.baitReport(), await g.baitReport()]) {
        if (report.lookups + report.constructed + report.calls > 0) {
          throw new Error(`Loading a payload that names "Dangerous" read globalThis.${report.names[0] ?? "Dangerous"} ${report.lookups} time(s) (constructed ${report.constructed}, static factories called ${report.calls}): the payload chose which class to look up. Look names up in the registered types only.`);
        }
      }
      // Pickle-style markers other serializers use: they must stay plain data.
      const markers = { __class__: "Dangerous", __type__: "Dangerous", $type: "Dangerous", className: "Dangerous", type: "Dangerous", name: "Dangerous" };
      const asData = await roundTrip(writer, markers, readerSerde);
      if (!isDeepStrictEqual(asData, markers)) throw new Error(`A plain object whose fields name a class loaded as ${show(asData)}; it must stay the plain object it was.`);
    } finally {
      await f.removeBait();
    }
  },
);

grader.excellence(
  "__proto__, constructor and prototype keys in a payload stay plain data; Object.prototype is untouched",
  { hint: "Build decoded objects with Object.defineProperty (or from Object.entries into a fresh object) instead of obj[key] = value, which calls the __proto__ setter.", section: "never-construct-what-the-payload-names", weight: 1 },
  async (api, check) => {
    const fresh = await reader(check);
    const hostile = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"polluted2": "yes"}}, "inner": [{"__proto__": {"polluted3": "yes"}}]}') as Record<string, unknown>;
    const fromV1 = await api.loadsTyped(["ck", v1Body(hostile)]);
    const back = (await roundTrip(api, hostile, fresh)) as Record<string, unknown>;
    // Pollution happens in the learner processes: a fresh object made there, after the loads, must carry none of it.
    for (const side of [api, fresh]) {
      const probe = (await roundTrip(side, { probe: {} })) as { probe: Record<string, unknown> };
      if (probe.probe.polluted !== undefined || probe.probe.polluted2 !== undefined || probe.probe.polluted3 !== undefined) throw new Error("Decoding a payload with __proto__ keys polluted Object.prototype.");
    }
    // What loadsTyped returns is the caller's to change: its keys can be reassigned, deleted and added to (plain data, not frozen or read-only).
    const f = await check.fixture<LearnerFixture>("serde");
    const edited = await f.editLoaded(api.dumpsTyped, api.loadsTyped);
    if (edited) throw new Error(`A loaded object could not be changed like the plain object it was: ${edited}. Define decoded properties as ordinary data (writable, enumerable, configurable).`);
    for (const [what, got] of [["round trip", back], ["version-1 body", fromV1]] as const) {
      if (Object.getPrototypeOf(got) !== Object.prototype || !Object.hasOwn(got as object, "__proto__")) throw new Error(`After a ${what}, the "__proto__" key must be an own data property of a plain object; got ${show(got)}.`);
      if (!isDeepStrictEqual(got, hostile)) throw new Error(`The payload came back changed after a ${what}: ${show(got)}.`);
    }
  },
);

grader.excellence(
  "a repetitive 1 MB state is compressed to at most half, and the tag and the header flag say so",
  { hint: "Above a size threshold, gzip the body (node:zlib), use the tag ck+gzip and set flag bit 0 so the reader knows to inflate it.", section: "compression-and-size-limits", weight: 1 },
  async (api, check) => {
    const fresh = await reader(check);
    const random = seededRandom();
    const messages = Array.from({ length: 4000 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `step ${i % 20}: ${"the quick brown fox ".repeat(12)}`, at: new Date(1_700_000_000_000 + Math.floor(random() * 1000)) }));
    const state = { messages, stage: "draft" };
    const plain = Buffer.byteLength(JSON.stringify(state));
    const [tag, bytes] = await dumped(api, state);
    if (bytes.length * 2 > plain) throw new Error(`A ${Math.round(plain / 1024)} KB repetitive state encoded to ${Math.round(bytes.length / 1024)} KB; compress bodies above a threshold so it is at most half.`);
    const [smallTag, small] = await dumped(api, { a: 1 });
    if (tag !== "ck+gzip" || smallTag === tag) throw new Error(`The compressed body's tag is "${tag}" and a small body's "${smallTag}"; the contract's tags are "ck" and "ck+gzip".`);
    if ((bytes[3]! & 1) !== 1 || (small[3]! & 1) !== 0) throw new Error(`Header flag bit 0 must be set exactly when the body is gzipped (flags ${bytes[3]} compressed, ${small[3]} not).`);
    if (!isDeepStrictEqual(await fresh.loadsTyped([tag, bytes]), state)) throw new Error("The compressed state did not load back equal in another process.");
    // "Above which": measure your own body (B bytes, never compressed), then a body of exactly compressAbove bytes stays plain and one byte more is gzipped.
    const sample = { note: "x".repeat(300), at: new Date(0) };
    const [, measured] = await dumped((await api.createSerde({ compressAbove: 1e9 })) as SerdeLike, sample);
    const size = measured.length - 8;
    const [atTag, atBytes] = await dumped((await api.createSerde({ compressAbove: size })) as SerdeLike, sample);
    if (atTag !== "ck" || (atBytes[3]! & 1) !== 0) throw new Error(`Your body for ${show(sample)} is ${size} bytes; with compressAbove: ${size} it must stay plain (only a body above compressAbove is gzipped), but it was written with tag "${atTag}" and flags ${atBytes[3]}.`);
    const [overTag, overBytes] = await dumped((await api.createSerde({ compressAbove: size - 1 })) as SerdeLike, sample);
    if (overTag !== "ck+gzip" || (overBytes[3]! & 1) !== 1) throw new Error(`Your body for ${show(sample)} is ${size} bytes; with compressAbove: ${size - 1} it is above the threshold and must be gzipped, but it was written with tag "${overTag}" and flags ${overBytes[3]}.`);
    if (!isDeepStrictEqual(await fresh.loadsTyped([overTag, overBytes]), sample)) throw new Error("A body gzipped just above compressAbove did not load back equal in another process.");
  },
);

/** Gzip members concatenated: each inflates 64 MiB of zeros; together `gib` GiB from about gib MB. */
function bomb(gib: number): Uint8Array {
  const member = gzipSync(Buffer.alloc(64 * 2 ** 20), { level: 9 });
  return Buffer.concat(Array.from({ length: gib * 16 }, () => member));
}

grader.excellence(
  "decoding is bounded: a body that inflates to gigabytes is refused with TOO_LARGE without inflating it all",
  { hint: "Inflate with a maxOutputLength (createSerde's maxDecodedBytes, and a sane default) and turn the RangeError into SerdeError TOO_LARGE; check plain bodies' size too.", section: "compression-and-size-limits", weight: 1, timeout: 30_000 },
  async (api, check) => {
    const limit = 2 ** 20;
    const serde = (await api.createSerde({ maxDecodedBytes: limit })) as SerdeLike;
    // A legitimate body that inflates to just under the limit: what a bounded refusal may cost at most, measured here and now.
    const fits = { text: Array.from({ length: 9000 }, (_, i) => `line ${i % 50} of a long repetitive log`).join("\n").slice(0, 900_000) };
    const [fitsTag, fitsBytes] = await dumped(serde, fits);
    let baseline = Infinity;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const back = await serde.loadsTyped([fitsTag, fitsBytes]);
      baseline = Math.min(baseline, performance.now() - started);
      if (!isDeepStrictEqual(back, fits)) throw new Error("With maxDecodedBytes of 1 MiB, a 900 KB state must still round-trip.");
    }
    // The limit is the largest body accepted: a body of exactly maxDecodedBytes (your own, measured plain) loads, one byte more is TOO_LARGE, plain or gzipped.
    const edge = { note: "y".repeat(400), n: 1n };
    const [edgeTag, edgePlain] = await dumped((await api.createSerde({ compressAbove: 1e9 })) as SerdeLike, edge);
    const size = edgePlain.length - 8;
    const [edgeGzTag, edgeGz] = await dumped((await api.createSerde({ compressAbove: 1 })) as SerdeLike, edge);
    for (const [what, typed] of [["plain", [edgeTag, edgePlain]], ["gzipped", [edgeGzTag, edgeGz]]] as const) {
      const exact = (await api.createSerde({ maxDecodedBytes: size })) as SerdeLike;
      const loaded = await thrown(async () => {
        const back = await exact.loadsTyped(typed);
        if (!isDeepStrictEqual(back, edge)) throw new Error(`it loaded as ${show(back)}`);
      });
      if (loaded !== undefined) throw new Error(`Your ${what} body of ${size} bytes (decoded) must load with maxDecodedBytes: ${size}, the largest body accepted: ${show(loaded)}.`);
      const under = (await api.createSerde({ maxDecodedBytes: size - 1 })) as SerdeLike;
      expectSerdeError(api, await thrown(() => under.loadsTyped(typed)), `your ${what} body of ${size} bytes (decoded) under maxDecodedBytes: ${size - 1}`, ["TOO_LARGE"]);
    }
    const plainTooBig = await thrown(() => serde.loadsTyped(["ck", reseal(fitsBytes, { flags: 0, body: Buffer.alloc(limit + 1024, 0x20) })]));
    expectSerdeError(api, plainTooBig, "an uncompressed body over maxDecodedBytes", ["TOO_LARGE"]);
    // 2 GiB of zeros from about 2 MB: past any sane limit. The learner processes' memory is capped, so inflating it all fails.
    const bombed = reseal(fitsBytes, { version: api.CURRENT_VERSION, flags: 1, body: bomb(2) });
    const started = performance.now();
    const error = await thrown(() => serde.loadsTyped(["ck+gzip", bombed]));
    const took = performance.now() - started;
    expectSerdeError(api, error, "a gzipped body that inflates to 2 GiB, under maxDecodedBytes of 1 MiB", ["TOO_LARGE"]);
    const bound = 50 * baseline + 500 * check.slowness;
    if (took > bound) throw new Error(`Refusing the 2 GiB bomb took ${Math.round(took)} ms, against ${baseline.toFixed(1)} ms to load a 900 KB body: stop inflating at the limit (maxOutputLength) instead of inflating everything and measuring it afterwards.`);
    expectSerdeError(api, await thrown(() => api.loadsTyped(["ck+gzip", bombed])), "the same 2 GiB bomb given to the default loadsTyped (its default limit must be sane too)", ["TOO_LARGE"]);
  },
);

if (hiddenChecksEnabled()) await import("./serde/hidden.ts");
