import { GraphDefinitionError, InvalidUpdateError } from "./errors.ts";
import { CompiledStateGraph, type CompileOptions } from "./pregel.ts";
import { END, START } from "./types.ts";

export { END, START };

/** Merges an update into the channel's current value (e.g. append messages). */
export type Reducer<V> = (current: V, update: V) => V;

/** A channel with a reducer merges updates; one without is overwritten by the latest update. */
export interface Channel<V> {
  reducer?: Reducer<V>;
  default?: () => V;
}

export type Channels<S> = { [K in keyof S]-?: Channel<S[K]> };

/** What a node learns about the task it runs as; `taskId` is stable across retries of the same step. */
export interface NodeContext {
  threadId: string;
  /** The checkpoint this step started from. */
  checkpointId: string;
  taskId: string;
  node: string;
  step: number;
}

/** A node reads the state and returns the channels it changes (or nothing). It must not mutate `state`. */
export type NodeFn<S> = (state: S, ctx: NodeContext) => Partial<S> | void | Promise<Partial<S> | void>;

/** Picks the next node(s) from the state after the step: a name, END, or several names to fan out. */
export type Router<S> = (state: S) => string | string[] | Promise<string | string[]>;

export type Write = [channel: string, value: unknown];

/** What the super-step loop needs from a built graph. */
export interface GraphDefinition<S> {
  readonly nodes: ReadonlyMap<string, NodeFn<S>>;
  initialState(): S;
  /** Validates an input or a node's return value and turns it into channel writes. */
  toWrites(update: unknown, source: string): Write[];
  /** Applies writes in order, through the channels' reducers; returns a new state object. */
  applyWrites(state: S, writes: readonly Write[]): S;
  /** The nodes to run after `from`, in edge order, without duplicates or END. */
  successors(from: string, state: S): Promise<string[]>;
}

/**
 * Builder for a state graph: declare channels, add nodes and edges, then
 * compile() with a checkpointer. Nodes must be added before the edges that
 * name them, so a typo fails at the line that made it.
 */
export class StateGraph<S extends object> {
  private readonly channels: ReadonlyMap<string, Channel<unknown>>;
  private readonly nodes = new Map<string, NodeFn<S>>();
  private readonly edges = new Map<string, string[]>();
  private readonly routers = new Map<string, Router<S>[]>();

  constructor(channels: Channels<S>) {
    if (typeof channels !== "object" || channels === null) {
      throw new GraphDefinitionError("new StateGraph(channels) needs an object of channels, e.g. { messages: { reducer, default }, stage: {} }.");
    }
    for (const [name, channel] of Object.entries(channels as Record<string, Channel<unknown>>)) {
      if (name.startsWith("__")) {
        throw new GraphDefinitionError(`Channel "${name}": names starting with "__" are reserved for the runtime (__error__, __interrupt__...). Rename it.`);
      }
      if (typeof channel !== "object" || channel === null) {
        throw new GraphDefinitionError(`Channel "${name}" must be an object such as {} or { reducer: (a, b) => a.concat(b), default: () => [] }.`);
      }
      for (const key of ["reducer", "default"] as const) {
        if (channel[key] !== undefined && typeof channel[key] !== "function") {
          throw new GraphDefinitionError(`Channel "${name}": ${key} must be a function, got ${typeof channel[key]}.`);
        }
      }
    }
    this.channels = new Map(Object.entries(channels as Record<string, Channel<unknown>>));
  }

  addNode(name: string, node: NodeFn<S>): this {
    if (typeof name !== "string" || name === "" || name.startsWith("__")) {
      throw new GraphDefinitionError(`addNode(${JSON.stringify(name)}): a node name is a non-empty string not starting with "__" (reserved for START, END and special channels).`);
    }
    if (this.nodes.has(name)) throw new GraphDefinitionError(`addNode("${name}"): a node with that name already exists; pick another name.`);
    if (typeof node !== "function") throw new GraphDefinitionError(`addNode("${name}", node): node must be a function (state, ctx) => update.`);
    this.nodes.set(name, node);
    return this;
  }

  addEdge(from: string, to: string): this {
    this.checkSource(`addEdge(${JSON.stringify(from)}, ${JSON.stringify(to)})`, from);
    if (to !== END && !this.nodes.has(to)) {
      throw new GraphDefinitionError(
        `addEdge(${JSON.stringify(from)}, ${JSON.stringify(to)}): there is no node named ${JSON.stringify(to)}. ` +
          `Add it with addNode() before the edge, or use one of: ${this.knownTargets()}.`,
      );
    }
    this.edges.set(from, [...(this.edges.get(from) ?? []), to]);
    return this;
  }

  addConditionalEdges(from: string, router: Router<S>): this {
    this.checkSource(`addConditionalEdges(${JSON.stringify(from)}, router)`, from);
    if (typeof router !== "function") {
      throw new GraphDefinitionError(`addConditionalEdges("${from}", router): router must be a function (state) => node name, END, or an array of names.`);
    }
    this.routers.set(from, [...(this.routers.get(from) ?? []), router]);
    return this;
  }

  compile(options: CompileOptions<S> = {}): CompiledStateGraph<S> {
    for (const source of [START, ...this.nodes.keys()]) {
      if (!this.edges.has(source) && !this.routers.has(source)) {
        throw new GraphDefinitionError(
          source === START
            ? `The graph has no entry: add addEdge(START, "<first node>").`
            : `Node "${source}" has no outgoing edge: add addEdge("${source}", END) to finish there, or an edge to the next node.`,
        );
      }
    }
    return new CompiledStateGraph(this.definition(), options);
  }

  private checkSource(call: string, from: string): void {
    if (from === END) throw new GraphDefinitionError(`${call}: END has no outgoing edges; the run stops there.`);
    if (from !== START && !this.nodes.has(from)) {
      throw new GraphDefinitionError(`${call}: there is no node named ${JSON.stringify(from)}. Add it with addNode() before its edges, or use START.`);
    }
  }

  private knownTargets(): string {
    return [...this.nodes.keys(), "END"].map((n) => (n === "END" ? n : JSON.stringify(n))).join(", ");
  }

  /** A frozen view for the compiled graph: later builder calls cannot change a compiled graph. */
  private definition(): GraphDefinition<S> {
    const channels = this.channels;
    const nodes = new Map(this.nodes);
    const edges = new Map(this.edges);
    const routers = new Map(this.routers);
    const nodeNames = () => [...nodes.keys()].map((n) => JSON.stringify(n)).join(", ");

    return {
      nodes,
      initialState() {
        const state: Record<string, unknown> = {};
        for (const [name, channel] of channels) if (channel.default) state[name] = channel.default();
        return state as S;
      },
      toWrites(update, source) {
        if (update === undefined || update === null) return [];
        if (typeof update !== "object" || Array.isArray(update)) {
          throw new InvalidUpdateError(`${source} must be an object of channel updates (or nothing), got ${Array.isArray(update) ? "an array" : typeof update}.`);
        }
        const writes = Object.entries(update);
        const unknown = writes.map(([channel]) => channel).filter((channel) => !channels.has(channel));
        if (unknown.length > 0) {
          throw new InvalidUpdateError(`${source} wrote unknown channel(s) ${unknown.join(", ")}; the state has: ${[...channels.keys()].join(", ")}.`);
        }
        return writes;
      },
      applyWrites(state, writes) {
        const next: Record<string, unknown> = { ...(state as Record<string, unknown>) };
        for (const [name, value] of writes) {
          const reducer = channels.get(name)?.reducer;
          // Without a current value there is nothing to merge with: the first update is taken as is.
          next[name] = reducer && next[name] !== undefined ? reducer(next[name], value) : value;
        }
        return next as S;
      },
      async successors(from, state) {
        const targets = [...(edges.get(from) ?? [])];
        for (const router of routers.get(from) ?? []) {
          const routed = await router(state);
          for (const target of Array.isArray(routed) ? routed : [routed]) {
            if (target !== END && !nodes.has(target)) {
              throw new GraphDefinitionError(
                `The router of "${from}" returned ${JSON.stringify(target)}, which is not a node; return one of ${nodeNames()}, END, or an array of them.`,
              );
            }
            targets.push(target);
          }
        }
        return [...new Set(targets)].filter((target) => target !== END);
      },
    };
  }
}
