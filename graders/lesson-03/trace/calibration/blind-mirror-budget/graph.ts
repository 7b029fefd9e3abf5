/**
 * The seed's StateGraph with checkpoints: given code, except for the trace. Wire your trace
 * store into invoke() where the TODOs say (see the contract in index.ts).
 *
 * After each node the graph saves a checkpoint holding the merged state, the node to run next
 * and the number of steps done; invoke() on a task that has a checkpoint continues from it.
 */
import type { CheckpointStore } from "./checkpoint-store.ts";
import type { SqliteTraceStore, TraceType } from "./trace-store.ts";

/** The node name that marks a finished task (the seed's '__end__'). */
export const END = "__end__";

export type State = Record<string, unknown>;

/** What a node gets besides the state: its task, its step, and the graph's tools. */
export interface NodeContext {
  taskId: string;
  step: number;
  callTool(name: string, input: unknown): Promise<unknown>;
}

export type NodeFn<S> = (state: S, context: NodeContext) => Partial<S> | undefined | Promise<Partial<S> | undefined>;
export type ToolFn = (input: unknown) => unknown;
export type Router<S> = (state: S) => string;

export class StateGraph<S extends State = State> {
  private readonly nodes = new Map<string, NodeFn<S>>();
  private readonly edges = new Map<string, string | Router<S>>();
  private readonly tools = new Map<string, ToolFn>();
  private checkpoints: CheckpointStore<S> | undefined;
  private trace: SqliteTraceStore | undefined;

  addNode(name: string, fn: NodeFn<S>): this {
    this.nodes.set(name, fn);
    return this;
  }

  /** After `from`, go to `to` (a node name or END), or to whatever the router returns. */
  addEdge(from: string, to: string | Router<S>): this {
    this.edges.set(from, to);
    return this;
  }

  addTool(name: string, fn: ToolFn): this {
    this.tools.set(name, fn);
    return this;
  }

  withCheckpoint(store: CheckpointStore<S>): this {
    this.checkpoints = store;
    return this;
  }

  /** Every invoke() from now on records its trace in this store. */
  withTrace(store: SqliteTraceStore): this {
    this.trace = store;
    return this;
  }

  /** Runs the task from `start`, or from its checkpoint if it has one; resolves with the final state. */
  async invoke(initial: S, start: string, taskId: string): Promise<S> {
    let state: S = { ...initial };
    let node = start;
    let step = 0;
    const checkpoint = await this.checkpoints?.load(taskId);
    if (checkpoint) {
      state = checkpoint.state;
      node = checkpoint.currentNode;
      step = checkpoint.step;
    }
    while (node !== END) {
      const fn = this.nodes.get(node);
      if (!fn) throw new Error(`The graph has no node named "${node}".`);
      step += 1;
      const trace = this.trace;
      const nodeId = node;
      // The attempt belongs to the step: how many times this step of this task has started, read from the file.
      const attempt = trace ? await trace.nextAttempt(taskId, step) : 1;
      const stepNo = step;
      const record = async (type: TraceType, data: unknown): Promise<void> => {
        if (trace) await trace.append({ taskId, nodeId, type, step: stepNo, attempt, data, timestamp: new Date() });
      };
      // Write-ahead: committed before the node body runs.
      await record("node_start", state);
      const context: NodeContext = {
        taskId,
        step,
        callTool: async (name, input) => {
          const tool = this.tools.get(name);
          if (!tool) throw new Error(`The graph has no tool named "${name}".`);
          await record("tool_call", { tool: name, input });
          const output = await tool(input);
          await record("tool_result", { tool: name, output });
          return output;
        },
      };
      const update = (await fn(state, context)) ?? {};
      // node_end is committed before the checkpoint: a crash between the two redoes a complete step.
      await record("node_end", update);
      state = { ...state, ...update };
      const edge = this.edges.get(node);
      const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(state);
      await this.checkpoints?.save(taskId, { taskId, state, currentNode: next, step, timestamp: new Date() });
      node = next;
    }
    return state;
  }
}
