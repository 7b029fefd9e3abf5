/**
 * The world the partial-recovery grader runs submissions in: a ledger file, fake external
 * providers with an idempotency-key API (like a payment provider's), the grader's workflows
 * with crash points, and a saver wrapper that can crash right after a checkpoint is written.
 *
 * The ledger is an append-only JSON-lines file written synchronously, so what a process did
 * before it was SIGKILLed is still there for the grader to count: every node run, every call a
 * provider received, and whether the provider executed it or deduplicated it by key.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CheckpointMetadata, CheckpointSaver, CheckpointTuple, RunnableConfig } from "#runtime";
import { crashPoint, crashTarget } from "#harness/crash.ts";
import type * as Api from "../../../solutions/lesson-11/partial-recovery/index.ts";

export type RecoveryApi = typeof Api;
export type Workflow = Api.Workflow;
export type RunResult = Api.RunResult;

// ---- ledger and providers -------------------------------------------------------------

export type LedgerEntry =
  | { kind: "run"; node: string; attempt: number; key: string; pid: number }
  | { kind: "call"; service: string; key: string; about: string; deduplicated: boolean; result: string; pid: number };

export class Ledger {
  constructor(readonly file: string) {}

  entries(): LedgerEntry[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as LedgerEntry);
  }

  append(entry: LedgerEntry): void {
    appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
  }

  runs(node: string): number {
    return this.entries().filter((entry) => entry.kind === "run" && entry.node === node).length;
  }

  calls(service: string): Array<Extract<LedgerEntry, { kind: "call" }>> {
    return this.entries().filter((entry): entry is Extract<LedgerEntry, { kind: "call" }> => entry.kind === "call" && entry.service === service);
  }

  /** Calls the provider actually executed (a deduplicated retry does not count). */
  executed(service: string): number {
    return this.calls(service).filter((call) => !call.deduplicated).length;
  }
}

/**
 * An external service with an idempotency-key API. A key seen before returns the first call's
 * result and executes nothing. Results are numbered per ledger (`payments#1`), so a second real
 * execution shows up in the workflow's final state as well as in the ledger.
 */
export class Provider {
  constructor(
    private readonly ledger: Ledger,
    readonly service: string,
  ) {}

  call(key: unknown, about: string): string {
    if (typeof key !== "string" || key.length === 0 || key.length > 255) {
      throw new Error(`${this.service}: the idempotency key must be a non-empty string of at most 255 characters, got ${JSON.stringify(key)}`);
    }
    const earlier = this.ledger.calls(this.service).find((call) => call.key === key && !call.deduplicated);
    const result = earlier?.result ?? `${this.service}#${this.ledger.executed(this.service) + 1}`;
    this.ledger.append({ kind: "call", service: this.service, key, about, deduplicated: earlier !== undefined, result, pid: process.pid });
    return result;
  }
}

// ---- crash probes -----------------------------------------------------------------------

/**
 * Connects the workflow's nodes with the saver wrapper, for crash points that depend on what the
 * executor has persisted: "after the checkpoint that follows node N" and "once a branch's writes
 * are saved". In the grader's own process nothing crashes and the probe only records.
 */
export class Probe {
  private readonly returnedSinceCheckpoint = new Set<string>();
  private readonly writesSavedAfter = new Map<string, number>();

  nodeReturned(node: string): void {
    this.returnedSinceCheckpoint.add(node);
    this.writesSavedAfter.set(node, 0);
  }

  checkpointSaved(): void {
    for (const node of this.returnedSinceCheckpoint) crashPoint(`after-checkpoint:${node}`);
    this.returnedSinceCheckpoint.clear();
  }

  writesSaved(): void {
    for (const [node, count] of this.writesSavedAfter) this.writesSavedAfter.set(node, count + 1);
  }

  /** Waits until `node` has returned and a pending write was saved after it (or `limitMs` passed). */
  async untilWritesSavedAfter(node: string, limitMs: number): Promise<void> {
    for (const started = Date.now(); Date.now() - started < limitMs; await sleep(5)) {
      if ((this.writesSavedAfter.get(node) ?? 0) > 0) return;
    }
  }
}

/** Wraps a saver: tells the probe when a checkpoint or pending write has been persisted. */
export function probedSaver(saver: CheckpointSaver, probe: Probe): CheckpointSaver {
  return {
    getTuple: (config: RunnableConfig) => saver.getTuple(config),
    list: (config, options) => saver.list(config, options),
    async put(config: RunnableConfig, checkpoint, metadata: CheckpointMetadata) {
      const saved = await saver.put(config, checkpoint, metadata);
      probe.checkpointSaved();
      return saved;
    },
    async putWrites(config, writes, taskId) {
      await saver.putWrites(config, writes, taskId);
      probe.writesSaved();
    },
    deleteThread: (threadId) => saver.deleteThread(threadId),
  };
}

// ---- the grader's workflows ---------------------------------------------------------------

type State = Record<string, unknown>;
type NodeBody = (state: State, context: Api.NodeContext) => State | Promise<State>;

export interface World {
  ledger: Ledger;
  probe: Probe;
}

interface NodeOptions extends Pick<Api.WorkflowNode, "compensate" | "maxAttempts"> {
  /** Awaited before the `before:` crash point, to crash at a moment that depends on other tasks. */
  settleBeforeCrash?: () => Promise<void>;
}

/** A node with the matrix's crash points around its work: before it, after its work, and (via the probe) after its checkpoint. */
function node(world: World, name: string, kind: Api.NodeKind, body: NodeBody, next: Api.WorkflowNode["next"], options: NodeOptions = {}): Api.WorkflowNode {
  const { settleBeforeCrash, ...rest } = options;
  return {
    name,
    kind,
    next,
    ...rest,
    async run(state, context) {
      if (settleBeforeCrash && crashTarget() === `before:${name}`) await settleBeforeCrash();
      crashPoint(`before:${name}`);
      world.ledger.append({ kind: "run", node: name, attempt: context.attempt, key: String(context.idempotencyKey), pid: process.pid });
      const update = await body(state, context);
      crashPoint(`after-work:${name}`);
      world.probe.nodeReturned(name);
      return update;
    },
  };
}

export const ORDER_NODES = ["quote", "charge", "notify", "summarize"] as const;
export const ORDER_EFFECTS = { charge: "payments", notify: "email" } as const;

export interface OrderInput extends State {
  orderId: string;
  amount: number;
}

/**
 * quote (pure, an LLM-priced quote) -> charge (effect: payments) -> notify (effect: email)
 * -> summarize (pure). Version 2 renamed `total` to `amountDue`; its migrate() is optional.
 */
export function orderWorkflow(world: World, options: { version?: 1 | 2; migrate?: boolean } = {}): Workflow {
  const version = options.version ?? 1;
  const due = (state: State) => (version === 2 ? state.amountDue : state.total) as number;
  const payments = new Provider(world.ledger, "payments");
  const email = new Provider(world.ledger, "email");
  return {
    schemaVersion: version,
    start: ["quote"],
    nodes: [
      node(world, "quote", "pure", (state) => {
        const total = Math.round((state.amount as number) * 108) / 100; // with 8% tax
        return version === 2 ? { amountDue: total } : { total };
      }, (state) => (due(state) > 0 ? ["charge"] : ["summarize"])),
      node(world, "charge", "effect", (state, context) => ({ receipt: payments.call(context.idempotencyKey, `charge ${due(state)} for ${String(state.orderId)}`) }), ["notify"]),
      node(world, "notify", "effect", (state, context) => ({ emailId: email.call(context.idempotencyKey, `receipt ${String(state.receipt)}`) }), ["summarize"]),
      node(world, "summarize", "pure", (state) => ({ summary: `${String(state.orderId)}: ${due(state)} paid (${String(state.receipt)}), confirmation ${String(state.emailId)}` }), []),
    ],
    ...(options.migrate && {
      migrate: (state: State, fromVersion: number) => {
        if (fromVersion !== 1) throw new Error(`no migration from version ${fromVersion}`);
        const { total, ...rest } = state;
        return { ...rest, amountDue: total };
      },
    }),
  };
}

/** intake -> (fraudCheck || inventory), two pure branches in one step -> charge (effect). */
export function parallelWorkflow(world: World): Workflow {
  const payments = new Provider(world.ledger, "payments");
  return {
    schemaVersion: 1,
    start: ["intake"],
    nodes: [
      node(world, "intake", "pure", (state) => ({ lines: (state.amount as number) > 50 ? 2 : 1 }), ["fraudCheck", "inventory"]),
      node(world, "fraudCheck", "pure", (state) => ({ risk: (state.amount as number) > 400 ? "review" : "low" }), ["charge"]),
      // The crash of the parallel check: inventory dies after its sibling's result was saved.
      node(world, "inventory", "pure", (state) => ({ reserved: state.lines }), ["charge"], { settleBeforeCrash: () => world.probe.untilWritesSavedAfter("fraudCheck", 1500) }),
      node(world, "charge", "effect", (state, context) => ({ receipt: payments.call(context.idempotencyKey, `charge ${String(state.amount)} (risk ${String(state.risk)})`) }), []),
    ],
  };
}

/** reserve (effect) -> charge (effect) -> ship (fails for good, 2 attempts): compensations expected. */
export function sagaWorkflow(world: World): Workflow {
  const stock = new Provider(world.ledger, "stock");
  const payments = new Provider(world.ledger, "payments");
  const releases = new Provider(world.ledger, "releases");
  const refunds = new Provider(world.ledger, "refunds");
  return {
    schemaVersion: 1,
    start: ["reserve"],
    nodes: [
      node(world, "reserve", "effect", (state, context) => ({ reservation: stock.call(context.idempotencyKey, `reserve ${String(state.orderId)}`) }), ["charge"], {
        compensate(_state, context) {
          releases.call(context.idempotencyKey, `release ${context.effectKey}`);
        },
      }),
      node(world, "charge", "effect", (state, context) => ({ receipt: payments.call(context.idempotencyKey, `charge ${String(state.amount)}`) }), ["ship"], {
        compensate(_state, context) {
          refunds.call(context.idempotencyKey, `refund ${context.effectKey}`);
          crashPoint("after-compensate:charge");
        },
      }),
      node(world, "ship", "effect", () => {
        throw new Error("the carrier rejected the parcel");
      }, [], { maxAttempts: 2, compensate: () => undefined }),
    ],
  };
}

/** charge reaches the provider, then its first attempt times out (the provider did charge): a retry must reuse the key. */
export function flakyChargeWorkflow(world: World): Workflow {
  const payments = new Provider(world.ledger, "payments");
  return {
    schemaVersion: 1,
    start: ["charge"],
    nodes: [
      node(world, "charge", "effect", async (state, context) => {
        const receipt = payments.call(context.idempotencyKey, `charge ${String(state.amount)}`);
        if (context.attempt === 1) {
          await sleep(10); // the client's timeout elapses: a retry comes later, never in the same millisecond
          throw new Error("timeout waiting for the payment provider's answer");
        }
        return { receipt };
      }, [], { maxAttempts: 3 }),
    ],
  };
}

export const WORKFLOWS = {
  order: (world: World) => orderWorkflow(world),
  parallel: parallelWorkflow,
  saga: sagaWorkflow,
} as const;
export type WorkflowName = keyof typeof WORKFLOWS;

/**
 * The states the grader's workflows go through for an input, step by step (the input first),
 * computed here and not by the submission: providers number their results per ledger, so a
 * run that executes each effect once gets `payments#1`, `email#1`.
 */
export function expectedStates(workflow: WorkflowName, input: OrderInput): State[] {
  const states: State[] = [{ ...input }];
  const step = (update: State) => states.push({ ...states.at(-1)!, ...update });
  if (workflow === "order") {
    const total = Math.round(input.amount * 108) / 100;
    step({ total });
    step({ receipt: "payments#1" });
    step({ emailId: "email#1" });
    step({ summary: `${input.orderId}: ${total} paid (payments#1), confirmation email#1` });
  } else if (workflow === "parallel") {
    const lines = input.amount > 50 ? 2 : 1;
    step({ lines });
    step({ risk: input.amount > 400 ? "review" : "low", reserved: lines });
    step({ receipt: "payments#1" });
  } else {
    throw new Error(`no expected states for the ${workflow} workflow`);
  }
  return states;
}

// ---- temp files, history ----------------------------------------------------------------------

export interface Scratch {
  dir: string;
  dbFile: string;
  ledger: Ledger;
  remove(): void;
}

export function scratch(): Scratch {
  const dir = mkdtempSync(join(tmpdir(), "ck-recovery-"));
  return { dir, dbFile: join(dir, "checkpoints.db"), ledger: new Ledger(join(dir, "ledger.ndjson")), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A checkpoint and its ancestors, newest first, by following parent pointers. */
export async function chainFrom(saver: CheckpointSaver, config: RunnableConfig): Promise<CheckpointTuple[]> {
  const chain: CheckpointTuple[] = [];
  for (let tuple = await saver.getTuple(config); tuple; tuple = tuple.parentConfig && (await saver.getTuple(tuple.parentConfig))) {
    chain.push(tuple);
    if (chain.length > 100) throw new Error("the parent pointers form a loop (more than 100 ancestors)");
  }
  return chain;
}

export async function allCheckpoints(saver: CheckpointSaver, threadId: string): Promise<CheckpointTuple[]> {
  const tuples: CheckpointTuple[] = [];
  for await (const tuple of saver.list({ threadId })) tuples.push(tuple);
  return tuples;
}
