/**
 * The runtime's SqliteSaver beside LangGraph's official one
 * (@langchain/langgraph-checkpoint-sqlite), both driven through LangGraph's
 * BaseCheckpointSaver interface (ours through kit/langgraph/bridge.ts), each on
 * its own file, on a thread of 10,000 checkpoints shaped like a LangGraph run's:
 * a few channels, versions bumped by the channels a step writes, `newVersions`
 * naming them, metadata with source, step and a user field.
 *
 * Each figure is a speed ratio, official time / our time, so >= 1.0 means ours
 * is at least as fast. The two savers take turns round by round and the median
 * round counts, so a noisy neighbour slows both alike. A figure, never a test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunnableConfig } from "@langchain/core/runnables";
import { uuid6, type BaseCheckpointSaver, type Checkpoint, type CheckpointMetadata } from "@langchain/langgraph-checkpoint";
import { SqliteSaver as OfficialSqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";
import { SqliteSaver } from "../../runtime/sqlite-saver.ts";
import { toLangGraphSaver } from "../langgraph/bridge.ts";

import type { Figure } from "./run.ts";

const THREAD_CHECKPOINTS = 10_000;
const STAGES = ["draft", "review", "done"];

interface Side {
  saver: BaseCheckpointSaver;
  configs: RunnableConfig[];
}

/** Checkpoint i of a run: `messages` grows every step, `stage` changes every third, `draft` every step. */
function step(i: number, threadId: string, parent: Checkpoint | undefined): { checkpoint: Checkpoint; metadata: CheckpointMetadata; newVersions: Record<string, number> } {
  const changed = i % 3 === 0 ? ["messages", "draft", "stage"] : ["messages", "draft"];
  const versions = { ...(parent?.channel_versions as Record<string, number> | undefined) };
  for (const channel of changed) versions[channel] = (versions[channel] ?? 0) + 1;
  const checkpoint: Checkpoint = {
    v: 4,
    id: uuid6(-3),
    ts: new Date().toISOString(),
    channel_values: {
      messages: Array.from({ length: 1 + (i % 8) }, (_, m) => ({ role: m % 2 ? "ai" : "user", content: `message ${m} of step ${i} on ${threadId}` })),
      draft: `draft ${i}: ${"lorem ipsum ".repeat(8)}`,
      stage: STAGES[Math.floor(i / 3) % 3],
    },
    channel_versions: versions,
    versions_seen: { agent: { messages: versions.messages! } },
  };
  const metadata = { source: "loop", step: i, parents: {}, stage: STAGES[Math.floor(i / 3) % 3], userId: `u${i % 7}` } as CheckpointMetadata;
  return { checkpoint, metadata, newVersions: Object.fromEntries(changed.map((c) => [c, versions[c]!])) };
}

async function fill(side: Side, threadId: string, count: number): Promise<number> {
  let parentConfig: RunnableConfig = { configurable: { thread_id: threadId, checkpoint_ns: "" } };
  let parent: Checkpoint | undefined;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const { checkpoint, metadata, newVersions } = step(i, threadId, parent);
    parentConfig = await side.saver.put(parentConfig, checkpoint, metadata, newVersions);
    side.configs.push(parentConfig);
    parent = checkpoint;
  }
  return performance.now() - started;
}

async function timed(times: number, body: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < times; i++) await body(i);
  return performance.now() - started;
}

async function drain(iterable: AsyncIterable<unknown>, expected: number): Promise<void> {
  let n = 0;
  for await (const _ of iterable) n++;
  if (n !== expected) throw new Error(`bench: list returned ${n} tuples, expected ${expected}`);
}

type Operation = [name: string, run: (side: Side, round: number) => Promise<number>];

function operations(threadId: string): Operation[] {
  const latest = { configurable: { thread_id: threadId, checkpoint_ns: "" } };
  return [
    ["put (1,000 more checkpoints on the thread)", (side, round) => fill(side, `${threadId}-put-${round}`, 1_000)],
    [
      "putWrites (1,000 tasks, 2 writes each)",
      (side, round) =>
        timed(1_000, (i) => side.saver.putWrites(side.configs[(i * 7919) % THREAD_CHECKPOINTS]!, [["messages", { content: `w${i}` }], ["draft", `d${i}`]], `task-${round}-${i}`)),
    ],
    [
      "getTuple latest (1,000 calls)",
      (side) =>
        timed(1_000, async () => {
          if (!(await side.saver.getTuple(latest))) throw new Error("bench: no latest checkpoint");
        }),
    ],
    [
      "getTuple by id (1,000 calls)",
      (side) =>
        timed(1_000, async (i) => {
          if (!(await side.saver.getTuple(side.configs[(i * 104_729) % THREAD_CHECKPOINTS]!))) throw new Error("bench: checkpoint not found by id");
        }),
    ],
    ["list limit 10 (300 calls)", (side) => timed(300, () => drain(side.saver.list(latest, { limit: 10 }), 10))],
    [
      "list limit 10, filter { stage, userId } (300 calls)",
      (side) => timed(300, () => drain(side.saver.list(latest, { limit: 10, filter: { stage: "review", userId: "u3" } }), 10)),
    ],
  ];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function benchSqlite(rounds = Number(process.env.BENCH_ROUNDS ?? 3)): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "bench-sqlite-"));
  const ours = new SqliteSaver(join(dir, "ours.db"));
  const official = OfficialSqliteSaver.fromConnString(join(dir, "official.db"));
  const sides: Record<"ours" | "official", Side> = {
    ours: { saver: toLangGraphSaver(ours), configs: [] },
    official: { saver: official, configs: [] },
  };
  try {
    const threadId = "bench-thread";
    const fillMs = { ours: await fill(sides.ours, threadId, THREAD_CHECKPOINTS), official: await fill(sides.official, threadId, THREAD_CHECKPOINTS) };
    const figures: Figure[] = [
      { name: "filling the 10,000-checkpoint thread: ours", value: fillMs.ours / 1000, unit: "s" },
      { name: "filling the 10,000-checkpoint thread: official", value: fillMs.official / 1000, unit: "s" },
    ];
    for (const [name, run] of operations(threadId)) {
      const samples = { ours: [] as number[], official: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        // Alternate who goes first, so warm caches favour neither.
        const order = round % 2 === 0 ? (["ours", "official"] as const) : (["official", "ours"] as const);
        for (const who of order) samples[who].push(await run(sides[who], round));
      }
      const ratio = median(samples.official) / median(samples.ours);
      figures.push({ name: `${name}: official / ours`, value: ratio, unit: "x", goal: ">= 1.0", pass: ratio >= 1 });
    }
    return figures;
  } finally {
    ours.close();
    official.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
