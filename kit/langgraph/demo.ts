/**
 * npm run demo:langgraph: a real @langchain/langgraph StateGraph (kit/langgraph/workflow.ts)
 * crashes, resumes, waits for approval and is time-travelled, and the partial-recovery order
 * workflow (kit/langgraph/order.ts) charges exactly once across a crash, on two kit savers through
 * the bridge: the runtime SqliteSaver on a file, and the reference RedisSaver on
 * redis-server when REDIS_URL is set (ioredis-mock otherwise).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { SqliteSaver } from "#runtime";
import { RedisSaver } from "../../solutions/lesson-11/scan-indexing/index.ts";
import { toLangGraphSaver } from "./bridge.ts";
import { runOrderScenario } from "./order.ts";
import { runScenario } from "./workflow.ts";

const dir = mkdtempSync(join(tmpdir(), "demo-langgraph-"));
const sqlite = new SqliteSaver(join(dir, "checkpoints.db"));
const redisUrl = process.env.REDIS_URL;
const redis = redisUrl ? new Redis(redisUrl) : (new RedisMock() as unknown as Redis);
const threadId = `demo-${Date.now().toString(36)}`;
try {
  for (const [name, saver] of [
    [`runtime SqliteSaver (${join(dir, "checkpoints.db")})`, sqlite],
    [`reference RedisSaver (${redisUrl ?? "ioredis-mock"})`, new RedisSaver(redis)],
  ] as const) {
    console.log(`\n== LangGraph StateGraph on the ${name}`);
    const { runs } = await runScenario(toLangGraphSaver(saver), threadId, (line) => console.log(`  ${line}`));
    console.log(`  node bodies run: ${Object.entries(runs).map(([node, n]) => `${node} ${n}`).join(", ")}`);
    await saver.deleteThread(threadId);
    console.log(`\n== the partial-recovery order workflow on the ${name}`);
    const order = await runOrderScenario(toLangGraphSaver(saver), threadId, (line) => console.log(`  ${line}`));
    console.log(`  payments executed: ${order.provider.executed("payments").length} (one per branch), calls: ${order.provider.calls.filter((c) => c.service === "payments").length}`);
    await saver.deleteThread(threadId);
  }
} finally {
  sqlite.close();
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
