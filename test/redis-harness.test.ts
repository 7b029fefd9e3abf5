// The graders' instrumented Redis client: the glob matcher agrees with Redis, commands and round trips are counted.
import { Redis } from "ioredis";
import { describe, expect, test } from "vitest";
import { createTestRedis, redisGlobMatch } from "../graders/harness/redis.ts";

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

describe("createTestRedis", () => {
  test("records direct and pipelined commands and counts round trips", async () => {
    const redis = await createTestRedis();
    try {
      const key = `k:${redis.runId}`;
      await redis.client.set(key, "1");
      await redis.client.pipeline().get(key).get(`${key}:missing`).exec();
      await redis.client.multi().incr(key).exec();
      expect(redis.roundTrips).toBe(3);
      expect(redis.commands.map((c) => c.name)).toEqual(["SET", "GET", "GET", "MULTI", "INCR", "EXEC"]);
      expect(await redis.client.get(key)).toBe("2");
      redis.resetCounters();
      expect(redis.commands).toEqual([]);
      expect(redis.roundTrips).toBe(0);
    } finally {
      await redis.close();
    }
  });

  test("SCAN MATCH honours backslash escapes, on the mock as on a real server", async () => {
    const redis = await createTestRedis();
    try {
      await redis.client.set(`a*${redis.runId}`, "1");
      await redis.client.set(`ab${redis.runId}`, "1");
      const found: string[] = [];
      let cursor = "0";
      do {
        const [next, keys] = await redis.client.scan(cursor, "MATCH", `a\\*${redis.runId}`, "COUNT", 100);
        cursor = next;
        found.push(...keys);
      } while (cursor !== "0");
      expect(found).toEqual([`a*${redis.runId}`]);
      expect(redis.commands.filter((c) => c.name === "SCAN").length).toBeGreaterThan(0);
    } finally {
      await redis.close();
    }
  });

  test("separate test instances have their own run id (and, on the mock, their own data); a second connection shares it", async () => {
    const first = await createTestRedis();
    const second = await createTestRedis();
    try {
      expect(first.runId).not.toBe(second.runId);
      expect(first.runId).toMatch(/^[a-z0-9]+$/); // safe inside a MATCH pattern
      await first.client.set(`shared:${first.runId}`, "1");
      // A real server is one keyspace: there the run id in every key is the isolation.
      if (first.backend === "ioredis-mock") expect(await second.client.get(`shared:${first.runId}`)).toBeNull();
      expect(await first.newClient().get(`shared:${first.runId}`)).toBe("1");
    } finally {
      await first.close();
      await second.close();
    }
  });
});
