import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { END, START, StateGraph } from "./graph.ts";
import { newCheckpointId } from "./ids.ts";
import { Command, interrupt } from "./interrupt.ts";
import { SqliteSaver } from "./sqlite-saver.ts";

let dir: string;
let file: string;
const opened: Array<{ close(): void }> = [];
const open = <T extends { close(): void }>(closable: T): T => (opened.push(closable), closable);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "runtime-sqlite-"));
  file = join(dir, "checkpoints.db");
});
afterEach(() => {
  for (const closable of opened.splice(0)) closable.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("SqliteSaver on a real file", () => {
  it("puts the file in WAL mode with a busy timeout", () => {
    open(new SqliteSaver(file));
    // WAL is a property of the file: a plain connection opened afterwards sees it.
    const raw = open(new Database(file));
    expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(open(new SqliteSaver(file)).db.pragma("busy_timeout", { simple: true })).toBe(5000);
  });

  it("keeps checkpoints and writes across saver instances on the same file", async () => {
    const writer = open(new SqliteSaver(file));
    const checkpoint = { v: 1 as const, id: newCheckpointId(), ts: new Date().toISOString(), channelValues: { n: 1 }, next: ["a"] };
    const config = await writer.put({ threadId: "t" }, checkpoint, { source: "input", step: -1, userId: "u1" });
    await writer.putWrites(config, [["n", 2]], "task");
    writer.close();
    opened.length = 0;

    const reader = open(new SqliteSaver(file));
    const tuple = await reader.getTuple({ threadId: "t" });
    expect(tuple?.checkpoint).toEqual(checkpoint);
    expect(tuple?.metadata).toEqual({ source: "input", step: -1, userId: "u1" });
    expect(tuple?.pendingWrites).toEqual([["task", "n", 2]]);
  });

  it("lets a graph paused by one process's saver be resumed through another", async () => {
    type State = { answer: string };
    const build = (saver: SqliteSaver) =>
      new StateGraph<State>({ answer: { default: () => "" } })
        .addNode("ask", () => ({ answer: interrupt<string>("continue?") }))
        .addEdge(START, "ask")
        .addEdge("ask", END)
        .compile({ checkpointer: saver });
    await build(open(new SqliteSaver(file))).invoke({}, { threadId: "paused" });
    const resumed = await build(open(new SqliteSaver(file))).invoke(new Command({ resume: "yes" }), { threadId: "paused" });
    expect(resumed).toEqual({ answer: "yes" });
  });
});
