// The graders' Redis backend: the glob matcher agrees with Redis; every command of every learner connection is
// recorded at the backend; the mock behaves like redis-server where the lessons teach (WATCH, Lua, leases).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestRedis, type TestRedis } from "../graders/harness/redis.ts";
import { redisGlobMatch } from "../graders/harness/redis.ts";
import { servicesDir } from "../graders/harness/services.ts";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { compileLearner } from "../kit/sandbox/compile.ts";
import { detectSandbox, LearnerProcess, pathInLearner } from "../kit/sandbox/learner.ts";

/** [pattern, subject, what Redis answers] — each case checked against redis-server 7 when REDIS_URL is set. */
const GLOB_CASES: Array<[string, string, boolean]> = [
  ["checkpoint$t$*", "checkpoint$t$$id", true],
  ["checkpoint$t$*", "checkpoint$t2$$id", false],
  ["a\\*", "a*", true],
  ["a\\*", "ab", false],
  ["a*", "ab", true],
  ["h?llo", "hello", true],
  ["h?llo", "hllo", false],
  ["h[ae]llo", "hallo", true],
  ["h[ae]llo", "hillo", false],
  ["h[^e]llo", "hallo", true],
  ["h[^e]llo", "hello", false],
  ["h[a-b]llo", "hbllo", true],
  ["h[b-a]llo", "hbllo", true],
  ["h[a-b]llo", "hcllo", false],
  ["x\\[y\\]", "x[y]", true],
  ["x\\[y\\]", "xy", false],
  ["[\\]]", "]", true],
  ["[\\^a]", "^", true],
  ["a\\\\b", "a\\b", true],
  ["a\\?", "a?", true],
  ["a\\?", "ab", false],
  ["**a", "bba", true],
  ["*", "", true],
  ["", "", true],
  ["a*b*c", "axxbyyc", true],
  ["a*b*c", "axxbyy", false],
  ["[abc", "b", true],
  ["w$*$x", "w$a$b$x", true],
];

describe("redisGlobMatch follows Redis's stringmatchlen", () => {
  test.each(GLOB_CASES)("%j against %j is %s", (pattern, subject, expected) => {
    expect(redisGlobMatch(pattern, subject)).toBe(expected);
  });

  const url = process.env.REDIS_URL;
  // Skipped only off CI without a server; on CI a missing server is a failure.
  const realServerTest = !url && process.env.CI !== "true" ? test.skip : test;
  realServerTest("agrees with a real redis-server on every case (needs REDIS_URL; required when CI=true)", async () => {
    if (!url) throw new Error("CI=true but REDIS_URL is unset: start redis-server and set REDIS_URL so the glob matcher is compared with Redis.");
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    const prefix = `globcheck${Date.now()}${Math.random().toString(36).slice(2)}:`;
    try {
      for (const [pattern, subject] of GLOB_CASES) {
        const key = `${prefix}${subject}`;
        await redis.set(key, "1");
        // SCAN with this pattern over the one key shows what Redis itself decides.
        const escapedPrefix = prefix.replace(/[*?[\]\\]/g, "\\$&");
        let cursor = "0";
        const seen: string[] = [];
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${escapedPrefix}${pattern}`, "COUNT", 1000);
          cursor = next;
          seen.push(...keys);
        } while (cursor !== "0");
        expect(seen.includes(key), `Redis on ${JSON.stringify(pattern)} vs ${JSON.stringify(subject)}`).toBe(redisGlobMatch(pattern, subject));
        await redis.unlink(key);
      }
    } finally {
      redis.disconnect();
    }
  });
});

/** Learner-side code that drives a client the way submissions do (and the way they try to hide commands). */
const DRIVER = `
import type { Redis } from "ioredis";
export async function hiddenKeys(client: Redis) {
  const other = client.duplicate();
  await other.keys("*");
  await client.pipeline([["keys", "*"], ["get", "a"]]).exec();
  await client.multi([["keys", "*"]]).exec();
  await client.call("KEYS", "*");
  other.disconnect();
}
/** KEYS from inside scripts, its name built at run time so no text search finds it; results unchanged. */
export async function keysInScripts(client: Redis, key: string) {
  await client.set(key, "v");
  const walk = "local name = string.char(107, 101, 121, 115) return #redis.call(name, ARGV[1])";
  const viaEval = await client.eval(walk, 0, key);
  const sha = await client.script("LOAD", walk);
  const viaSha = await client.evalsha(sha as string, 0, key);
  const failing = await client.eval("redis.call('keys', ARGV[1]) redis.call('get', ARGV[1]) error('the script fails after its KEYS')", 0, key).then(() => "no error", () => "error");
  const returnsFalse = await client.eval("return false", 0);
  await client.del(key);
  return { viaEval, viaSha, failing, returnsFalse };
}
export async function roundTrips(client: Redis) {
  await client.set("rt", "1");
  await client.pipeline().get("rt").get("rt:missing").exec();
  await client.multi().incr("rt").exec();
  return client.get("rt");
}
/** Compare-and-set three ways, each run twice on one connection (the second WATCH must work too). */
export async function casScenarios(client: Redis, key: string) {
  const out: unknown[] = [];
  await client.set(key + ":w", "1");
  for (let i = 0; i < 2; i++) {
    await client.watch(key + ":w");
    const current = Number(await client.get(key + ":w"));
    out.push(await client.multi().set(key + ":w", String(current + 1)).exec());
  }
  const rival = client.duplicate();
  await client.watch(key + ":w");
  await rival.set(key + ":w", "99");
  out.push(await client.multi().set(key + ":w", "lost").exec());
  rival.disconnect();
  out.push(await client.get(key + ":w"));
  const cas = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";
  await client.set(key + ":l", "a");
  out.push(await client.eval(cas, 1, key + ":l", "a", "b"), await client.eval(cas, 1, key + ":l", "a", "c"), await client.get(key + ":l"));
  const sha = await client.script("LOAD", cas);
  out.push(await client.evalsha(sha as string, 1, key + ":l", "b", "d"));
  out.push(await client.set(key + ":lease", "me", "PX", 5000, "NX"), await client.set(key + ":lease", "you", "PX", 5000, "NX"));
  const ttl = await client.pttl(key + ":lease");
  out.push(ttl > 4000 && ttl <= 5000, await client.incr(key + ":fence"), await client.incr(key + ":fence"));
  // Arity is checked before a command runs, and a MULTI with a refused command is discarded whole at EXEC.
  const refused = (e: unknown) => (e as Error).message.replace(/'.*$/, "");
  out.push(await client.mget().then(() => "ran", refused));
  out.push(await client.multi().set(key + ":m", "1").call("GET").exec().then(() => "ran", (e: Error) => e.message.split(" ")[0]), await client.exists(key + ":m"));
  // A set, sorted set or hash whose last element goes is deleted, in a MULTI too (SCAN and EXISTS no longer see it).
  await client.multi().zadd(key + ":z", 0, "m").sadd(key + ":s", "m").hset(key + ":h", "f", "v").exec();
  await client.zrem(key + ":z", "m");
  await client.multi().srem(key + ":s", "m").hdel(key + ":h", "f").exec();
  out.push(await client.exists(key + ":z", key + ":s", key + ":h"));
  return out;
}
export async function scanAll(client: Redis, pattern: string) {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 100);
    cursor = next;
    found.push(...keys);
  } while (cursor !== "0");
  return found.sort();
}
/** What a submission could do to reach other checks' keys on a real server. */
export async function leaveDatabase(client: Redis) {
  const select = await client.select(1).then(() => "selected", (e) => "refused: " + (e as Error).message);
  const move = await client.set("mine", "1").then(() => client.move("mine", 1)).then(() => "moved", (e) => "refused: " + (e as Error).message);
  await client.flushall();
  return { select, move, keys: await client.dbsize() };
}
export async function tryGet(client: Redis, key: string) {
  try { return await client.get(key); } catch (e) { return "failed: " + (e as Error).message; }
}
`;

const driverDir = mkdtempSync(join(KIT_ROOT, "node_modules", ".cache", "driver-"));
const scratch = mkdtempSync(join(tmpdir(), "data-"));
let learner: LearnerProcess;
let driver: Record<string, (...args: unknown[]) => Promise<any>>;
const mode = detectSandbox().mode;

beforeAll(async () => {
  writeFileSync(join(driverDir, "index.ts"), DRIVER);
  const built = await compileLearner({ implementationDir: driverDir });
  learner = await LearnerProcess.start({ build: built, scratch, sandbox: mode, readable: [servicesDir()] });
  driver = (await learner.import(pathInLearner(built, built.unit, mode))) as typeof driver;
});
afterAll(async () => {
  await learner?.stop();
  rmSync(driverDir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

async function withRedis<T>(body: (redis: TestRedis) => Promise<T>, env?: string): Promise<T> {
  const saved = process.env.REDIS_URL;
  if (env === "mock") delete process.env.REDIS_URL;
  const redis = await createTestRedis();
  if (env === "mock" && saved) process.env.REDIS_URL = saved;
  try {
    return await body(redis);
  } finally {
    await redis.close();
  }
}

describe("createTestRedis records at the backend", () => {
  test("KEYS on a duplicate() connection, in pipeline([...]) and multi([...]) arrays and through call() is recorded", () =>
    withRedis(async (redis) => {
      await driver.hiddenKeys!(await redis.endpoint(learner));
      expect(redis.commands.filter((c) => c.name === "KEYS").length).toBe(4);
      expect(new Set(redis.commands.filter((c) => c.name === "KEYS").map((c) => c.connection)).size).toBe(2);
    }));

  test("KEYS run by a script (EVAL, EVALSHA, a failing script) is recorded as run inside it; the script's reply is unchanged", () =>
    withRedis(async (redis) => {
      const key = `ks${Math.random().toString(36).slice(2)}`;
      await redis.recordScripts(true);
      const outcome = await driver.keysInScripts!(await redis.endpoint(learner), key);
      await redis.drain();
      expect(outcome).toEqual({ viaEval: 1, viaSha: 1, failing: "error", returnsFalse: null });
      const keys = redis.commands.filter((c) => c.name === "KEYS");
      expect(keys.map((c) => [c.args[0], c.inScript])).toEqual([[key, true], [key, true], [key, true]]);
      expect(redis.commands.filter((c) => c.name === "GET" && c.inScript).map((c) => c.args)).toEqual([[key]]);
    }));

  test("round trips: a direct command is one, a pipeline one, a MULTI one; the grader's own client is not recorded", () =>
    withRedis(async (redis) => {
      await redis.client.set("rt", "5");
      const endpoint = await redis.endpoint(learner);
      redis.resetCounters();
      expect(await driver.roundTrips!(endpoint)).toBe("2");
      expect(redis.commands.map((c) => c.name)).toEqual(["SET", "GET", "GET", "MULTI", "INCR", "EXEC", "GET"]);
      expect(redis.roundTrips).toBe(4);
    }));

  test("SCAN MATCH honours backslash escapes, on the mock as on a real server", () =>
    withRedis(async (redis) => {
      const id = Math.random().toString(36).slice(2);
      await redis.client.set(`a*${id}`, "1");
      await redis.client.set(`ab${id}`, "1");
      expect(await driver.scanAll!(await redis.endpoint(learner), `a\\*${id}`)).toEqual([`a*${id}`]);
      await redis.client.unlink(`a*${id}`, `ab${id}`);
    }));

  test("an outage cuts learner connections, not the grader's; they work again afterwards", () =>
    withRedis(async (redis) => {
      await redis.client.set("o", "1");
      const endpoint = await redis.endpoint(learner, { maxRetriesPerRequest: 0 });
      redis.setOutage(true);
      expect(await driver.tryGet!(endpoint, "o")).toMatch(/^failed: /);
      expect(await redis.client.get("o")).toBe("1");
      redis.setOutage(false);
      const fresh = await redis.endpoint(learner);
      expect(await driver.tryGet!(fresh, "o")).toBe("1");
    }));

  test("separate instances have separate data on the mock", async () => {
    const saved = process.env.REDIS_URL;
    delete process.env.REDIS_URL;
    const first = await createTestRedis();
    const second = await createTestRedis();
    if (saved) process.env.REDIS_URL = saved;
    try {
      await first.client.set("shared", "1");
      expect(await second.client.get("shared")).toBeNull();
    } finally {
      await first.close();
      await second.close();
    }
  });
});

describe("on a real server each TestRedis has a database of its own", () => {
  const url = process.env.REDIS_URL;
  (!url && process.env.CI !== "true" ? test.skip : test)("two at once neither see nor delete each other's keys, and learner code cannot leave its database (needs REDIS_URL; required when CI=true)", async () => {
    if (!url) throw new Error("CI=true but REDIS_URL is unset: start redis-server and set REDIS_URL.");
    const first = await createTestRedis();
    const second = await createTestRedis();
    try {
      expect(first.backend).toBe("redis-server");
      await first.client.set("cpx:all", "first's");
      await second.client.set("cpx:all", "second's");
      expect(await first.client.get("cpx:all")).toBe("first's");
      const outcome = await driver.leaveDatabase!(await second.endpoint(learner));
      expect(outcome.select).toMatch(/^refused: /);
      expect(outcome.move).toMatch(/^refused: /);
      expect(outcome.keys).toBe(0); // FLUSHALL emptied the learner's own database
      expect(await first.client.get("cpx:all"), "a learner's FLUSHALL reached another check's database").toBe("first's");
      await second.close();
      expect(await first.client.get("cpx:all"), "closing one TestRedis deleted another's key").toBe("first's");
      const fresh = await createTestRedis();
      try {
        expect(await fresh.client.dbsize(), "a database is handed on with a previous run's keys").toBe(0);
      } finally {
        await fresh.close();
      }
    } finally {
      await first.close();
      await second.close().catch(() => undefined);
    }
  });
});

describe("the mock agrees with redis-server where the lessons teach", () => {
  const expected = [[[null, "OK"]], [[null, "OK"]], null, "99", 1, 0, "b", 1, "OK", null, true, 1, 2, "ERR wrong number of arguments for ", "EXECABORT", 0, 0];
  test("WATCH/MULTI compare-and-set (twice on one connection), a Lua CAS, EVALSHA and a SET NX PX lease on the mock", () =>
    withRedis(async (redis) => expect(await driver.casScenarios!(await redis.endpoint(learner), `cas${Math.random().toString(36).slice(2)}`)).toEqual(expected), "mock"));
  const url = process.env.REDIS_URL;
  (!url && process.env.CI !== "true" ? test.skip : test)("the same scenario gives the same results on redis-server (needs REDIS_URL; required when CI=true)", () => {
    if (!url) throw new Error("CI=true but REDIS_URL is unset: start redis-server and set REDIS_URL.");
    return withRedis(async (redis) => {
      expect(redis.backend).toBe("redis-server");
      expect(await driver.casScenarios!(await redis.endpoint(learner), `cas${Math.random().toString(36).slice(2)}`)).toEqual(expected);
    });
  });
});
