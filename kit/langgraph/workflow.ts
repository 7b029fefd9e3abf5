/**
 * A real @langchain/langgraph StateGraph on a kit saver: the partial-recovery
 * workflow (plan -> fetch -> draft -> review -> publish) that a crash does not
 * restart from scratch, an approval that interrupts, and a fork from an earlier
 * checkpoint. Used by test/langgraph-graph.test.ts and `npm run demo:langgraph`.
 */
import type { RunnableConfig } from "@langchain/core/runnables";
import { Annotation, Command, END, START, StateGraph, interrupt, type BaseCheckpointSaver } from "@langchain/langgraph";

export const WorkflowState = Annotation.Root({
  topic: Annotation<string>(),
  /** Every node appends its name: the run's trace, merged by a reducer as in the kit's runtime. */
  trace: Annotation<string[]>({ reducer: (current, update) => current.concat(update), default: () => [] }),
  sources: Annotation<string[]>(),
  text: Annotation<string>(),
  approval: Annotation<string>(),
  published: Annotation<boolean>(),
});

export type WorkflowValues = typeof WorkflowState.State;

/** How often each node body ran, and a switch that makes `fetch` fail once, as a crash would. */
export interface WorkflowProbe {
  runs: Record<string, number>;
  failFetchOnce: boolean;
}

export function buildWorkflow(checkpointer: BaseCheckpointSaver, probe: WorkflowProbe = { runs: {}, failFetchOnce: false }) {
  const ran = (node: string) => void (probe.runs[node] = (probe.runs[node] ?? 0) + 1);
  return new StateGraph(WorkflowState)
    .addNode("plan", (state) => (ran("plan"), { trace: ["plan"], sources: [`${state.topic}: spec`, `${state.topic}: issues`] }))
    .addNode("fetch", (state) => {
      ran("fetch");
      if (probe.failFetchOnce) {
        probe.failFetchOnce = false;
        throw new Error("fetch: connection reset (simulated crash)");
      }
      return { trace: ["fetch"], sources: state.sources.map((s) => `${s} (fetched)`) };
    })
    .addNode("draft", (state) => (ran("draft"), { trace: ["draft"], text: `On ${state.topic}, from ${state.sources.length} sources.` }))
    .addNode("review", (state) => {
      ran("review");
      // Runs again from the top on resume: everything before interrupt() must be idempotent.
      const approval = interrupt<{ text: string }, string>({ text: state.text });
      return { trace: ["review"], approval };
    })
    .addNode("publish", (state) => (ran("publish"), { trace: ["publish"], published: state.approval === "approve" }))
    .addEdge(START, "plan")
    .addEdge("plan", "fetch")
    .addEdge("fetch", "draft")
    .addEdge("draft", "review")
    .addEdge("review", "publish")
    .addEdge("publish", END)
    .compile({ checkpointer });
}

export type Workflow = ReturnType<typeof buildWorkflow>;

export interface ScenarioStep {
  what: string;
  next: string[];
  values: Partial<WorkflowValues>;
}

/**
 * The whole story on one thread: crash in fetch, resume (plan is not run again),
 * interrupt at review, approve, then fork from the checkpoint before `draft` with
 * another topic and run that branch to its own interrupt. Returns each step's state.
 */
export async function runScenario(checkpointer: BaseCheckpointSaver, threadId: string, log: (line: string) => void = () => {}) {
  const probe: WorkflowProbe = { runs: {}, failFetchOnce: true };
  const graph = buildWorkflow(checkpointer, probe);
  const config: RunnableConfig = { configurable: { thread_id: threadId } };
  const steps: ScenarioStep[] = [];
  const record = async (what: string, at: RunnableConfig = config) => {
    const snapshot = await graph.getState(at);
    steps.push({ what, next: [...snapshot.next], values: snapshot.values as Partial<WorkflowValues> });
    log(`${what.padEnd(44)} next: [${snapshot.next.join(", ")}]  trace: ${(snapshot.values as WorkflowValues).trace?.join(" > ") ?? ""}`);
  };

  const fresh = await graph.getState(config);
  log(`a new thread: getState() gives values ${JSON.stringify(fresh.values)}, next [${fresh.next.join(", ")}]`);

  await graph.invoke({ topic: "checkpointing" }, config).catch((error: Error) => log(`run 1 crashed: ${error.message}`));
  await record("after the crash");
  await graph.invoke(null, config); // resume: plan's writes are in the checkpoint, only fetch onwards runs
  await record("resumed with invoke(null): stops at review");
  const waiting = await graph.getState(config);
  log(`review waits on interrupt(${JSON.stringify(waiting.tasks[0]?.interrupts[0]?.value)})`);
  await graph.invoke(new Command({ resume: "approve" }), config);
  await record("approved with Command({ resume })");
  const approved = (await graph.getState(config)).config;

  // Time travel: the checkpoint whose next node is `draft` (after fetch), forked with another topic.
  let beforeDraft: RunnableConfig | undefined;
  for await (const snapshot of graph.getStateHistory(config)) {
    if (snapshot.next.includes("draft")) beforeDraft = snapshot.config;
  }
  if (!beforeDraft) throw new Error("no checkpoint before draft in the history");
  const forkConfig = await graph.updateState(beforeDraft, { topic: "time travel" });
  await graph.invoke(null, forkConfig);
  await record("forked before draft, topic edited, run");
  await record("the original branch's end, still there", approved);
  return { steps, runs: probe.runs, graph, config, forkConfig };
}
