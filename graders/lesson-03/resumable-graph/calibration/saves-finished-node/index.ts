// Resumable graph; each checkpoint records the node that produced it.
import { createHash } from "node:crypto";

export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type S = Record<string, unknown>;
type Ctx = { taskId: string | undefined; node: string; key: string };
type Fn = (state: S, ctx: Ctx) => Partial<S> | Promise<Partial<S>>;
type To = string | ((state: S) => string);
interface Store {
  save(taskId: string, cp: { taskId: string; state: S; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<{ checkpointId: string; state: S; currentNode: string } | null>;
}

export class GraphError extends Error {
  override name = "GraphError";
}

const waiting = (s: S) => typeof s.awaitingApproval === "string" && s.awaitingApproval.length > 0;
const keyOf = (taskId: string | undefined, at: string, node: string) => createHash("sha1").update(`${taskId}\u0000${at}\u0000${node}`).digest("base64url");

export class StateGraph {
  private fns: Record<string, Fn> = {};
  private outs: Record<string, To> = {};
  private store: Store | null = null;

  constructor(private merge: (a: S, b: Partial<S>) => S = (a, b) => ({ ...a, ...b })) {}

  addNode(name: string, fn: Fn) {
    this.fns[name] = fn;
    return this;
  }
  addEdge(from: string, to: To) {
    this.outs[from] = to;
    return this;
  }
  withCheckpoint(store: Store) {
    this.store = store;
    return this;
  }

  private target(from: string, state: S): string {
    const out = this.outs[from];
    const to = out === undefined ? END : typeof out === "function" ? out(state) : out;
    if (to !== END && to !== INTERRUPT && !(to in this.fns)) throw new GraphError(`no node "${to}" (edge from "${from}")`);
    return to;
  }

  async invoke(input: S, start: string, taskId?: string): Promise<S> {
    const store = taskId ? this.store : null;
    let state: S;
    let node: string;
    let at = "start";
    const last = store ? await store.load(taskId!) : null;
    if (last) {
      if (last.currentNode === END) return last.state;
      state = waiting(last.state) ? this.merge(last.state, input) : last.state;
      node = last.currentNode;
      at = last.checkpointId;
    } else {
      if (!(start in this.fns)) throw new GraphError(`no start node "${start}"`);
      state = { ...input };
      node = start;
    }
    let n = 0;
    for (;;) {
      const fn = this.fns[node];
      if (!fn) throw new GraphError(`no node "${node}"`);
      const key = keyOf(taskId, store ? at : `${++n}`, node);
      state = this.merge(state, await fn(state, { taskId, node, key }));
      const to = this.target(node, state);
      if (to === INTERRUPT) {
        if (store) await store.save(taskId!, { taskId: taskId!, state, currentNode: node, timestamp: new Date() });
        return state;
      }
      if (store) at = await store.save(taskId!, { taskId: taskId!, state, currentNode: node, timestamp: new Date() });
      if (to === END) return state;
      node = to;
    }
  }
}

type Mail = { to: string; subject: string; body: string };
export function sendEmailNode(mailer: { find(k: string): Promise<{ emailId: string } | null>; send(k: string, m: Mail): Promise<{ emailId: string }> }): Fn {
  return async (s, ctx) => {
    const found = await mailer.find(ctx.key);
    if (found) return { emailId: found.emailId };
    const { emailId } = await mailer.send(ctx.key, { to: String(s.to), subject: String(s.subject), body: String(s.body) });
    return { emailId };
  };
}
