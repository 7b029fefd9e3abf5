/**
 * LangGraph's own checkpointer conformance suite (@langchain/langgraph-checkpoint-validation,
 * 718 tests per saver, run through its exported validate(): its CLI is broken in 1.1.1)
 * against the kit's savers through the bridge: the runtime MemorySaver and SqliteSaver,
 * and the reference RedisSaver on ioredis-mock and, when REDIS_URL is set, on a real
 * server (mandatory when CI=true). Saver names differ from LangGraph's own, so the
 * test the suite skips for those ("only store channel_values that have changed") runs.
 *
 * The real-server leg leases a database of REDIS_URL's server per saver, the way the
 * graders' checks do (graders/harness/redis.ts): the suite lists across every thread and
 * reuses fixed thread ids, so it needs a database nobody else writes to while it runs.
 */
import "../kit/langgraph/vitest-globals.ts";
import { validate } from "@langchain/langgraph-checkpoint-validation";
import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MemorySaver, SqliteSaver, type CheckpointSaver } from "#runtime";
import { toLangGraphSaver } from "../kit/langgraph/bridge.ts";
import { runConformance } from "../kit/langgraph/conformance.ts";
import { leasedRedisClient } from "../graders/harness/redis.ts";
import { RedisSaver } from "../solutions/lesson-11/scan-indexing/index.ts";

/** validate() with a cleanup per saver: `open` returns the kit saver and what closes it. */
function validateKitSaver(name: string, open: () => Promise<{ saver: CheckpointSaver; close(): Promise<void> | void }>): void {
  const closers = new Map<BaseCheckpointSaver, () => Promise<void> | void>();
  validate({
    checkpointerName: name,
    async createCheckpointer() {
      const { saver, close } = await open();
      const bridged = toLangGraphSaver(saver);
      closers.set(bridged, close);
      return bridged;
    },
    async destroyCheckpointer(bridged) {
      await closers.get(bridged)?.();
      closers.delete(bridged);
    },
  });
}

validateKitSaver("kit runtime MemorySaver", async () => ({ saver: new MemorySaver(), close: () => {} }));

validateKitSaver("kit runtime SqliteSaver", async () => {
  const dir = mkdtempSync(join(tmpdir(), "langgraph-conformance-"));
  const saver = new SqliteSaver(join(dir, "checkpoints.db"));
  return { saver, close: () => (saver.close(), rmSync(dir, { recursive: true, force: true })) };
});

let mockServer = 0;
validateKitSaver("kit reference RedisSaver (ioredis-mock)", async () => {
  // ioredis-mock shares data between clients of one host:port: a new pair per saver is a new, empty server.
  const client = new RedisMock({ host: `conformance-${process.pid}`, port: ++mockServer }) as unknown as Redis;
  return { saver: new RedisSaver(client), close: () => void client.disconnect() };
});

const redisUrl = process.env.REDIS_URL;
if (redisUrl) {
  validateKitSaver("kit reference RedisSaver (redis-server)", async () => {
    const { client, close } = await leasedRedisClient(redisUrl);
    return { saver: new RedisSaver(client), close };
  });
} else if (process.env.CI === "true") {
  it("CI runs the conformance suite on a real redis-server", () => {
    expect.fail("REDIS_URL is not set: .ci/run starts redis-server and exports it; with CI=true this leg is mandatory.");
  });
}

describe("runConformance (the suite as a function, for graders)", () => {
  it("counts every test of the suite as passed for the runtime MemorySaver, as validate() does", async () => {
    const result = await runConformance(() => new MemorySaver());
    expect(result.failures).toEqual([]);
    expect(result).toMatchObject({ passed: 718, failed: 0, skipped: 0, total: 718 });
  });

  it("counts failures by test: a saver that refuses list() without a thread fails exactly those 108 tests", async () => {
    class ThreadOnlyList extends MemorySaver {
      override list(...args: Parameters<MemorySaver["list"]>) {
        if (args[0].threadId === undefined) throw new Error("list() needs a thread id");
        return super.list(...args);
      }
    }
    const result = await runConformance(() => new ThreadOnlyList(), { parts: ["list"] });
    expect(result).toMatchObject({ passed: result.total - 108, failed: 108, skipped: 0 });
    expect(result.failures.every((f) => f.name.includes("thread_id is not specified") || f.name.includes("no config or options"))).toBe(true);
  });
});
