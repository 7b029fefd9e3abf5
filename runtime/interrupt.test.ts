import { describe, expect, it } from "vitest";
import { GraphRuntimeError, ResumeError } from "./errors.ts";
import { END, START, StateGraph } from "./graph.ts";
import { Command, interrupt } from "./interrupt.ts";
import { MemorySaver } from "./memory-saver.ts";

type State = { action: string; answers: string[]; status: string };

const channels = () => ({
  action: { default: () => "send email" },
  answers: { reducer: (current: string[], update: string[]) => current.concat(update), default: () => [] },
  status: { default: () => "new" },
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** prepare -> review (asks a human) -> act; counts how often review's pre-interrupt code ran. */
function reviewGraph(saver = new MemorySaver()) {
  const runs = { beforeInterrupt: 0, act: 0 };
  const graph = new StateGraph<State>(channels())
    .addNode("prepare", () => ({ status: "prepared" }))
    .addNode("review", (state) => {
      runs.beforeInterrupt++; // runs again on resume: code before interrupt() must be idempotent
      const decision = interrupt<string>({ question: "approve?", action: state.action });
      return { answers: [decision], status: decision === "approve" ? "approved" : "rejected" };
    })
    .addNode("act", () => (runs.act++, { status: "done" }))
    .addEdge(START, "prepare")
    .addEdge("prepare", "review")
    .addConditionalEdges("review", (state) => (state.status === "approved" ? "act" : END))
    .addEdge("act", END)
    .compile({ checkpointer: saver });
  return { graph, runs };
}

describe("interrupt() and resume", () => {
  it("stops the run at interrupt(), reports it, and keeps the node pending", async () => {
    const { graph, runs } = reviewGraph();
    const config = { threadId: "hitl" };
    const events = await collect(graph.stream({}, config));
    expect(events).toEqual([
      { type: "update", node: "prepare", update: { status: "prepared" }, step: 0 },
      { type: "interrupt", node: "review", value: { question: "approve?", action: "send email" }, step: 1 },
    ]);
    const snapshot = await graph.getState(config);
    expect(snapshot?.next).toEqual(["review"]);
    expect(snapshot?.tasks).toEqual([{ id: expect.any(String), node: "review", interrupts: [{ value: { question: "approve?", action: "send email" } }] }]);
    expect(runs).toEqual({ beforeInterrupt: 1, act: 0 });
  });

  it("Command({ resume }) re-runs the node from its start and interrupt() returns the answer", async () => {
    const { graph, runs } = reviewGraph();
    const config = { threadId: "approve" };
    expect(await graph.invoke({}, config)).toEqual({ action: "send email", answers: [], status: "prepared" });
    expect(await graph.invoke(new Command({ resume: "approve" }), config)).toEqual({ action: "send email", answers: ["approve"], status: "done" });
    expect(runs).toEqual({ beforeInterrupt: 2, act: 1 });
    expect((await graph.getState(config))?.next).toEqual([]);
  });

  it("invoke(null) on an interrupted thread asks again instead of inventing an answer", async () => {
    const { graph, runs } = reviewGraph();
    const config = { threadId: "ask-again" };
    await graph.invoke({}, config);
    const events = await collect(graph.stream(null, config));
    expect(events).toEqual([{ type: "interrupt", node: "review", value: { question: "approve?", action: "send email" }, step: 1 }]);
    expect(runs.act).toBe(0);
  });

  it("matches several interrupt() calls in one node to the answers by order", async () => {
    const asked: string[] = [];
    const graph = new StateGraph<State>(channels())
      .addNode("form", () => {
        const name = interrupt<string>("name?");
        asked.push(`got name ${name}`);
        const email = interrupt<string>("email?");
        return { answers: [name, email] };
      })
      .addEdge(START, "form")
      .addEdge("form", END)
      .compile();
    const config = { threadId: "form" };
    expect((await collect(graph.stream({}, config))).at(-1)).toMatchObject({ type: "interrupt", value: "name?" });
    expect((await collect(graph.stream(new Command({ resume: "Ada" }), config))).at(-1)).toMatchObject({ type: "interrupt", value: "email?" });
    expect((await graph.invoke(new Command({ resume: "ada@example.com" }), config)).answers).toEqual(["Ada", "ada@example.com"]);
    expect(asked).toEqual(["got name Ada", "got name Ada"]);
  });

  it("survives a restart: a new graph and saver instance on the same store resume the interrupt", async () => {
    const saver = new MemorySaver();
    await reviewGraph(saver).graph.invoke({}, { threadId: "restart" });
    const { graph, runs } = reviewGraph(saver);
    expect((await graph.invoke(new Command({ resume: "reject" }), { threadId: "restart" })).status).toBe("rejected");
    expect(runs).toEqual({ beforeInterrupt: 1, act: 0 });
  });

  it("replaying from before an answered interrupt asks again instead of reusing the old answer", async () => {
    const { graph, runs } = reviewGraph();
    const config = { threadId: "replay-interrupt" };
    await graph.invoke({}, config);
    await graph.invoke(new Command({ resume: "approve" }), config);
    const atReview = (await collect(graph.getStateHistory(config))).find((s) => s.next[0] === "review")!;
    const events = await collect(graph.stream(null, atReview.config));
    expect(events).toEqual([{ type: "interrupt", node: "review", value: { question: "approve?", action: "send email" }, step: 1 }]);
    expect((await graph.getState(config))?.metadata.source).toBe("fork");
    expect(runs).toEqual({ beforeInterrupt: 3, act: 1 });
  });

  it("pauses parallel tasks together and gives every waiting task the answer", async () => {
    const graph = new StateGraph<State>(channels())
      .addNode("legal", () => ({ answers: [`legal: ${interrupt<string>("legal ok?")}`] }))
      .addNode("finance", () => ({ answers: [`finance: ${interrupt<string>("finance ok?")}`] }))
      .addNode("idle", () => {})
      .addEdge(START, "legal")
      .addEdge(START, "finance")
      .addEdge(START, "idle")
      .addEdge("legal", END)
      .addEdge("finance", END)
      .addEdge("idle", END)
      .compile();
    const config = { threadId: "parallel" };
    expect((await collect(graph.stream({}, config))).map((e) => (e.type === "interrupt" ? e.value : e.type))).toEqual(["update", "legal ok?", "finance ok?"]);
    expect((await graph.getState(config))?.tasks.map((t) => [t.node, t.interrupts.length])).toEqual([["legal", 1], ["finance", 1], ["idle", 0]]);
    expect((await graph.invoke(new Command({ resume: "yes" }), config)).answers).toEqual(["legal: yes", "finance: yes"]);
  });

  it("refuses a Command when no interrupt is pending, and interrupt() outside a node", async () => {
    const { graph } = reviewGraph();
    await expect(graph.invoke(new Command({ resume: "approve" }), { threadId: "fresh" })).rejects.toThrow(ResumeError);
    await graph.invoke({}, { threadId: "twice" });
    await graph.invoke(new Command({ resume: "approve" }), { threadId: "twice" });
    await expect(graph.invoke(new Command({ resume: "approve" }), { threadId: "twice" })).rejects.toThrow(
      /No interrupt is pending .*nothing, the run is finished.*invoke\(null, config\)/,
    );
    expect(() => interrupt("outside")).toThrow(GraphRuntimeError);
    expect(() => interrupt("outside")).toThrow(/outside a running node/);
  });
});
