// A task is a small state machine over its latest checkpoint. A wait is saved under a marker
// ("?node"); the answer is saved as a checkpoint of its own before the approval node runs again,
// so a crash after the answer never asks for it twice. Keys hash the task with the id of the
// checkpoint the visit starts from.
import { createHash } from "node:crypto";

export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type State = Record<string, unknown>;
type Ctx = { taskId: string | undefined; node: string; key: string };
type NodeFn = (state: State, ctx: Ctx) => Partial<State> | Promise<Partial<State>>;
type Edge = string | ((state: State) => string);
type Saved = { checkpointId: string; state: State; currentNode: string };
interface Store {
  save(taskId: string, cp: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<Saved | null>;
}

export class GraphError extends Error {
  override name = "GraphError";
}

const md5 = (...parts: unknown[]) => createHash("md5").update(JSON.stringify(parts)).digest("hex");

export class StateGraph {
  private readonly nodeFns = new Map<string, NodeFn>();
  private readonly edgeOf = new Map<string, Edge>();
  private store?: Store;

  constructor(private readonly reducer: (s: State, u: Partial<State>) => State = (s, u) => ({ ...s, ...u })) {}

  addNode(name: string, fn: NodeFn) {
    this.nodeFns.set(name, fn);
    return this;
  }
  addEdge(from: string, to: Edge) {
    this.edgeOf.set(from, to);
    return this;
  }
  withCheckpoint(store: Store) {
    this.store = store;
    return this;
  }

  private need(node: string, what: string) {
    if (!this.nodeFns.has(node)) throw new GraphError(`${what} "${node}" is not a node of this graph`);
  }

  async invoke(input: State, start: string, taskId?: string): Promise<State> {
    const store = taskId ? this.store : undefined;
    const put = async (state: State, currentNode: string) => (store ? store.save(taskId!, { taskId: taskId!, state, currentNode, timestamp: new Date() }) : `mem-${md5(currentNode, Math.random())}`);
    let cp: Saved | null = store ? await store.load(taskId!) : null;
    if (cp?.currentNode === END) return cp.state;
    if (cp?.currentNode.startsWith("?")) {
      const node = cp.currentNode.slice(1);
      const answered = this.reducer(cp.state, input);
      cp = { checkpointId: await put(answered, node), state: answered, currentNode: node };
    }
    if (!cp) {
      this.need(start, "the start node");
      cp = { checkpointId: "first", state: { ...input }, currentNode: start };
    }
    let { state, currentNode: node, checkpointId } = cp;
    for (;;) {
      this.need(node, "the node to run");
      const update = await this.nodeFns.get(node)!(state, { taskId, node, key: md5(taskId, checkpointId, node) });
      state = this.reducer(state, update);
      const edge = this.edgeOf.get(node);
      const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(state);
      if (next === INTERRUPT) {
        await put(state, `?${node}`);
        return state;
      }
      if (next !== END) this.need(next, `the edge out of "${node}" names`);
      checkpointId = await put(state, next);
      if (next === END) return state;
      node = next;
    }
  }
}

export function sendEmailNode(mailer: { find(k: string): Promise<{ emailId: string } | null>; send(k: string, m: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async (s, ctx) => ({ emailId: ((await mailer.find(ctx.key)) ?? (await mailer.send(ctx.key, { to: String(s.to), subject: String(s.subject), body: String(s.body) }))).emailId });
}
