/**
 * Learner-side fixture of the trace grader: trusted code that runs in the learner process, next
 * to the code under test. It builds the grader's graphs on the learner's StateGraph: every node
 * body and every tool is a call back to the trusted side (`hooks`), so each node entry, tool
 * invocation and node return is observed over there, and a crash is the trusted side killing
 * this process before a callback replies. The checkpoint store is the learner's own, wrapped only
 * to tell the trusted side, after the fact, that a checkpoint was saved.
 * Nothing here names a check or a crash point.
 */
type State = Record<string, unknown>;

export interface Hooks {
  enter(node: string, state: State): Promise<void>;
  tool(tool: string, input: unknown): Promise<unknown>;
  leave(node: string, state: State): Promise<State>;
  saved(): Promise<void>;
}

export interface NodeSpec {
  name: string;
  tools: Array<{ tool: string; input: unknown }>;
  /** Run this many times in a row (a loop through a router); default 1. */
  repeat?: number;
}

interface GraphLike {
  addNode(name: string, fn: (state: State, context: { callTool(name: string, input: unknown): Promise<unknown> }) => Promise<State>): unknown;
  addEdge(from: string, to: string | ((state: State) => string)): unknown;
  addTool(name: string, fn: (input: unknown) => unknown): unknown;
  withCheckpoint(store: unknown): unknown;
}

interface StoreLike {
  save(taskId: string, checkpoint: unknown): Promise<unknown>;
  load(taskId: string): Promise<unknown>;
}

const END = "__end__";

/** Defines the spec's nodes, edges and tools on `graph`, and gives it `store`, watched. */
export function build(graph: GraphLike, nodes: NodeSpec[], hooks: Hooks, store: StoreLike): void {
  const tools = new Set<string>();
  nodes.forEach((spec, index) => {
    const after = nodes[index + 1]?.name ?? END;
    graph.addNode(spec.name, async (state, context) => {
      await hooks.enter(spec.name, { ...state });
      for (const call of spec.tools) await context.callTool(call.tool, call.input);
      return hooks.leave(spec.name, { ...state });
    });
    const repeat = spec.repeat ?? 1;
    graph.addEdge(spec.name, repeat > 1 ? (state) => (Number(state[`runs_${spec.name}`] ?? 0) < repeat ? spec.name : after) : after);
    for (const call of spec.tools) tools.add(call.tool);
  });
  for (const tool of tools) graph.addTool(tool, (input) => hooks.tool(tool, input));
  graph.withCheckpoint({
    async save(taskId: string, checkpoint: unknown) {
      await store.save(taskId, checkpoint);
      await hooks.saved();
    },
    load: (taskId: string) => store.load(taskId),
  });
}

/**
 * From now on this process's clock steps back by a second every time it is read: Date.now()
 * and new Date() each return an instant before the previous one. A Date made from a value is
 * still a plain Date.
 */
export function clockStepsBack(startMs: number): void {
  const RealDate = Date;
  let now = startMs;
  const read = () => (now -= 1000);
  const Backward: DateConstructor = new Proxy(RealDate, {
    construct(target, args, newTarget): object {
      return Reflect.construct(target, args.length === 0 ? [read()] : args, newTarget === Backward ? target : newTarget);
    },
    apply(target, thisArg, args) {
      return args.length === 0 ? new RealDate(read()).toString() : Reflect.apply(target, thisArg, args);
    },
    get(target, prop, receiver) {
      if (prop === "now") return read;
      return Reflect.get(target, prop, receiver === Backward ? target : receiver);
    },
  });
  globalThis.Date = Backward;
}
