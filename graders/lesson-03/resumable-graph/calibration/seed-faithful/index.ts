// The seed's StateGraph with checkpoints, as the source material writes it.
export const END = "__end__";
export const INTERRUPT = "__interrupt__";

type State = Record<string, unknown>;
type NodeFn = (state: State, context: { taskId?: string; node: string; key: string }) => Partial<State> | Promise<Partial<State>>;
type Edge = string | ((state: State) => string);
interface CheckpointStore {
  save(taskId: string, checkpoint: { taskId: string; state: State; currentNode: string; timestamp: Date }): Promise<string>;
  load(taskId: string): Promise<{ state: State; currentNode: string } | null>;
  delete(taskId: string): Promise<void>;
}

export class GraphError extends Error {
  override name = "GraphError";
}

export class StateGraph {
  private nodes = new Map<string, NodeFn>();
  private edges = new Map<string, Edge>();
  private checkpointStore?: CheckpointStore;
  constructor(private reducer: (state: State, update: Partial<State>) => State = (s, u) => ({ ...s, ...u })) {}

  addNode(name: string, fn: NodeFn) {
    this.nodes.set(name, fn);
    return this;
  }
  addEdge(from: string, to: Edge) {
    this.edges.set(from, to);
    return this;
  }
  withCheckpoint(store: CheckpointStore) {
    this.checkpointStore = store;
    return this;
  }

  async invoke(initialState: State, startNode: string, taskId?: string): Promise<State> {
    let state = { ...initialState };
    let currentNode = startNode;
    if (taskId && this.checkpointStore) {
      const checkpoint = await this.checkpointStore.load(taskId);
      if (checkpoint) {
        state = checkpoint.state;
        currentNode = checkpoint.currentNode;
      }
    }
    // An interrupted run stops like a finished one (the seed routes the wait to END).
    while (currentNode !== END && currentNode !== INTERRUPT) {
      const nodeFn = this.nodes.get(currentNode);
      if (!nodeFn) throw new GraphError(`node "${currentNode}" does not exist`);
      const update = await nodeFn(state, { taskId, node: currentNode, key: `${taskId}:${currentNode}` });
      state = this.reducer(state, update);
      if (taskId && this.checkpointStore) {
        const edge = this.edges.get(currentNode);
        const nextNode = typeof edge === "string" ? edge : (edge?.(state) ?? END);
        await this.checkpointStore.save(taskId, { taskId, state, currentNode: nextNode === INTERRUPT ? END : nextNode, timestamp: new Date() });
      }
      const edge = this.edges.get(currentNode);
      if (!edge) currentNode = END;
      else if (typeof edge === "string") currentNode = edge;
      else currentNode = edge(state);
    }
    if (taskId && this.checkpointStore) await this.checkpointStore.delete(taskId);
    return state;
  }
}

export function sendEmailNode(mailer: { find(key: string): Promise<{ emailId: string } | null>; send(key: string, email: { to: string; subject: string; body: string }): Promise<{ emailId: string }> }): NodeFn {
  return async (state, context) => {
    const sent = await mailer.find(context.key);
    if (sent) return { emailId: sent.emailId };
    return { emailId: (await mailer.send(context.key, { to: String(state.to), subject: String(state.subject), body: String(state.body) })).emailId };
  };
}
