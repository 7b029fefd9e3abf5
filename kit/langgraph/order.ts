/**
 * The partial-recovery unit's order workflow as a real @langchain/langgraph StateGraph:
 * quote -> charge -> notify -> summarize, where charge and notify reach a provider that
 * deduplicates by idempotency key, as a payment API does.
 *
 * The key is the thread id plus LangGraph's task id (`config.executionInfo.taskId`). LangGraph
 * derives a task id from the checkpoint that scheduled the task (a uuid5 of the namespace, the
 * step, the node and its trigger, namespaced by that checkpoint's id: `_prepareSingleTask` in
 * libs/langgraph-core/src/pregel/algo.ts of langchain-ai/langgraphjs), so it has the two properties the lesson asks of a key:
 * the same when that checkpoint is resumed after a crash, different on another thread, a later
 * loop iteration or a fork (a new checkpoint). Used by test/langgraph-graph.test.ts and
 * `npm run demo:langgraph`.
 */
import type { RunnableConfig } from "@langchain/core/runnables";
import { Annotation, END, START, StateGraph, type BaseCheckpointSaver, type LangGraphRunnableConfig } from "@langchain/langgraph";

export const OrderState = Annotation.Root({
  orderId: Annotation<string>(),
  amount: Annotation<number>(),
  total: Annotation<number>(),
  receipt: Annotation<string>(),
  emailId: Annotation<string>(),
  summary: Annotation<string>(),
});

export type OrderValues = typeof OrderState.State;

/** A provider with an idempotency-key API: a key seen before returns the first result and executes nothing. */
export class Provider {
  readonly calls: Array<{ service: string; key: string; about: string; deduplicated: boolean }> = [];

  /** Results are numbered per service (`payments#1`): a second real execution shows in the state. */
  call(service: string, key: string, about: string): string {
    const executed = this.executed(service);
    const earlier = executed.findIndex((c) => c.key === key);
    this.calls.push({ service, key, about, deduplicated: earlier >= 0 });
    return `${service}#${earlier >= 0 ? earlier + 1 : executed.length + 1}`;
  }

  executed(service: string) {
    return this.calls.filter((c) => c.service === service && !c.deduplicated);
  }
}

export interface OrderProbe {
  runs: Record<string, number>;
  /** The process dies right after the provider took the charge, before LangGraph saved the step. */
  crashAfterCharge: boolean;
}

/** The order's total with 8% tax, rounded to cents. */
const withTax = (amount: number) => Math.round(amount * 108) / 100;

/** The stable key of the effect this node run performs: the thread and LangGraph's task id. */
function idempotencyKey(config: LangGraphRunnableConfig): string {
  const info = config.executionInfo;
  if (!info) throw new Error("no executionInfo: this node is not running inside a LangGraph task");
  return `${info.threadId}:${info.taskId}`;
}

export function buildOrderWorkflow(checkpointer: BaseCheckpointSaver, provider: Provider, probe: OrderProbe = { runs: {}, crashAfterCharge: false }) {
  const ran = (node: string) => void (probe.runs[node] = (probe.runs[node] ?? 0) + 1);
  return new StateGraph(OrderState)
    .addNode("quote", (state) => (ran("quote"), { total: withTax(state.amount) }))
    .addNode("charge", (state, config) => {
      ran("charge");
      const receipt = provider.call("payments", idempotencyKey(config), `charge ${state.total} for ${state.orderId}`);
      if (probe.crashAfterCharge) {
        probe.crashAfterCharge = false;
        throw new Error("the process died after the provider charged (simulated)");
      }
      return { receipt };
    })
    .addNode("notify", (state, config) => (ran("notify"), { emailId: provider.call("email", idempotencyKey(config), `receipt ${state.receipt}`) }))
    .addNode("summarize", (state) => (ran("summarize"), { summary: `${state.orderId}: ${state.total} paid (${state.receipt}), confirmation ${state.emailId}` }))
    .addEdge(START, "quote")
    .addEdge("quote", "charge")
    .addEdge("charge", "notify")
    .addEdge("notify", "summarize")
    .addEdge("summarize", END)
    .compile({ checkpointer });
}

/**
 * On one thread: the run dies right after the charge reached the provider; the resume runs
 * charge again with the same key (the provider executes nothing), and the run completes. Then
 * a fork from the checkpoint before charge, with a corrected amount, is a new branch: its charge
 * has a new key and is a separate effect, while the original branch stays as it was.
 */
export async function runOrderScenario(checkpointer: BaseCheckpointSaver, threadId: string, log: (line: string) => void = () => {}) {
  const provider = new Provider();
  const probe: OrderProbe = { runs: {}, crashAfterCharge: true };
  const graph = buildOrderWorkflow(checkpointer, provider, probe);
  const config: RunnableConfig = { configurable: { thread_id: threadId } };

  await graph.invoke({ orderId: "order-42", amount: 100 }, config).catch((error: Error) => log(`run 1 crashed: ${error.message}`));
  log(`after the crash: next [${(await graph.getState(config)).next.join(", ")}], payments executed ${provider.executed("payments").length}`);
  const completed = (await graph.invoke(null, config)) as OrderValues;
  const originalEnd = (await graph.getState(config)).config;
  const [first, retry] = provider.calls.filter((c) => c.service === "payments");
  log(`resumed: charge ran again with ${retry?.key === first?.key ? "the same key" : "ANOTHER key"} (deduplicated: ${retry?.deduplicated}); ${completed.summary}`);

  let beforeCharge: RunnableConfig | undefined;
  for await (const snapshot of graph.getStateHistory(config)) {
    if (snapshot.next.includes("charge")) beforeCharge = snapshot.config;
  }
  if (!beforeCharge) throw new Error("no checkpoint before charge in the history");
  const forkConfig = await graph.updateState(beforeCharge, { amount: 90, total: withTax(90) });
  const forked = (await graph.invoke(null, forkConfig)) as OrderValues;
  log(`forked before charge with amount 90: a new key, a separate charge; ${forked.summary}`);
  const original = (await graph.getState(originalEnd)).values as OrderValues;
  return { provider, runs: probe.runs, completed, forked, original, graph, config };
}
