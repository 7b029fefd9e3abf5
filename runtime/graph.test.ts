import { describe, expect, it } from "vitest";
import {
  GraphDefinitionError,
  GraphRecursionError,
  InvalidArgumentError,
  InvalidUpdateError,
  ResumeError,
  StateSchemaMismatchError,
} from "./errors.ts";
import { END, START, StateGraph } from "./graph.ts";
import { taskIdFor } from "./ids.ts";
import { MemorySaver } from "./memory-saver.ts";
import type { StateSnapshot, StreamEvent } from "./pregel.ts";

type State = { log: string[]; stage: string; count: number };

const channels = () => ({
  log: { reducer: (current: string[], update: string[]) => current.concat(update), default: () => [] },
  stage: { default: () => "start" },
  count: { default: () => 0 },
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Counts how often each node body ran. */
function counter() {
  const runs = new Map<string, number>();
  return { hit: (node: string) => runs.set(node, (runs.get(node) ?? 0) + 1), of: (node: string) => runs.get(node) ?? 0 };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("state and routing", () => {
  it("merges updates through reducers and overwrites channels without one, across nodes and across turns", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("a", () => ({ log: ["a"], stage: "after a" }))
      .addNode("b", (state) => ({ log: ["b"], count: state.count + 1 }))
      .addEdge(START, "a")
      .addEdge("a", "b")
      .addEdge("b", END)
      .compile();
    const config = { threadId: "turns" };
    expect(await graph.invoke({ log: ["user 1"] }, config)).toEqual({ log: ["user 1", "a", "b"], stage: "after a", count: 1 });
    // A second input on the same thread starts from START on top of the previous state.
    expect(await graph.invoke({ log: ["user 2"], stage: "reset" }, config)).toEqual({
      log: ["user 1", "a", "b", "user 2", "a", "b"],
      stage: "after a",
      count: 2,
    });
  });

  it("follows conditional edges, including END and a loop back", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("work", (state) => ({ count: state.count + 1, log: [`work ${state.count + 1}`] }))
      .addNode("review", () => ({ log: ["review"] }))
      .addEdge(START, "work")
      .addConditionalEdges("work", (state) => (state.count < 3 ? "work" : state.stage === "skip-review" ? END : "review"))
      .addEdge("review", END)
      .compile();
    expect((await graph.invoke({}, { threadId: "loop" })).log).toEqual(["work 1", "work 2", "work 3", "review"]);
    expect((await graph.invoke({ stage: "skip-review" }, { threadId: "skip" })).log).toEqual(["work 1", "work 2", "work 3"]);
  });

  it("fans out: parallel nodes of one step run concurrently and their writes apply in task order", async () => {
    const bothStarted = { b: deferred(), c: deferred() };
    const graph = new StateGraph<State>(channels())
      .addNode("a", () => ({ log: ["a"] }))
      .addNode("b", async () => {
        bothStarted.b.resolve();
        await bothStarted.c.promise;
        await new Promise((r) => setTimeout(r, 5)); // b finishes after c
        return { log: ["b"] };
      })
      .addNode("c", async () => {
        bothStarted.c.resolve();
        await bothStarted.b.promise;
        return { log: ["c"] };
      })
      .addNode("join", () => ({ log: ["join"] }))
      .addEdge(START, "a")
      .addConditionalEdges("a", () => ["b", "c"])
      .addEdge("b", "join")
      .addEdge("c", "join")
      .addEdge("join", END)
      .compile();
    const config = { threadId: "fan-out" };
    expect((await graph.invoke({}, config)).log).toEqual(["a", "b", "c", "join"]);
    const steps = (await collect(graph.getStateHistory(config))).reverse().map((s) => [s.metadata.node, s.next]);
    expect(steps).toEqual([
      [undefined, ["a"]],
      ["a", ["b", "c"]],
      ["b,c", ["join"]],
      ["join", []],
    ]);
  });

  it("rejects a router that returns an unknown node, naming the valid ones", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("a", () => ({}))
      .addEdge(START, "a")
      .addConditionalEdges("a", () => "nowhere")
      .compile();
    await expect(graph.invoke({}, { threadId: "t" })).rejects.toThrow(/router of "a" returned "nowhere".*"a", END/);
  });
});

describe("checkpoints", () => {
  const linear = () =>
    new StateGraph<State>(channels())
      .addNode("plan", () => ({ stage: "planned" }))
      .addNode("write", () => ({ log: ["draft"] }))
      .addEdge(START, "plan")
      .addEdge("plan", "write")
      .addEdge("write", END);

  it("writes an input checkpoint at step -1 whose next is START's successors, then one per step with metadata", async () => {
    const graph = linear().compile();
    const config = { threadId: "meta" };
    await graph.invoke({ log: ["hi"] }, config, { metadata: { userId: "u1", stage: "drafting" } });
    const history = await collect(graph.getStateHistory(config));
    expect(history.map((s) => s.metadata)).toEqual([
      { userId: "u1", stage: "drafting", source: "loop", step: 1, node: "write", parents: {} },
      { userId: "u1", stage: "drafting", source: "loop", step: 0, node: "plan", parents: {} },
      { userId: "u1", stage: "drafting", source: "input", step: -1, parents: {} },
    ]);
    expect(history.map((s) => s.next)).toEqual([[], ["write"], ["plan"]]);
    expect(history[2]?.values).toEqual({ log: ["hi"], stage: "start", count: 0 });
    // Parent pointers chain the history.
    expect(history[0]?.parentConfig).toEqual(history[1]?.config);
    expect(history[1]?.parentConfig).toEqual(history[2]?.config);
  });

  it("streams an update per node, then the final state", async () => {
    const events = await collect(linear().compile().stream({}, { threadId: "stream" }));
    expect(events).toEqual<StreamEvent<State>[]>([
      { type: "update", node: "plan", update: { stage: "planned" }, step: 0 },
      { type: "update", node: "write", update: { log: ["draft"] }, step: 1 },
      { type: "final", state: { log: ["draft"], stage: "planned", count: 0 } },
    ]);
  });

  it("resuming a finished thread returns its final state and runs nothing", async () => {
    const runs = counter();
    const graph = new StateGraph<State>(channels())
      .addNode("only", () => (runs.hit("only"), { count: 7 }))
      .addEdge(START, "only")
      .addEdge("only", END)
      .compile();
    const config = { threadId: "done" };
    const final = await graph.invoke({}, config);
    const checkpointsBefore = (await collect(graph.getStateHistory(config))).length;
    expect(await graph.invoke(null, config)).toEqual(final);
    expect(await collect(graph.stream(null, config))).toEqual([{ type: "final", state: final }]);
    expect(runs.of("only")).toBe(1);
    expect(await collect(graph.getStateHistory(config))).toHaveLength(checkpointsBefore);
  });

  it("reuses the saved writes of parallel tasks that finished when a sibling failed; only the failed one re-runs", async () => {
    const runs = counter();
    let failNext = true;
    const saver = new MemorySaver();
    const graph = new StateGraph<State>(channels())
      .addNode("fast", () => (runs.hit("fast"), { log: ["fast"] }))
      .addNode("quiet", () => void runs.hit("quiet")) // returns nothing: still counts as finished
      .addNode("flaky", () => {
        runs.hit("flaky");
        if (failNext) throw new Error("upstream timeout");
        return { log: ["flaky"] };
      })
      .addEdge(START, "fast")
      .addEdge(START, "quiet")
      .addEdge(START, "flaky")
      .addEdge("fast", END)
      .addEdge("quiet", END)
      .addEdge("flaky", END)
      .compile({ checkpointer: saver });
    const config = { threadId: "partial" };

    await expect(graph.invoke({}, config)).rejects.toThrow("upstream timeout");
    const input = (await saver.getTuple(config))!;
    const flakyTask = taskIdFor(input.checkpoint.id, "flaky");
    expect(input.pendingWrites).toContainEqual([flakyTask, "__error__", { name: "Error", message: "upstream timeout" }]);
    expect(input.pendingWrites).toContainEqual([taskIdFor(input.checkpoint.id, "fast"), "log", ["fast"]]);

    failNext = false;
    expect((await graph.invoke(null, config)).log).toEqual(["fast", "flaky"]);
    expect([runs.of("fast"), runs.of("quiet"), runs.of("flaky")]).toEqual([1, 1, 2]);
  });

  it("gives a task the same id on every attempt: a hash of its checkpoint id and node", async () => {
    const seen: Array<{ taskId: string; checkpointId: string }> = [];
    let attempts = 0;
    const graph = new StateGraph<State>(channels())
      .addNode("step", (_state, ctx) => {
        seen.push({ taskId: ctx.taskId, checkpointId: ctx.checkpointId });
        if (++attempts === 1) throw new Error("first attempt fails");
        return {};
      })
      .addEdge(START, "step")
      .addEdge("step", END)
      .compile();
    await expect(graph.invoke({}, { threadId: "ids" })).rejects.toThrow("first attempt fails");
    await graph.invoke(null, { threadId: "ids" });
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[0]?.taskId).toBe(taskIdFor(seen[0]!.checkpointId, "step"));
    expect(taskIdFor(seen[0]!.checkpointId, "other")).not.toBe(seen[0]?.taskId);
  });

  it("forks from an earlier checkpoint: a new branch whose parent is that id, the old history intact", async () => {
    const graph = linear().compile();
    const config = { threadId: "fork" };
    await graph.invoke({ log: ["original"] }, config);
    const original = await collect(graph.getStateHistory(config));
    const afterPlan = original.find((s) => s.metadata.step === 0)!;

    const edited = await graph.updateState(afterPlan.config, { log: ["edited"] });
    const forkedFinal = await graph.invoke(null, edited);
    expect(forkedFinal.log).toEqual(["original", "edited", "draft"]);

    const all = await collect(graph.getStateHistory(config));
    expect(all).toHaveLength(original.length + 2);
    for (const snapshot of original) expect(all).toContainEqual(snapshot);
    const branch = await collect(graph.getStateHistory((await graph.getState(config))!.config));
    expect(branch.map((s) => s.metadata.source)).toEqual(["loop", "update", "loop", "input"]);
    expect(branch[1]?.parentConfig).toEqual(afterPlan.config);
    // The original branch is still reachable from its own head.
    const originalBranch = await collect(graph.getStateHistory(original[0]!.config));
    expect(originalBranch.map((s) => s.config.checkpointId)).toEqual(original.map((s) => s.config.checkpointId));
    expect(await collect(graph.getStateHistory(original[0]!.config, { limit: 2 }))).toEqual(original.slice(0, 2));
    await expect(collect(graph.getStateHistory(original[0]!.config, { filter: {} }))).rejects.toThrow(/drop checkpointId/);

  });

  it("replays from a checkpoint the thread has moved past: a \"fork\" copy, and its nodes run again", async () => {
    const runs = counter();
    const graph = new StateGraph<State>(channels())
      .addNode("plan", () => (runs.hit("plan"), { stage: "planned" }))
      .addNode("write", () => (runs.hit("write"), { log: [`draft ${runs.of("write")}`] }))
      .addEdge(START, "plan")
      .addEdge("plan", "write")
      .addEdge("write", END)
      .compile();
    const config = { threadId: "replay" };
    await graph.invoke({}, config);
    const original = await collect(graph.getStateHistory(config));
    const afterPlan = original.find((s) => s.metadata.step === 0)!;

    expect((await graph.invoke(null, afterPlan.config)).log).toEqual(["draft 2"]);
    expect([runs.of("plan"), runs.of("write")]).toEqual([1, 2]);
    const branch = await collect(graph.getStateHistory((await graph.getState(config))!.config));
    expect(branch.map((s) => [s.metadata.source, s.metadata.step])).toEqual([["loop", 1], ["fork", 0], ["loop", 0], ["input", -1]]);
    expect(branch[1]?.parentConfig).toEqual(afterPlan.config);
    expect(await collect(graph.getStateHistory(original[0]!.config))).toEqual(original);

    // Replaying a finished checkpoint is a no-op, as is resuming the head by its id.
    const head = (await graph.getState(config))!;
    expect(await graph.invoke(null, original[0]!.config)).toEqual(original[0]!.values);
    expect(await graph.invoke(null, head.config)).toEqual(head.values);
    expect(runs.of("write")).toBe(2);
  });

  it("resumes by explicit id when that id is still the thread's latest, reusing its pending writes", async () => {
    const runs = counter();
    let fail = true;
    const graph = new StateGraph<State>(channels())
      .addNode("ok", () => (runs.hit("ok"), { log: ["ok"] }))
      .addNode("flaky", () => {
        runs.hit("flaky");
        if (fail) throw new Error("flaky");
        return {};
      })
      .addEdge(START, "ok")
      .addEdge(START, "flaky")
      .addEdge("ok", END)
      .addEdge("flaky", END)
      .compile();
    await expect(graph.invoke({}, { threadId: "by-id" })).rejects.toThrow("flaky");
    const head = (await graph.getState({ threadId: "by-id" }))!;
    fail = false;
    await graph.invoke(null, head.config);
    expect([runs.of("ok"), runs.of("flaky")]).toEqual([1, 2]);
    expect((await graph.getState({ threadId: "by-id" }))?.parentConfig).toEqual(head.config);
  });

  it("updateState as a node moves `next` to that node's successors", async () => {
    const graph = linear().compile();
    const config = { threadId: "update" };
    await expect(graph.invoke({}, config, { recursionLimit: 1 })).rejects.toThrow(GraphRecursionError);
    expect((await graph.getState(config))?.next).toEqual(["write"]);
    await graph.updateState(config, { stage: "skipped" }, "write");
    const snapshot = (await graph.getState(config)) as StateSnapshot<State>;
    expect([snapshot.next, snapshot.metadata.source, snapshot.metadata.node, snapshot.values.stage]).toEqual([[], "update", "write", "skipped"]);
  });
});

describe("state schema version", () => {
  const build = (version: number, migrate?: (state: Record<string, unknown>, from: number) => State) =>
    new StateGraph<State>(channels())
      .addNode("first", () => ({ log: ["first"] }))
      .addNode("second", (state) => ({ log: [`second saw stage=${state.stage}`] }))
      .addEdge(START, "first")
      .addEdge("first", "second")
      .addEdge("second", END)
      .compile({ checkpointer: saver, stateSchemaVersion: version, ...(migrate && { migrate }) });
  const saver = new MemorySaver();

  it("refuses to resume a checkpoint of another version unless migrate is given", async () => {
    const config = { threadId: "schema" };
    await expect(build(1).invoke({}, config, { recursionLimit: 1 })).rejects.toThrow(GraphRecursionError);
    await expect(build(2).invoke(null, config)).rejects.toThrow(StateSchemaMismatchError);
    await expect(build(2).invoke(null, config)).rejects.toThrow(/version 1.*version 2.*migrate/);

    const migrations: number[] = [];
    const migrated = build(2, (state, from) => (migrations.push(from), { ...(state as State), stage: "migrated" }));
    expect((await migrated.invoke(null, config)).log).toEqual(["first", "second saw stage=migrated"]);
    expect(migrations).toEqual([1]);
    expect((await saver.getTuple(config))?.checkpoint.stateSchemaVersion).toBe(2);
  });
});

describe("errors that say how to fix the call", () => {
  const graphWithNode = () => new StateGraph<State>(channels()).addNode("plan", () => ({}));

  it("names an unknown node in addEdge and lists the known ones", () => {
    expect(() => graphWithNode().addEdge("plan", "wirte")).toThrow(GraphDefinitionError);
    expect(() => graphWithNode().addEdge("plan", "wirte")).toThrow(/no node named "wirte".*addNode\(\).*"plan", END/);
    expect(() => graphWithNode().addEdge("nope", "plan")).toThrow(/no node named "nope"/);
    expect(() => graphWithNode().addNode("plan", () => ({}))).toThrow(/already exists/);
    expect(() => graphWithNode().addNode("__start__", () => ({}))).toThrow(/reserved/);
  });

  it("refuses to compile a graph without an entry or with a dead-end node", () => {
    expect(() => graphWithNode().addEdge("plan", END).compile()).toThrow(/no entry: add addEdge\(START/);
    expect(() => graphWithNode().addEdge(START, "plan").compile()).toThrow(/"plan" has no outgoing edge: add addEdge\("plan", END\)/);
  });

  it("asks for a threadId, and for an input on an empty thread", async () => {
    const graph = graphWithNode().addEdge(START, "plan").addEdge("plan", END).compile();
    await expect(graph.invoke({}, {} as never)).rejects.toThrow(InvalidArgumentError);
    await expect(graph.invoke({}, { threadId: "" })).rejects.toThrow(/invoke\(\) needs a config like \{ threadId/);
    await expect(graph.invoke(null, { threadId: "empty" })).rejects.toThrow(ResumeError);
    await expect(graph.invoke(null, { threadId: "empty" })).rejects.toThrow(/no checkpoint yet.*invoke\(\{ \.\.\. \}, \{ threadId: "empty" \}\)/);
    await expect(graph.invoke(null, { threadId: "empty", checkpointId: "missing" })).rejects.toThrow(/no checkpoint missing/);
    await expect(graph.invoke({}, { threadId: "t" }, { metadata: { step: 3 } })).rejects.toThrow(/may not set step/);
    expect(await graph.getState({ threadId: "empty" })).toBeUndefined();
  });

  it("rejects updates to channels the state does not have", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("bad", () => ({ stag: "typo" }) as never)
      .addEdge(START, "bad")
      .addEdge("bad", END)
      .compile();
    await expect(graph.invoke({ nope: 1 } as never, { threadId: "t1" })).rejects.toThrow(/input wrote unknown channel\(s\) nope; the state has: log, stage, count/);
    await expect(graph.invoke({}, { threadId: "t2" })).rejects.toThrow(InvalidUpdateError);
  });

  it("stops a routing loop at recursionLimit, and the run can continue from there", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("spin", (state) => ({ count: state.count + 1 }))
      .addEdge(START, "spin")
      .addConditionalEdges("spin", (state) => (state.count < 30 ? "spin" : END))
      .compile();
    const config = { threadId: "spin" };
    await expect(graph.invoke({}, config)).rejects.toThrow(/Ran 25 super-steps without reaching END.*recursionLimit/);
    expect((await graph.invoke(null, config)).count).toBe(30);
  });
});
