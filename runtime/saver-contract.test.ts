// One contract, run against every saver in runtime/: what a graph relies on when it stores checkpoints.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "./errors.ts";
import { newCheckpointId } from "./ids.ts";
import { MemorySaver } from "./memory-saver.ts";
import { SqliteSaver } from "./sqlite-saver.ts";
import type { Checkpoint, CheckpointMetadata, CheckpointSaver, CheckpointTuple } from "./types.ts";

interface OpenSaver {
  saver: CheckpointSaver;
  close(): void;
}

const saverFactories: Array<[name: string, open: () => OpenSaver]> = [
  ["MemorySaver", () => ({ saver: new MemorySaver(), close: () => {} })],
  [
    "SqliteSaver",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "runtime-contract-"));
      const saver = new SqliteSaver(join(dir, "checkpoints.db"));
      return { saver, close: () => (saver.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  ],
];

function checkpoint(values: Record<string, unknown> = {}, next: string[] = []): Checkpoint {
  return { v: 1, id: newCheckpointId(), ts: new Date().toISOString(), channelValues: values, next, stateSchemaVersion: 1 };
}

function metadata(step: number, extra: Record<string, unknown> = {}): CheckpointMetadata {
  return { source: step < 0 ? "input" : "loop", step, parents: {}, ...extra };
}

async function collect(iterable: AsyncIterable<CheckpointTuple>): Promise<CheckpointTuple[]> {
  const items: CheckpointTuple[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Saves a chain of `count` checkpoints on one thread; returns their ids, oldest first. */
async function saveChain(saver: CheckpointSaver, threadId: string, count: number, extra: (step: number) => Record<string, unknown> = () => ({})) {
  const ids: string[] = [];
  for (let step = -1; step < count - 1; step++) {
    const cp = checkpoint({ step });
    await saver.put({ threadId, ...(ids.length > 0 && { checkpointId: ids.at(-1) }) }, cp, metadata(step, extra(step)));
    ids.push(cp.id);
  }
  return ids;
}

describe.each(saverFactories)("%s contract", (_name, open) => {
  let opened: OpenSaver | undefined;
  const saver = () => (opened ??= open()).saver;
  afterEach(() => {
    opened?.close();
    opened = undefined;
  });

  it("put then getTuple returns the checkpoint, its metadata, its parent config and its pending writes", async () => {
    const [first, second] = [checkpoint({ a: 1 }, ["n"]), checkpoint({ a: 2, nested: { list: [1, "x", null] } }, [])];
    await saver().put({ threadId: "t" }, first, metadata(-1));
    const saved = await saver().put({ threadId: "t", checkpointId: first.id }, second, metadata(0, { stage: "review" }));
    expect(saved).toEqual({ threadId: "t", checkpointNs: "", checkpointId: second.id });
    await saver().putWrites(saved, [["b", "task-2 first"]], "task-2");
    await saver().putWrites(saved, [["a", 10], ["b", "task-1 second"]], "task-1");
    await saver().putWrites(saved, [["__error__", { message: "boom" }]], "task-1");

    const tuple = await saver().getTuple({ threadId: "t", checkpointId: second.id });
    expect(tuple?.checkpoint).toEqual(second);
    expect(tuple?.metadata).toEqual(metadata(0, { stage: "review" }));
    expect(tuple?.parentConfig).toEqual({ threadId: "t", checkpointNs: "", checkpointId: first.id });
    // Ordered by task id, then write index (special writes have negative indexes).
    expect(tuple?.pendingWrites).toEqual([
      ["task-1", "__error__", { message: "boom" }],
      ["task-1", "a", 10],
      ["task-1", "b", "task-1 second"],
      ["task-2", "b", "task-2 first"],
    ]);
    expect((await saver().getTuple({ threadId: "t", checkpointId: first.id }))?.parentConfig).toBeUndefined();
  });

  it("getTuple without a checkpoint id returns the thread's latest; unknown threads and ids give undefined", async () => {
    const ids = await saveChain(saver(), "t", 3);
    expect((await saver().getTuple({ threadId: "t" }))?.checkpoint.id).toBe(ids[2]);
    expect(await saver().getTuple({ threadId: "other" })).toBeUndefined();
    expect(await saver().getTuple({ threadId: "t", checkpointId: newCheckpointId() })).toBeUndefined();
  });

  it("returned values are copies: mutating them does not change what is stored", async () => {
    const cp = checkpoint({ list: [1] });
    const config = await saver().put({ threadId: "t" }, cp, metadata(-1));
    (cp.channelValues.list as number[]).push(2);
    const tuple = await saver().getTuple(config);
    (tuple!.checkpoint.channelValues.list as number[]).push(3);
    expect((await saver().getTuple(config))?.checkpoint.channelValues).toEqual({ list: [1] });
  });

  it("list is newest first, `before` is exclusive and `limit` is honoured", async () => {
    const ids = await saveChain(saver(), "t", 5);
    const newestFirst = [...ids].reverse();
    expect((await collect(saver().list({ threadId: "t" }))).map((t) => t.checkpoint.id)).toEqual(newestFirst);
    const before = { threadId: "t", checkpointId: ids[3]! };
    expect((await collect(saver().list({ threadId: "t" }, { before }))).map((t) => t.checkpoint.id)).toEqual(newestFirst.slice(2));
    expect((await collect(saver().list({ threadId: "t" }, { before, limit: 2 }))).map((t) => t.checkpoint.id)).toEqual(ids.slice(1, 3).reverse());
    expect((await collect(saver().list({ threadId: "t" }, { limit: 1 }))).map((t) => t.checkpoint.id)).toEqual([ids[4]]);
  });

  it("list filters on any top-level metadata key by exact match, and `limit` counts matches", async () => {
    const ids = await saveChain(saver(), "t", 6, (step) => ({ stage: step % 2 === 0 ? "draft" : "review", userId: step < 2 ? "u1" : "u2", flagged: step === 3 }));
    const list = async (filter: Record<string, unknown>, limit?: number) =>
      (await collect(saver().list({ threadId: "t" }, { filter, ...(limit && { limit }) }))).map((t) => t.metadata.step);
    expect(await list({ stage: "review" })).toEqual([3, 1, -1]);
    expect(await list({ stage: "review", userId: "u1" })).toEqual([1, -1]);
    expect(await list({ step: 2 })).toEqual([2]);
    expect(await list({ flagged: true })).toEqual([3]);
    expect(await list({ source: "input" })).toEqual([-1]);
    expect(await list({ stage: "review" }, 2)).toEqual([3, 1]);
    expect(await list({ missingKey: "x" })).toEqual([]);
    expect(await list({ step: "2" })).toEqual([]); // exact match: a string does not equal a number
    expect(ids).toHaveLength(6);
  });

  it("list refuses a filter value it cannot match exactly, instead of ignoring it", async () => {
    await saveChain(saver(), "t", 2);
    for (const value of [{ nested: 1 }, ["a"], undefined, Number.NaN]) {
      await expect(collect(saver().list({ threadId: "t" }, { filter: { stage: value } }))).rejects.toThrow(InvalidArgumentError);
    }
    await expect(collect(saver().list({ threadId: "t" }, { filter: { stage: { a: 1 } } }))).rejects.toThrow(/filter values must be strings/);
    await expect(collect(saver().list({ threadId: "t" }, { limit: 0 }))).rejects.toThrow(/positive integer/);
    await expect(collect(saver().list({ threadId: "t" }, { before: { threadId: "t" } }))).rejects.toThrow(/before\.checkpointId/);
  });

  it("putWrites keeps the first regular write at each index: a retried task leaves one copy", async () => {
    const config = await saver().put({ threadId: "t" }, checkpoint(), metadata(-1));
    await saver().putWrites(config, [["messages", "first"], ["stage", "a"]], "task");
    await saver().putWrites(config, [["messages", "retried"], ["stage", "b"]], "task");
    await saver().putWrites(config, [["messages", "other task"]], "task-2");
    expect((await saver().getTuple(config))?.pendingWrites).toEqual([
      ["task", "messages", "first"],
      ["task", "stage", "a"],
      ["task-2", "messages", "other task"],
    ]);
  });

  it("putWrites replaces a special write at its fixed index from WRITES_IDX_MAP", async () => {
    const config = await saver().put({ threadId: "t" }, checkpoint(), metadata(-1));
    await saver().putWrites(config, [["__interrupt__", "question 1"]], "task");
    await saver().putWrites(config, [["__interrupt__", "question 2"]], "task");
    await saver().putWrites(config, [["__resume__", ["a"]]], "task");
    await saver().putWrites(config, [["__resume__", ["a", "b"]]], "task");
    await saver().putWrites(config, [["__error__", "first failure"]], "task");
    await saver().putWrites(config, [["__error__", "second failure"]], "task");
    expect((await saver().getTuple(config))?.pendingWrites).toEqual([
      ["task", "__resume__", ["a", "b"]],
      ["task", "__interrupt__", "question 2"],
      ["task", "__error__", "second failure"],
    ]);
  });

  it("threads and namespaces are isolated, and deleteThread removes one thread only", async () => {
    const a = await saver().put({ threadId: "a" }, checkpoint({ who: "a" }), metadata(-1));
    const aSub = await saver().put({ threadId: "a", checkpointNs: "sub" }, checkpoint({ who: "a/sub" }), metadata(-1));
    const b = await saver().put({ threadId: "b" }, checkpoint({ who: "b" }), metadata(-1));
    await saver().putWrites(a, [["x", 1]], "task");
    await saver().putWrites(b, [["x", 2]], "task");
    expect((await saver().getTuple({ threadId: "a" }))?.checkpoint.channelValues).toEqual({ who: "a" });
    expect((await saver().getTuple({ threadId: "a", checkpointNs: "sub" }))?.config).toEqual(aSub);
    expect(await collect(saver().list({ threadId: "a" }))).toHaveLength(1);

    await saver().deleteThread("a");
    expect(await saver().getTuple({ threadId: "a" })).toBeUndefined();
    expect(await saver().getTuple({ threadId: "a", checkpointNs: "sub" })).toBeUndefined();
    expect((await saver().getTuple({ threadId: "b" }))?.pendingWrites).toEqual([["task", "x", 2]]);
  });

  it("getTuple without threadId finds nothing; a malformed config, or putWrites without a checkpoint id, is refused saying what to pass", async () => {
    await saveChain(saver(), "t", 1);
    expect(await saver().getTuple({} as never)).toBeUndefined();
    await expect(saver().getTuple({ threadId: 7 } as never)).rejects.toThrow(/needs a config like \{ threadId/);
    await expect(saver().getTuple({ checkpointNs: 7 } as never)).rejects.toThrow(/needs a config like \{ threadId/);
    await expect(saver().put({} as never, checkpoint(), metadata(-1))).rejects.toThrow(/needs a config like \{ threadId/);
    await expect(saver().putWrites({ threadId: "t" }, [["x", 1]], "task")).rejects.toThrow(/putWrites\(\) needs config\.checkpointId/);
  });

  it("list without threadId spans every thread, and checkpointNs: null every namespace, newest first", async () => {
    const a = await saveChain(saver(), "a", 2);
    const b = await saveChain(saver(), "b", 2);
    const sub = await saver().put({ threadId: "a", checkpointNs: "sub" }, checkpoint(), metadata(-1));
    const ids = async (config: Parameters<CheckpointSaver["list"]>[0], options?: Parameters<CheckpointSaver["list"]>[1]) =>
      (await collect(saver().list(config, options))).map((t) => t.checkpoint.id);
    expect(await ids({})).toEqual([...b].reverse().concat([...a].reverse()));
    expect(await ids({ checkpointNs: null })).toEqual([sub.checkpointId!, ...[...b].reverse(), ...[...a].reverse()]);
    expect(await ids({ threadId: "a", checkpointNs: null })).toEqual([sub.checkpointId!, ...[...a].reverse()]);
    expect(await ids({ threadId: "a" })).toEqual([...a].reverse());
    expect(await ids({}, { limit: 3, before: { checkpointId: sub.checkpointId! }, filter: { source: "loop" } })).toEqual([b[1], a[1]]);
    await expect(collect(saver().list({ threadId: "" }))).rejects.toThrow(/needs a config like/);
  });

  it("stores a versioned channel once per version: with newVersions, unchanged channels come from an earlier put", async () => {
    const versioned = (values: Record<string, unknown>, versions: Record<string, number>): Checkpoint => ({ ...checkpoint(values), channelVersions: versions, versionsSeen: { node: versions } });
    const first = versioned({ big: "v1", small: 1, plain: "kept inline" }, { big: 1, small: 1 });
    const config = await saver().put({ threadId: "t" }, first, metadata(-1), { big: 1, small: 1 });
    const second = versioned({ big: "v1", small: 2, plain: "kept inline" }, { big: 1, small: 2 });
    const secondConfig = await saver().put(config, second, metadata(0), { small: 2 });
    expect((await saver().getTuple(secondConfig))?.checkpoint).toEqual(second);
    expect((await saver().getTuple(config))?.checkpoint).toEqual(first);
    // A version nobody stored is a channel without a value.
    const orphan = versioned({ big: "never stored" }, { big: 9 });
    const orphanConfig = await saver().put({ threadId: "t2" }, orphan, metadata(-1), {});
    expect((await saver().getTuple(orphanConfig))?.checkpoint.channelValues).toEqual({});
  });
});
