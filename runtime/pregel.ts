/**
 * The super-step loop (LangGraph calls it Pregel). One step: run every node in
 * the checkpoint's `next` concurrently, save each task's writes as soon as it
 * finishes, and when all are done apply the writes in task order and save a
 * checkpoint whose `next` is the set of successors. A crash between two steps
 * loses nothing that a resume cannot rebuild from the checkpoint and its
 * pending writes.
 */
import { parseConfig, parseInvokeOptions, type InvokeOptions, type ResolvedConfig } from "./config.ts";
import { GraphRecursionError, InvalidArgumentError, ResumeError, StateSchemaMismatchError } from "./errors.ts";
import type { GraphDefinition, Write } from "./graph.ts";
import { newCheckpointId, taskIdFor } from "./ids.ts";
import { Command, GraphInterrupt, runWithResumeValues, type Interrupt } from "./interrupt.ts";
import { MemorySaver } from "./memory-saver.ts";
import {
  ERROR,
  INTERRUPT,
  NO_WRITES,
  RESUME,
  START,
  isSpecialChannel,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListOptions,
  type RunnableConfig,
} from "./types.ts";

export type { InvokeOptions };

export interface CompileOptions<S> {
  /** Where checkpoints go; a fresh MemorySaver when omitted. */
  checkpointer?: CheckpointSaver;
  /** Stamped on every checkpoint; resuming one with another version needs `migrate`. Default 1. */
  stateSchemaVersion?: number;
  /** Turns a state written by an older (or newer) schema into this graph's shape. */
  migrate?: (state: Record<string, unknown>, fromVersion: number) => S | Promise<S>;
}

export type StreamEvent<S> =
  | { type: "update"; node: string; update: Partial<S>; step: number }
  | { type: "interrupt"; node: string; value: unknown; step: number }
  | { type: "final"; state: S };

/** A new input, `null` to resume, or a Command answering an interrupt(). */
export type GraphInput<S> = Partial<S> | Command | null | undefined;

export type CheckpointConfig = CheckpointTuple["config"];

export interface StateSnapshot<S> {
  values: S;
  /** Nodes that run on the next invoke(null); empty when the run is finished. */
  next: string[];
  config: CheckpointConfig;
  metadata: CheckpointMetadata;
  parentConfig?: CheckpointConfig;
  createdAt: string;
  tasks: Array<{ id: string; node: string; interrupts: Interrupt[] }>;
}

/** One node scheduled from one checkpoint, with what earlier attempts saved for it. */
interface Task {
  id: string;
  node: string;
  /** Its channel writes, if it already finished (then it is not run again). */
  savedWrites?: Write[];
  resumeValues: unknown[];
  pendingInterrupt?: Interrupt;
}

type TaskOutcome =
  | { kind: "reused"; task: Task; writes: Write[] }
  | { kind: "done"; task: Task; writes: Write[]; update: unknown }
  | { kind: "interrupt"; task: Task; value: unknown }
  | { kind: "error"; task: Task; error: unknown };

export class CompiledStateGraph<S extends object> {
  readonly checkpointer: CheckpointSaver;
  readonly stateSchemaVersion: number;
  private readonly migrate: CompileOptions<S>["migrate"];

  constructor(
    private readonly graph: GraphDefinition<S>,
    options: CompileOptions<S>,
  ) {
    const version = options.stateSchemaVersion ?? 1;
    if (!Number.isInteger(version) || version < 1) {
      throw new InvalidArgumentError(`compile({ stateSchemaVersion }) needs a positive integer, got ${String(version)}.`);
    }
    this.checkpointer = options.checkpointer ?? new MemorySaver();
    this.stateSchemaVersion = version;
    this.migrate = options.migrate;
  }

  /** Runs until END or an interrupt and returns the state at that point. */
  async invoke(input: GraphInput<S>, config: RunnableConfig, options?: InvokeOptions): Promise<S> {
    const run = this.run(input, config, options);
    let result = await run.next();
    while (!result.done) result = await run.next();
    return result.value;
  }

  /** Same run as invoke(), reported as events: an update per task, interrupts, then the final state. */
  async *stream(input: GraphInput<S>, config: RunnableConfig, options?: InvokeOptions): AsyncGenerator<StreamEvent<S>, void> {
    yield* this.run(input, config, options);
  }

  /** The latest checkpoint of the thread (or `config.checkpointId`); undefined for an unknown thread. */
  async getState(config: RunnableConfig): Promise<StateSnapshot<S> | undefined> {
    const tuple = await this.checkpointer.getTuple(parseConfig(config, "getState()"));
    return tuple && this.toSnapshot(tuple);
  }

  /**
   * Newest first. Without `checkpointId`: every checkpoint of the thread, all
   * branches (`before`, `limit`, `filter` as in list()). With one: that
   * checkpoint and its ancestors, following parent pointers (only `limit`).
   */
  async *getStateHistory(config: RunnableConfig, options: ListOptions = {}): AsyncGenerator<StateSnapshot<S>> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "getStateHistory()");
    if (checkpointId === undefined) {
      for await (const tuple of this.checkpointer.list({ threadId, checkpointNs }, options)) yield this.toSnapshot(tuple);
      return;
    }
    if (options.before !== undefined || options.filter !== undefined) {
      throw new InvalidArgumentError("getStateHistory() with a checkpointId follows one branch; drop checkpointId to use before or filter.");
    }
    let cursor: RunnableConfig | undefined = { threadId, checkpointNs, checkpointId };
    for (let count = 0; cursor && count < (options.limit ?? Infinity); count++) {
      const tuple = await this.checkpointer.getTuple(cursor);
      if (!tuple) return;
      yield this.toSnapshot(tuple);
      cursor = tuple.parentConfig;
    }
  }

  /**
   * Writes `values` through the reducers as a new checkpoint (source "update")
   * on top of the latest one (or `config.checkpointId`, which forks). With
   * `asNode`, the next nodes are that node's successors; otherwise `next` is kept.
   */
  async updateState(config: RunnableConfig, values: Partial<S>, asNode?: string): Promise<CheckpointConfig> {
    const resolved = parseConfig(config, "updateState()");
    const base = await this.loadCheckpoint(resolved, "updateState()");
    if (asNode !== undefined && !this.graph.nodes.has(asNode)) {
      throw new InvalidArgumentError(`updateState(config, values, ${JSON.stringify(asNode)}): no node has that name; pass one of ${[...this.graph.nodes.keys()].join(", ")}.`);
    }
    const state = this.graph.applyWrites(await this.loadState(base.checkpoint), this.graph.toWrites(values, "updateState() values"));
    const next = asNode === undefined ? base.checkpoint.next : await this.graph.successors(asNode, state);
    const metadata: CheckpointMetadata = { source: "update", step: base.metadata.step + 1, ...(asNode !== undefined && { node: asNode }), parents: {} };
    return (await this.saveCheckpoint(base.config, state, next, metadata)).config;
  }

  private async *run(input: GraphInput<S>, config: RunnableConfig, rawOptions: InvokeOptions | undefined): AsyncGenerator<StreamEvent<S>, S> {
    const resolved = parseConfig(config, "invoke()");
    const { metadata: userMetadata, recursionLimit } = parseInvokeOptions(rawOptions);

    let tuple: CheckpointTuple;
    if (input instanceof Command) {
      tuple = await this.loadCheckpoint(resolved, "invoke(new Command({ resume }))");
      await this.saveResumeValue(tuple, input.resume);
      tuple = (await this.checkpointer.getTuple(tuple.config))!; // re-read: it now holds the __resume__ write
    } else if (input === null || input === undefined) {
      tuple = await this.loadCheckpoint(resolved, "invoke(null)");
      const replaying = resolved.checkpointId !== undefined && tuple.checkpoint.next.length > 0 && !(await this.isLatest(tuple));
      if (replaying) tuple = await this.fork(tuple, userMetadata);
    } else {
      tuple = await this.saveInput(input, resolved, userMetadata);
    }
    let state: S = await this.loadState(tuple.checkpoint);

    for (let stepsRun = 0; tuple.checkpoint.next.length > 0; stepsRun++) {
      if (stepsRun >= recursionLimit) {
        throw new GraphRecursionError(
          `Ran ${recursionLimit} super-steps without reaching END (next: ${tuple.checkpoint.next.join(", ")}). ` +
            `Check the routing for a loop, or pass a higher recursionLimit in the invoke options; invoke(null, config) continues from here.`,
        );
      }
      const step = tuple.metadata.step + 1;
      const tasks = this.tasksOf(tuple);
      const outcomes = await Promise.all(
        tasks.map((task): Promise<TaskOutcome> | TaskOutcome =>
          task.savedWrites ? { kind: "reused", task, writes: task.savedWrites } : this.runTask(task, state, tuple.config, step),
        ),
      );

      for (const outcome of outcomes) {
        if (outcome.kind === "done") {
          yield { type: "update", node: outcome.task.node, update: (outcome.update ?? {}) as Partial<S>, step };
        }
      }
      const failed = outcomes.find((outcome) => outcome.kind === "error");
      if (failed) throw failed.error; // after every sibling saved its writes, so a retry only re-runs the failed task
      const interrupted = outcomes.filter((outcome) => outcome.kind === "interrupt");
      if (interrupted.length > 0) {
        for (const { task, value } of interrupted) yield { type: "interrupt", node: task.node, value, step };
        return state;
      }

      // Task order, not finishing order: reducers see the same sequence on every run and every resume.
      state = this.graph.applyWrites(state, outcomes.flatMap((outcome) => ("writes" in outcome ? outcome.writes : [])));
      const next = unique((await Promise.all(tasks.map((task) => this.graph.successors(task.node, state)))).flat());
      const metadata: CheckpointMetadata = { ...userMetadata, source: "loop", step, node: tasks.map((t) => t.node).join(","), parents: {} };
      tuple = await this.saveCheckpoint(tuple.config, state, next, metadata);
    }
    yield { type: "final", state };
    return state;
  }

  private async runTask(task: Task, state: S, parentConfig: CheckpointConfig, step: number): Promise<TaskOutcome> {
    const node = this.graph.nodes.get(task.node)!;
    const ctx = { threadId: parentConfig.threadId, checkpointId: parentConfig.checkpointId, taskId: task.id, node: task.node, step };
    let outcome: TaskOutcome;
    let writes: Write[];
    try {
      const update = await runWithResumeValues(task.resumeValues, () => node(state, ctx));
      const channelWrites = this.graph.toWrites(update, `Node "${task.node}" returned a value that`);
      outcome = { kind: "done", task, writes: channelWrites, update };
      // A finished task must leave a trace even when it changed nothing, or a resume would run it again.
      writes = channelWrites.length > 0 ? channelWrites : [[NO_WRITES, null]];
    } catch (error) {
      if (error instanceof GraphInterrupt) {
        outcome = { kind: "interrupt", task, value: error.value };
        writes = [[INTERRUPT, error.value]];
      } else {
        outcome = { kind: "error", task, error };
        writes = [[ERROR, describeError(error)]];
      }
    }
    await this.checkpointer.putWrites(parentConfig, writes, task.id);
    return outcome;
  }

  /** The tasks of a checkpoint's `next`, matched with the pending writes saved for them. */
  private tasksOf(tuple: CheckpointTuple): Task[] {
    return tuple.checkpoint.next.map((node) => {
      const id = taskIdFor(tuple.checkpoint.id, node);
      const saved = tuple.pendingWrites.filter(([taskId]) => taskId === id);
      const regular = saved.filter(([, channel]) => !isSpecialChannel(channel));
      const resume = saved.find(([, channel]) => channel === RESUME);
      const interrupt = saved.find(([, channel]) => channel === INTERRUPT);
      return {
        id,
        node,
        ...(regular.length > 0 && {
          savedWrites: regular.filter(([, channel]) => channel !== NO_WRITES).map(([, channel, value]): Write => [channel, value]),
        }),
        resumeValues: resume ? (resume[2] as unknown[]) : [],
        ...(regular.length === 0 && interrupt && { pendingInterrupt: { value: interrupt[2] } }),
      };
    });
  }

  private async isLatest(tuple: CheckpointTuple): Promise<boolean> {
    const { threadId, checkpointNs } = tuple.config;
    return (await this.checkpointer.getTuple({ threadId, checkpointNs }))?.checkpoint.id === tuple.checkpoint.id;
  }

  /**
   * Replaying a checkpoint that the thread has already moved past (time
   * travel, as in LangGraph): copy it as a "fork" checkpoint whose parent is
   * the old one. The copy has a new id, hence new task ids, so the old step's
   * pending writes (results, interrupts, answers) stay with the old branch and
   * the nodes run again.
   */
  private async fork(tuple: CheckpointTuple, userMetadata: Record<string, unknown>): Promise<CheckpointTuple> {
    const state = await this.loadState(tuple.checkpoint);
    const metadata: CheckpointMetadata = { ...userMetadata, source: "fork", step: tuple.metadata.step, parents: {} };
    return this.saveCheckpoint(tuple.config, state, tuple.checkpoint.next, metadata);
  }

  private async saveResumeValue(tuple: CheckpointTuple, value: unknown): Promise<void> {
    const waiting = this.tasksOf(tuple).filter((task) => task.pendingInterrupt);
    if (waiting.length === 0) {
      throw new ResumeError(
        `No interrupt is pending at checkpoint ${tuple.checkpoint.id} of thread "${tuple.config.threadId}" ` +
          `(next: ${tuple.checkpoint.next.join(", ") || "nothing, the run is finished"}). ` +
          `Command({ resume }) answers an interrupt(); use invoke(null, config) to continue or pass a new input.`,
      );
    }
    // The list grows by one answer per resume; the node's k-th interrupt() returns the k-th answer.
    // Parallel tasks waiting at once all receive this answer.
    for (const task of waiting) {
      await this.checkpointer.putWrites(tuple.config, [[RESUME, [...task.resumeValues, value]]], task.id);
    }
  }

  /**
   * A new input starts a run from START on top of the thread's latest state
   * (so channels with reducers accumulate across turns); the interrupted run
   * it replaces, if any, is abandoned.
   */
  private async saveInput(input: Partial<S>, config: ResolvedConfig, userMetadata: Record<string, unknown>): Promise<CheckpointTuple> {
    const base = await this.checkpointer.getTuple(config);
    if (config.checkpointId !== undefined && !base) throw this.missingCheckpoint(config);
    const previous = base ? await this.loadState(base.checkpoint) : this.graph.initialState();
    const state = this.graph.applyWrites(previous, this.graph.toWrites(input, "The invoke() input"));
    const next = await this.graph.successors(START, state);
    const metadata: CheckpointMetadata = { ...userMetadata, source: "input", step: base ? base.metadata.step + 1 : -1, parents: {} };
    return this.saveCheckpoint(base?.config ?? config, state, next, metadata);
  }

  private async saveCheckpoint(parent: RunnableConfig, state: S, next: string[], metadata: CheckpointMetadata): Promise<CheckpointTuple> {
    const checkpoint: Checkpoint = {
      v: 1,
      id: newCheckpointId(),
      ts: new Date().toISOString(),
      channelValues: state as Record<string, unknown>,
      next,
      stateSchemaVersion: this.stateSchemaVersion,
    };
    await this.checkpointer.put(parent, checkpoint, metadata);
    const { threadId, checkpointNs = "", checkpointId } = parent;
    return {
      config: { threadId, checkpointNs, checkpointId: checkpoint.id },
      checkpoint,
      metadata,
      ...(checkpointId !== undefined && { parentConfig: { threadId, checkpointNs, checkpointId } }),
      pendingWrites: [],
    };
  }

  private async loadCheckpoint(config: ResolvedConfig, call: string): Promise<CheckpointTuple> {
    const tuple = await this.checkpointer.getTuple(config);
    if (tuple) return tuple;
    if (config.checkpointId !== undefined) throw this.missingCheckpoint(config);
    throw new ResumeError(
      `${call}: thread "${config.threadId}" has no checkpoint yet, so there is nothing to continue. ` +
        `Start it with an input: invoke({ ... }, { threadId: "${config.threadId}" }).`,
    );
  }

  private missingCheckpoint(config: ResolvedConfig): ResumeError {
    return new ResumeError(
      `Thread "${config.threadId}" has no checkpoint ${config.checkpointId}; pick an id from getStateHistory({ threadId: "${config.threadId}" }).`,
    );
  }

  /** The checkpoint's state, after checking it was written by this schema version (or migrating it). */
  private async loadState(checkpoint: Checkpoint): Promise<S> {
    const version = checkpoint.stateSchemaVersion ?? 1;
    if (version === this.stateSchemaVersion) return checkpoint.channelValues as S;
    if (!this.migrate) throw new StateSchemaMismatchError(version, this.stateSchemaVersion, checkpoint.id);
    return this.migrate(checkpoint.channelValues, version);
  }

  private toSnapshot(tuple: CheckpointTuple): StateSnapshot<S> {
    return {
      values: tuple.checkpoint.channelValues as S,
      next: tuple.checkpoint.next,
      config: tuple.config,
      metadata: tuple.metadata,
      ...(tuple.parentConfig && { parentConfig: tuple.parentConfig }),
      createdAt: tuple.checkpoint.ts,
      tasks: this.tasksOf(tuple).map(({ id, node, pendingInterrupt }) => ({ id, node, interrupts: pendingInterrupt ? [pendingInterrupt] : [] })),
    };
  }
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}

/** What an `__error__` write stores: enough to read in a checkpoint browser, and plain JSON. */
function describeError(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: "Error", message: String(error) };
}
