// A recursive runner: one call per step. A visit's key is the task (hashed) and how many
// checkpoints the task had when the visit started; a wait is marked in currentNode itself.
import { createHash } from "node:crypto";

export const END = "__end__";
export const INTERRUPT = "__interrupt__";
const WAIT = "__wait__:";

type State = Record<string, unknown>;
type Context = { taskId: string | undefined; node: string; key: string };
type NodeFn = (state: State, context: Context) => Partial<State> | Promise<Partial<State>>;
type Edge = string | ((state: State) => string);
interface Store {
  save(taskId: string, checkpoint: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<{ state: State; currentNode: string } | null>;
  list(taskId: string): Promise<unknown[]>;
}

export class GraphError extends Error {
  override name = "GraphError";
}

interface Run {
  taskId: string | undefined;
  store: Store | undefined;
  step: number;
}

export class StateGraph {
  private readonly table = new Map<string, { fn: NodeFn; edge?: Edge }>();
  private store: Store | undefined;

  constructor(private readonly reduce: (state: State, update: Partial<State>) => State = (state, update) => Object.assign({}, state, update)) {}

  addNode(name: string, fn: NodeFn): this {
    this.table.set(name, { ...this.table.get(name), fn });
    return this;
  }

  addEdge(from: string, edge: Edge): this {
    const entry = this.table.get(from);
    if (entry) entry.edge = edge;
    else this.table.set(from, { fn: () => ({}), edge, ...{} });
    return this;
  }

  withCheckpoint(store: Store): this {
    this.store = store;
    return this;
  }

  async invoke(input: State, start: string, taskId?: string): Promise<State> {
    const run: Run = { taskId, store: taskId === undefined ? undefined : this.store, step: 0 };
    const head = run.store ? await run.store.load(taskId!) : null;
    if (head === null) return this.visit(run, this.check(start), { ...input });
    if (head.currentNode === END) return head.state;
    if (head.currentNode.startsWith(WAIT)) return this.visit(run, this.check(head.currentNode.slice(WAIT.length)), this.reduce(head.state, input));
    return this.visit(run, this.check(head.currentNode), head.state);
  }

  private check(node: string): string {
    if (!this.table.has(node)) throw new GraphError(`Unknown node "${node}"`);
    return node;
  }

  private async key(run: Run, node: string): Promise<string> {
    const count = run.store ? (await run.store.list(run.taskId!)).length : ++run.step;
    return `${createHash("sha256").update(String(run.taskId)).digest("hex").slice(0, 24)}.${count}.${node.slice(0, 60)}`;
  }

  private async visit(run: Run, node: string, state: State): Promise<State> {
    const { fn, edge } = this.table.get(node)!;
    const after = this.reduce(state, await fn(state, { taskId: run.taskId, node, key: await this.key(run, node) }));
    const raw = edge === undefined ? END : typeof edge === "string" ? edge : edge(after);
    const next = raw === END || raw === INTERRUPT ? raw : this.check(raw);
    if (run.store) await run.store.save(run.taskId!, { taskId: run.taskId!, state: after, currentNode: next === INTERRUPT ? WAIT + node : next, timestamp: new Date() });
    return next === END || next === INTERRUPT ? after : this.visit(run, next, after);
  }
}

export function sendEmailNode(mailer: { find(key: string): Promise<{ emailId: string } | null>; send(key: string, email: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async ({ to, subject, body }, { key }) => {
    const previous = await mailer.find(key);
    const result = previous ?? (await mailer.send(key, { to: String(to), subject: String(subject), body: String(body) }));
    return { emailId: result.emailId };
  };
}
