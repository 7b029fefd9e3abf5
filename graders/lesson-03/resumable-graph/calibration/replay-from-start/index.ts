// Tries to pass without solving: the final state of a pure graph does not depend on where a run
// resumes, so every invoke replays the task from its first checkpoint (its input), merging the
// answers it was given, with keys that count visits so an email is found again on replay.
export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type State = Record<string, unknown>;
type Ctx = { taskId: string | undefined; node: string; key: string };
type NodeFn = (state: State, ctx: Ctx) => Partial<State> | Promise<Partial<State>>;
type Edge = string | ((state: State) => string);
interface Store {
  save(taskId: string, cp: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<{ state: State; currentNode: string } | null>;
  list(taskId: string): Promise<Array<{ state: State; currentNode: string }>>;
}

export class GraphError extends Error {
  override name = "GraphError";
}

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
    if (!this.nodes.has(start)) throw new GraphError(`unknown start node "${start}"`);
    const store = taskId ? this.store : undefined;
    const history = store ? await store.list(taskId!) : [];
    const latest = history[0];
    if (latest?.currentNode === END) return latest.state;
    const first = history.at(-1);
    // Replay from the input; answers given since then are merged in again.
    let state: State = first ? { ...first.state, ...(latest && latest.state.awaitingApproval ? input : {}) } : { ...input };
    if (latest && latest.state.approvalGranted !== undefined) state = { ...state, approvalGranted: latest.state.approvalGranted };
    if (!first && store) await store.save(taskId!, { taskId: taskId!, state, currentNode: start, timestamp: new Date() });
    const visits = new Map<string, number>();
    let node = start;
    for (;;) {
      const fn = this.nodes.get(node);
      if (!fn) throw new GraphError(`unknown node "${node}"`);
      const visit = (visits.get(node) ?? 0) + 1;
      visits.set(node, visit);
      state = { ...state, ...(await fn(state, { taskId, node, key: `${taskId}:${node}:${visit}` })) };
      const edge = this.edges.get(node);
      const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(state);
      if (next !== END && next !== INTERRUPT && !this.nodes.has(next)) throw new GraphError(`unknown node "${next}"`);
      if (store) await store.save(taskId!, { taskId: taskId!, state, currentNode: next === INTERRUPT ? node : next, timestamp: new Date() });
      if (next === END || next === INTERRUPT) return state;
      node = next;
    }
  }
}

export function sendEmailNode(mailer: { find(k: string): Promise<{ emailId: string } | null>; send(k: string, e: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async (state, ctx) => {
    const found = await mailer.find(ctx.key);
    if (found) return { emailId: found.emailId };
    return { emailId: (await mailer.send(ctx.key, { to: String(state.to), subject: String(state.subject), body: String(state.body) })).emailId };
  };
}
