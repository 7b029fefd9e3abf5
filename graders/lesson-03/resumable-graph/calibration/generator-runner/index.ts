// The run is an async generator of steps; invoke drives it and persists each step, sending the
// new checkpoint's id back in, so the generator keys each visit by the checkpoint it starts from.
import { createHash } from "node:crypto";

export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type State = Record<string, unknown>;
type Context = { taskId: string | undefined; node: string; key: string };
type NodeFn = (state: State, context: Context) => Partial<State> | Promise<Partial<State>>;
type Route = string | ((state: State) => string);
interface Store {
  save(taskId: string, checkpoint: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<{ checkpointId: string; state: State; currentNode: string } | null>;
}
type Step = { state: State; saveAs: string; stop: boolean };

export class GraphError extends Error {
  override name = "GraphError";
}

export class StateGraph {
  private readonly fns: Record<string, NodeFn> = Object.create(null);
  private readonly routes: Record<string, Route> = Object.create(null);
  private store: Store | null = null;

  constructor(private readonly reducer?: (state: State, update: Partial<State>) => State) {}

  addNode(name: string, fn: NodeFn) {
    this.fns[name] = fn;
    return this;
  }
  addEdge(from: string, to: Route) {
    this.routes[from] = to;
    return this;
  }
  withCheckpoint(store: Store) {
    this.store = store;
    return this;
  }

  private apply(state: State, update: Partial<State>): State {
    return this.reducer ? this.reducer(state, update) : { ...state, ...update };
  }

  private async *steps(taskId: string | undefined, state: State, node: string, from: string): AsyncGenerator<Step, State, string | undefined> {
    for (let i = 0; ; i++) {
      const key = "k" + createHash("sha256").update(JSON.stringify([taskId, from, node, taskId ? 0 : i])).digest("hex").slice(0, 40);
      state = this.apply(state, await this.fns[node]!(state, { taskId, node, key }));
      const route = this.routes[node];
      const next = route === undefined ? END : typeof route === "function" ? route(state) : route;
      if (next !== END && next !== INTERRUPT && !(next in this.fns)) throw new GraphError(`the edge from "${node}" leads to "${next}", which is not a node`);
      const saved = yield { state, saveAs: next === INTERRUPT ? node : next, stop: next === END || next === INTERRUPT };
      if (next === END || next === INTERRUPT) return state;
      from = saved ?? String(i);
      node = next;
    }
  }

  async invoke(input: State, start: string, taskId?: string): Promise<State> {
    const store = taskId !== undefined ? this.store : null;
    const save = (state: State, currentNode: string) => store!.save(taskId!, { taskId: taskId!, state, currentNode, timestamp: new Date() });
    let run: AsyncGenerator<Step, State, string | undefined>;
    const head = store ? await store.load(taskId!) : null;
    if (head?.currentNode === END) return head.state;
    if (head) {
      const waits = typeof head.state.awaitingApproval === "string" && head.state.awaitingApproval !== "";
      if (!(head.currentNode in this.fns)) throw new GraphError(`the checkpoint names "${head.currentNode}", which is not a node`);
      run = this.steps(taskId, waits ? this.apply(head.state, input) : head.state, head.currentNode, head.checkpointId);
    } else {
      if (!(start in this.fns)) throw new GraphError(`the start node "${start}" is not a node`);
      const first = { ...input };
      run = this.steps(taskId, first, start, store ? await save(first, start) : "plain");
    }
    let reply: string | undefined;
    for (;;) {
      const item = await run.next(reply);
      if (item.done) return item.value;
      reply = store ? await save(item.value.state, item.value.saveAs) : undefined;
    }
  }
}

export function sendEmailNode(mailer: { find(key: string): Promise<{ emailId: string } | null>; send(key: string, email: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async (state, { key }) => {
    const already = await mailer.find(key);
    if (already !== null) return { emailId: already.emailId };
    const sent = await mailer.send(key, { to: `${state.to}`, subject: `${state.subject}`, body: `${state.body}` });
    return { emailId: sent.emailId };
  };
}
