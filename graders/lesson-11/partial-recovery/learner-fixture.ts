/**
 * Learner-side fixture of the partial-recovery grader: trusted code that runs in the learner
 * process, next to the code under test. It builds the grader's workflows with synchronous
 * routers and migrations (the contract's shape), whose node bodies and compensations are the
 * trusted side's callbacks (`hooks`): every node entry and every provider call is observed over
 * there, and a crash is the trusted side killing this process before a callback replies.
 *
 * It also opens the SqliteSaver the workflow runs on: the real saver on the given file, wrapped
 * only to tell the trusted side, after the fact, that a checkpoint or a pending write was
 * persisted (the "after its checkpoint" crash point). Nothing here names a check or a crash point.
 */
import { SqliteSaver, type CheckpointSaver } from "#runtime";

type State = Record<string, unknown>;
type Next = readonly string[] | ((state: Readonly<State>) => readonly string[]);

export interface Hooks {
  run(node: string, state: State, context: unknown): Promise<State | undefined>;
  revalidate(node: string, state: State, context: unknown): Promise<boolean>;
  compensate(node: string, state: State, context: unknown): Promise<void>;
  saved(kind: "checkpoint" | "writes"): Promise<void>;
}

const open: SqliteSaver[] = [];

/** The saver for `file`, reporting each persisted checkpoint / write to `hooks.saved`. */
export function openSaver(file: string, hooks?: Pick<Hooks, "saved">): CheckpointSaver {
  const inner = new SqliteSaver(file);
  open.push(inner);
  if (!hooks) return inner;
  return {
    getTuple: (config) => inner.getTuple(config),
    list: (config, options) => inner.list(config, options),
    async put(config, checkpoint, metadata, versions) {
      const saved = await inner.put(config, checkpoint, metadata, versions);
      await hooks.saved("checkpoint");
      return saved;
    },
    async putWrites(config, writes, taskId) {
      await inner.putWrites(config, writes, taskId);
      await hooks.saved("writes");
    },
    deleteThread: (threadId) => inner.deleteThread(threadId),
  };
}

/** Closes every saver this process opened (a resume process ends cleanly). */
export function closeSavers(): void {
  for (const saver of open.splice(0)) {
    try {
      saver.close();
    } catch {
      // already closed
    }
  }
}

/** How long the grader's migrate() takes, at least. */
export const MIGRATION_MS = 30;

export type WorkflowName = "order" | "parallel" | "saga" | "sagaParallel" | "flaky" | "loop";
export interface WorkflowOptions {
  version?: number;
  migrate?: boolean;
  /** A broken variant for the bad-input check. */
  variant?: "duplicate" | "unknown-start" | "unknown-next" | "router-unknown" | "run-not-function" | "router-string" | "bad-update" | "text-update" | "renamed";
}

interface NodeSpec {
  name: string;
  kind: "pure" | "effect";
  /** Absent: the run ends after this node. */
  next?: Next;
  maxAttempts?: number;
  compensable?: boolean;
  /** The node acts on facts the world may change during a pause (a quoted price). */
  revalidates?: boolean;
}

function build(hooks: Hooks, specs: NodeSpec[]) {
  return specs.map((spec) => ({
    name: spec.name,
    kind: spec.kind,
    ...(spec.next !== undefined && { next: spec.next }),
    ...(spec.maxAttempts !== undefined && { maxAttempts: spec.maxAttempts }),
    run: (state: State, context: unknown) => hooks.run(spec.name, { ...state }, context),
    ...(spec.compensable && { compensate: (state: State, context: unknown) => hooks.compensate(spec.name, { ...state }, context) }),
    ...(spec.revalidates && { revalidate: (state: State, context: unknown) => hooks.revalidate(spec.name, { ...state }, context) }),
  }));
}

export function workflow(name: WorkflowName, hooks: Hooks, options: WorkflowOptions = {}) {
  const version = options.version ?? 1;
  let start = [name === "saga" || name === "sagaParallel" ? "reserve" : name === "parallel" ? "intake" : name === "loop" ? "remind" : name === "flaky" ? "charge" : "quote"];
  let specs: NodeSpec[];
  if (name === "order") {
    const due = (state: Readonly<State>) => Number(version === 2 ? state.amountDue : state.total);
    specs = [
      { name: "quote", kind: "pure", next: (state) => (due(state) > 0 ? ["charge"] : ["summarize"]) },
      { name: "charge", kind: "effect", next: ["notify"], revalidates: true },
      { name: "notify", kind: "effect", next: ["summarize"] },
      { name: "summarize", kind: "pure" },
    ];
  } else if (name === "parallel") {
    specs = [
      { name: "intake", kind: "pure", next: ["fraudCheck", "inventory"] },
      { name: "fraudCheck", kind: "pure", next: ["charge"] },
      { name: "inventory", kind: "pure", next: ["charge"] },
      { name: "charge", kind: "effect", next: [] },
    ];
  } else if (name === "saga") {
    specs = [
      { name: "reserve", kind: "effect", next: ["charge"], compensable: true },
      { name: "charge", kind: "effect", next: ["pack"], compensable: true },
      // A pure node with a compensate(): a saga undoes effects only, so it must never be called.
      { name: "pack", kind: "pure", next: ["ship"], compensable: true },
      { name: "ship", kind: "effect", next: [], maxAttempts: 2, compensable: true },
    ];
  } else if (name === "sagaParallel") {
    specs = [
      { name: "reserve", kind: "effect", next: ["charge", "book"], compensable: true },
      { name: "charge", kind: "effect", next: ["ship", "insure"], compensable: true },
      { name: "book", kind: "effect", next: ["ship"], compensable: true },
      { name: "ship", kind: "effect", next: [], compensable: true },
      { name: "insure", kind: "effect", next: [], compensable: true },
    ];
  } else if (name === "flaky") {
    specs = [{ name: "charge", kind: "effect", next: [], maxAttempts: 3 }];
  } else {
    // A reminder sent twice in a loop, then a pure wrap-up.
    specs = [
      { name: "remind", kind: "effect", next: (state) => ((Array.isArray(state.reminders) ? state.reminders.length : 0) < 2 ? ["remind"] : ["wrapUp"]) },
      { name: "wrapUp", kind: "pure", next: [] },
    ];
  }
  if (options.variant === "duplicate") specs = [...specs, specs[0]!];
  if (options.variant === "unknown-start") start = ["checkout"];
  if (options.variant === "unknown-next") specs = specs.map((spec, index) => (index === 1 ? { ...spec, next: ["refundDesk"] } : spec));
  if (options.variant === "router-unknown") specs = specs.map((spec, index) => (index === 0 ? { ...spec, next: () => ["refundDesk"] } : spec));
  if (options.variant === "router-string") specs = specs.map((spec, index) => (index === 0 ? { ...spec, next: () => "charge" as unknown as string[] } : spec));
  // The workflow changed under a paused run: "charge" is now called "payment".
  if (options.variant === "renamed") specs = specs.map((spec) => (spec.name === "charge" ? { ...spec, name: "payment" } : spec.name === "quote" ? { ...spec, next: ["payment"] } : spec));
  const nodes: Array<Record<string, unknown>> = build(hooks, specs);
  if (options.variant === "run-not-function") nodes[0] = { ...nodes[0], run: "quote the order" };
  if (options.variant === "bad-update" || options.variant === "text-update") {
    const run = nodes[0]!.run as (state: State, context: unknown) => Promise<unknown>;
    const wrap = options.variant === "bad-update" ? (update: unknown) => [update] : (update: unknown) => JSON.stringify(update);
    nodes[0] = { ...nodes[0], run: async (state: State, context: unknown) => wrap(await run(state, context)) };
  }
  return {
    schemaVersion: version,
    start,
    nodes,
    ...(options.migrate && {
      migrate: (state: State, fromVersion: number) => {
        if (fromVersion !== 1) throw new Error(`no migration from version ${fromVersion}`);
        // A migration is real work (a real one may rewrite large states): part of the recovery time.
        for (const until = performance.now() + MIGRATION_MS; performance.now() < until; );
        const { total, ...rest } = state;
        return { ...rest, amountDue: total };
      },
    }),
  };
}
