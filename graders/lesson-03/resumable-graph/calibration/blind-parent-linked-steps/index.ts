/**
 * lesson-03 / resumable-graph: a state graph that resumes where it stopped.
 * Read lessons/lesson-03/resumable-graph.md first.
 *
 * Below is the seed's plain StateGraph: nodes, edges (static or a router), a reducer, invoke().
 * It runs, but it saves nothing. Add checkpoints, resume, safe side effects and an approval edge:
 *
 *   new StateGraph<S>(reducer?)       reducer(state, update) -> the next state; default { ...state, ...update }
 *   addNode(name, fn)                 fn(state, context) -> an update (or a promise of one)
 *   addEdge(from, to)                 to: a node name, END, INTERRUPT, or a router (state) => one of those
 *   withCheckpoint(store)             the CheckpointStore to save to (store.ts has one); returns this
 *   invoke(input, start, taskId?)     runs or resumes the task; resolves with its state
 *   sendEmailNode(mailer)             the seed's "send the email" node, safe to run again
 *
 * The contract (what the grader observes):
 *
 * 1. Without a taskId, or without a store, invoke runs `start` on `input` and saves nothing.
 *    A node without an edge goes to END.
 * 2. After each node: merge its update with the reducer, ask its edge ONCE for the node to run
 *    next, then save { taskId, state, currentNode: next, timestamp } before running next. You may
 *    also save the input before the first node of a new task (currentNode = start).
 * 3. When the run reaches END, the last checkpoint (currentNode END) is the end: delete nothing.
 * 4. invoke(input, start, taskId) first loads the task's latest checkpoint:
 *    - none: a new task; run `start` on `input`;
 *    - currentNode is END: a finished task; resolve with its state, run and save nothing;
 *    - waiting for approval (rule 6): the input is the answer; merge it into the saved state with
 *      the reducer and run the node that interrupted again;
 *    - otherwise an interrupted task (a crash): run currentNode on the saved state; the input is
 *      ignored (the checkpoint is the truth).
 *    Another process, with its own StateGraph and store on the same file, resumes the same way:
 *    keep nothing about a run in the graph's fields, and never copy state with JSON.
 * 5. Each node is called as fn(state, context), context = { taskId, node, key }. key (a non-empty
 *    string of at most 200 characters) names this visit of this node in this task: the same when
 *    the visit runs again after a crash (its checkpoint was not saved yet), different for another
 *    task and for a later visit of the same node (a loop). Derive it from what the store holds when
 *    the visit starts; never from the clock, a random value or an in-memory counter.
 * 6. An edge that returns INTERRUPT stops the run: save a checkpoint from which the node whose edge
 *    interrupted runs again, recorded so that any process can tell the task waits (the saved
 *    state's non-empty awaitingApproval, or a marker of your own), and resolve with the state
 *    (awaitingApproval set by that node). Later, invoke({ approvalGranted: true }, start, taskId)
 *    resumes it (rule 4); the approval node then routes on, or to END when approvalGranted is false.
 * 7. An unknown start node, or an edge naming a node that does not exist, rejects with GraphError
 *    before any checkpoint naming it is saved. A node that throws rejects invoke with its error and
 *    nothing is saved for it: the next invoke runs it again.
 * 8. sendEmailNode(mailer) returns a node for a state { to, subject, body }: it asks
 *    mailer.find(context.key) first; if an email was sent under that key it returns { emailId } of
 *    that email and sends nothing; otherwise it calls mailer.send(context.key, { to, subject, body })
 *    once and returns { emailId } of the result. The mailer sends every call it gets.
 *
 * What the grader checks, in order (each failure names the lesson section to read). It builds its
 * own graphs on your StateGraph, hands them its own store, and kills real processes (SIGKILL):
 * - core: an uncrashed run saves, after each node, its state and the node to run next, ending at END;
 * - core: a crash at every point of every node resumes in a fresh process at the right node and
 *   ends with the uncrashed run's state; a finished task runs nothing;
 * - core: a crash right after the email was sent does not send it again; keys differ per task and
 *   per loop visit;
 * - core: the approval edge stops with awaitingApproval, resumes once approved (in a fresh
 *   process), ends without the email when rejected;
 * - excellence: the router is asked once per step; every crash point of the approval flow;
 *   bad graphs and throwing nodes leave the task resumable.
 */
import { createHash } from "node:crypto";
import { END, type CheckpointStore, type StoredCheckpoint } from "./store.ts";

export { END } from "./store.ts";
export type { Checkpoint, CheckpointStore, StoredCheckpoint } from "./store.ts";

/** The target of an edge that stops the run until a person answers. */
export const INTERRUPT = "__interrupt__";

const END_NODE = END;

export type State = Record<string, unknown>;

export interface NodeContext {
  /** The task being run (undefined without a taskId). */
  taskId: string | undefined;
  /** The node being run. */
  node: string;
  /** Names this visit of this node in this task (rule 5). */
  key: string;
}

export type NodeFn<S extends State> = (state: S, context: NodeContext) => Partial<S> | Promise<Partial<S>>;
export type Router<S extends State> = (state: S) => string;
export type Reducer<S extends State> = (state: S, update: Partial<S>) => S;

export class GraphError extends Error {
  override name = "GraphError";
}

/** A non-empty awaitingApproval: the seed's own "this task waits for a person" field. */
function awaiting(state: State): boolean {
  const v = state["awaitingApproval"];
  if (v === undefined || v === null || v === false || v === "" || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/**
 * The visit key: a hash of the task, the checkpoint the visit starts from, and the node.
 * The checkpoint id is what the store holds when the visit starts, so a re-run after a crash
 * gets the same key and every other visit (another task, a later loop turn) gets another one.
 * Hashing keeps it short whatever the task id's length.
 */
function visitKey(taskId: string, fromCheckpointId: string, node: string): string {
  const h = createHash("sha256").update(JSON.stringify([taskId, fromCheckpointId, node])).digest("hex");
  return `v1-${h}`;
}

/**
 * Design: every step of a task starts from a stored checkpoint. A new task first saves its
 * input (currentNode = start), so even the first visit has a checkpoint id to derive its key
 * from. "Waiting for approval" is read structurally from the store: the latest checkpoint has a
 * non-empty awaitingApproval AND it names the very node that produced it (its parent names the
 * same node), which is what an INTERRUPT stop saves.
 */
export class StateGraph<S extends State> {
  private readonly nodes = new Map<string, NodeFn<S>>();
  private readonly edges = new Map<string, string | Router<S>>();
  private store?: CheckpointStore<S>;

  constructor(private readonly reducer: Reducer<S> = (state, update) => ({ ...state, ...update })) {}

  addNode(name: string, fn: NodeFn<S>): this {
    this.nodes.set(name, fn);
    return this;
  }

  addEdge(from: string, to: string | Router<S>): this {
    this.edges.set(from, to);
    return this;
  }

  withCheckpoint(store: CheckpointStore<S>): this {
    this.store = store;
    return this;
  }

  private node(name: string, what: string): NodeFn<S> {
    const fn = this.nodes.get(name);
    if (!fn) throw new GraphError(`${what}: node "${name}" does not exist`);
    return fn;
  }

  /** Asks the node's edge once; validates the answer before anyone saves it. */
  private next(from: string, state: S): string {
    const edge = this.edges.get(from);
    const to = edge === undefined ? END_NODE : typeof edge === "string" ? edge : edge(state);
    if (to === END_NODE || to === INTERRUPT) return to;
    if (typeof to !== "string" || !this.nodes.has(to)) throw new GraphError(`edge from "${from}" names node "${String(to)}", which does not exist`);
    return to;
  }

  async invoke(input: S, start: string, taskId?: string): Promise<S> {
    const store = this.store;
    if (taskId === undefined || store === undefined) return this.runPlain(input, start, taskId);

    const latest = await store.load(taskId);
    let state: S;
    let current: string;
    let fromId: string;

    if (latest === null) {
      this.node(start, "start");
      state = structuredClone(input);
      fromId = await store.save(taskId, { taskId, state, currentNode: start, timestamp: new Date() });
      current = start;
    } else if (latest.currentNode === END_NODE) {
      return latest.state;
    } else {
      this.node(latest.currentNode, `resume of task ${taskId}`);
      state = latest.state;
      current = latest.currentNode;
      fromId = latest.checkpointId;
      if (await this.waits(store, latest)) state = this.reducer(state, input);
    }

    for (;;) {
      const fn = this.node(current, "run");
      const update = await fn(state, { taskId, node: current, key: visitKey(taskId, fromId, current) });
      state = this.reducer(state, update);
      const next = this.next(current, state);
      const saveAs = next === INTERRUPT ? current : next;
      fromId = await store.save(taskId, { taskId, state, currentNode: saveAs, timestamp: new Date() });
      if (next === INTERRUPT || next === END_NODE) return state;
      current = next;
    }
  }

  private async waits(store: CheckpointStore<S>, latest: StoredCheckpoint<S>): Promise<boolean> {
    if (!awaiting(latest.state) || latest.parentId === null) return false;
    const parent = await store.load(latest.taskId, latest.parentId);
    return parent !== null && parent.currentNode === latest.currentNode;
  }

  private async runPlain(input: S, start: string, taskId: string | undefined): Promise<S> {
    this.node(start, "start");
    let state = structuredClone(input);
    let current = start;
    let step = 0;
    while (current !== END_NODE) {
      const fn = this.node(current, "run");
      state = this.reducer(state, await fn(state, { taskId, node: current, key: `plain-${step++}-${current}`.slice(0, 200) }));
      const next = this.next(current, state);
      if (next === INTERRUPT) return state;
      current = next;
    }
    return state;
  }
}

export interface Email {
  to: string;
  subject: string;
  body: string;
}

/** The email provider: every send() call sends an email. */
export interface Mailer {
  /** The email sent under this key, or null if none was. */
  find(key: string): Promise<{ emailId: string } | null>;
  /** Sends one email and records it under the key. */
  send(key: string, email: Email): Promise<{ emailId: string }>;
}

export function sendEmailNode(mailer: Mailer): NodeFn<State> {
  return async (state, context) => {
    const earlier = await mailer.find(context.key);
    if (earlier) return { emailId: earlier.emailId };
    const sent = await mailer.send(context.key, {
      to: state["to"] as string,
      subject: state["subject"] as string,
      body: state["body"] as string,
    });
    return { emailId: sent.emailId };
  };
}
