/**
 * The trusted side of the partial-recovery grader's world: the ledger, fake external providers
 * with an idempotency-key API (like a payment provider's), the bodies of the grader's nodes, and
 * the crash points. The learner's executor gets the workflows from learner-fixture.ts, whose node
 * bodies call back here: every node entry and every provider call is recorded in this process,
 * which survives the crashes it causes.
 *
 * Crash points (a small space, enumerated by the checks): for each node,
 *   before:N            killed when the executor enters N (before its body runs);
 *   after-work:N        N's body ran (an effect reached its provider), killed before N returns;
 *   after-checkpoint:N  N returned, killed once the store has saved the next checkpoint (or, for an
 *                       executor that does not save through the given saver, at the next node entry).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SqliteSaver, type CheckpointTuple, type RunnableConfig } from "#runtime";
import { CrashSwitch } from "#harness/crash.ts";
import type * as Api from "../../../solutions/lesson-11/partial-recovery/index.ts";
import type { Hooks, WorkflowName, WorkflowOptions } from "./learner-fixture.ts";

export type { WorkflowName } from "./learner-fixture.ts";
export type RecoveryApi = typeof Api;
export type RunResult = Api.RunResult;
export type RunReport = Api.RunReport;
export type LearnerFixture = typeof import("./learner-fixture.ts");

// ---- ledger and providers -------------------------------------------------------------

export type LedgerEntry =
  | { kind: "run"; node: string; attempt: number; key: string; thread: string }
  | { kind: "call"; service: string; key: string; about: string; deduplicated: boolean; result: string; thread: string };
export type CallEntry = Extract<LedgerEntry, { kind: "call" }>;

/** Everything the providers and nodes saw, in order (shared by the threads that share providers). */
export class Ledger {
  readonly entries: LedgerEntry[] = [];

  runs(node: string, thread?: string): number {
    return this.entries.filter((entry) => entry.kind === "run" && entry.node === node && (thread === undefined || entry.thread === thread)).length;
  }

  calls(service: string): CallEntry[] {
    return this.entries.filter((entry): entry is CallEntry => entry.kind === "call" && entry.service === service);
  }

  /** Calls the provider actually executed (a deduplicated retry does not count). */
  executed(service: string): CallEntry[] {
    return this.calls(service).filter((call) => !call.deduplicated);
  }

  /**
   * An external service with an idempotency-key API: a key seen before returns the first call's
   * result and executes nothing. Results are numbered per service (`payments#1`), so a second
   * real execution shows in the workflow's final state as well as here.
   */
  call(service: string, key: unknown, about: string, thread: string): string {
    if (typeof key !== "string" || key.length === 0 || key.length > 255) {
      throw new Error(`${service}: the idempotency key must be a non-empty string of at most 255 characters, got ${JSON.stringify(key)}`);
    }
    const earlier = this.executed(service).find((call) => call.key === key);
    const result = earlier?.result ?? `${service}#${this.executed(service).length + 1}`;
    this.entries.push({ kind: "call", service, key, about, deduplicated: earlier !== undefined, result, thread });
    return result;
  }
}

// ---- crash points ---------------------------------------------------------------------

export type Moment = "before" | "after-work" | "after-checkpoint" | "before-compensate" | "after-compensate";
export interface CrashPoint {
  moment: Moment;
  node: string;
}
export const label = (point: CrashPoint) => `${point.moment}:${point.node}`;

type Context = { idempotencyKey?: unknown; attempt?: unknown; threadId?: unknown; effectKey?: unknown; effectUpdate?: unknown };
type State = Record<string, unknown>;

/**
 * One thread of one of the grader's workflows, seen from the trusted side: its hooks (what the
 * learner-side workflow calls), the ledger they write to, and the crash point it is armed with.
 */
export class World {
  readonly crash = new CrashSwitch();
  point: CrashPoint | undefined;
  private checkpointCrashDue = false;
  private returnedSince = new Set<string>();
  /** Bound on how long one branch waits for its sibling's write (parallel crash only), ms. */
  waitLimitMs = 3_000;
  /** saga only: whether the carrier accepts the parcel (by default it refuses, so every saga run fails at ship). */
  carrierAccepts = false;
  /** What compensate() was told that does not match the effect it undoes (a wrong effectKey or effectUpdate). */
  readonly compensationIssues: string[] = [];
  /** order only: the tax rate in percent points over 100 the quote uses now (drift: the price changes during a pause). */
  taxRate = 108;
  /** order only: the pricing service cannot be reached, so a quote cannot be revalidated. */
  pricingDown = false;
  /** Every revalidate() call: the node, and the context it got. */
  readonly revalidations: Array<{ node: string; context: unknown }> = [];
  /** What options.onReport received, in order. */
  readonly reports: RunReport[] = [];
  /** Trusted-side clock (performance.now) of the last call's start, its first node entry and its end. */
  readonly timing: { sent: number; firstRun?: number; ended?: number } = { sent: 0 };

  constructor(
    readonly workflow: WorkflowName,
    readonly threadId: string,
    readonly ledger: Ledger = new Ledger(),
    public options: WorkflowOptions = {},
  ) {}

  /** Arms the crash point for the next run in `victim` (none: run to the end). */
  arm(victim: Parameters<CrashSwitch["arm"]>[0], point?: CrashPoint): void {
    this.point = point;
    this.checkpointCrashDue = false;
    this.crash.arm(point ? victim : undefined);
  }

  /** True when the after-checkpoint point was reached by a run that finished without saving through the saver. */
  get checkpointCrashPending(): boolean {
    return this.checkpointCrashDue;
  }

  private at(moment: Moment, node: string): boolean {
    return this.crash.armed && this.point?.moment === moment && this.point.node === node;
  }

  hooks(): Hooks {
    return {
      run: (node, state, context) => this.run(node, state, context as Context),
      revalidate: async (node, state, context) => {
        if (this.checkpointCrashDue && this.crash.armed) return this.crash.fire();
        this.revalidations.push({ node, context });
        if (this.pricingDown) throw new Error("the pricing service is unavailable");
        return Number(state[(this.options.version ?? 1) === 2 ? "amountDue" : "total"]) === this.quote(state);
      },
      compensate: (node, state, context) => this.compensate(node, state, context as Context),
      saved: async (kind) => {
        if (kind === "writes") for (const node of this.returnedSince) this.writesAfter.add(node);
        if (kind === "checkpoint" && this.checkpointCrashDue && this.crash.armed) return this.crash.fire();
      },
    };
  }

  private readonly writesAfter = new Set<string>();

  /** The order's total at today's tax rate. */
  private quote(state: State): number {
    return Math.round(Number(state.amount) * this.taxRate) / 100;
  }

  private async run(node: string, state: State, context: Context): Promise<State | undefined> {
    this.timing.firstRun ??= performance.now();
    if (this.checkpointCrashDue && this.crash.armed) return this.crash.fire();
    if (this.at("before", node)) {
      // The parallel crash: this branch dies after its sibling's result was persisted.
      if (this.workflow === "parallel" && node === "inventory") await this.untilWritten("fraudCheck");
      return this.crash.fire();
    }
    const key = typeof context.idempotencyKey === "string" ? context.idempotencyKey : JSON.stringify(context.idempotencyKey);
    this.ledger.entries.push({ kind: "run", node, attempt: Number(context.attempt), key, thread: this.threadId });
    const update = await this.body(node, state, context);
    if (this.at("after-work", node)) return this.crash.fire();
    this.returnedSince.add(node);
    if (this.at("after-checkpoint", node)) this.checkpointCrashDue = true;
    return update;
  }

  private async untilWritten(node: string): Promise<void> {
    for (const started = Date.now(); Date.now() - started < this.waitLimitMs && !this.writesAfter.has(node); ) await sleep(5);
  }

  private call(service: string, context: Context, about: string): string {
    return this.ledger.call(service, context.idempotencyKey, about, this.threadId);
  }

  private async body(node: string, state: State, context: Context): Promise<State | undefined> {
    const version = this.options.version ?? 1;
    const due = () => Number(version === 2 ? state.amountDue : state.total);
    switch (`${this.workflow}/${node}`) {
      case "order/quote": {
        const total = this.quote(state); // with 8% tax, unless the drift check changed it
        return version === 2 ? { amountDue: total } : { total };
      }
      case "order/charge":
        return { receipt: this.call("payments", context, `charge ${due()} for ${String(state.orderId)}`) };
      case "order/notify":
        return { emailId: this.call("email", context, `receipt ${String(state.receipt)}`) };
      case "order/summarize":
        return { summary: `${String(state.orderId)}: ${due()} paid (${String(state.receipt)}), confirmation ${String(state.emailId)}` };
      case "parallel/intake":
        return { lines: Number(state.amount) > 50 ? 2 : 1 };
      case "parallel/fraudCheck":
        return { risk: Number(state.amount) > 400 ? "review" : "low" };
      case "parallel/inventory":
        return { reserved: state.lines };
      case "parallel/charge":
        return { receipt: this.call("payments", context, `charge ${String(state.amount)} (risk ${String(state.risk)})`) };
      case "saga/reserve":
        return { reservation: this.call("stock", context, `reserve ${String(state.orderId)}`) };
      case "saga/charge":
        return { receipt: this.call("payments", context, `charge ${String(state.amount)}`) };
      case "saga/pack":
        return { parcelWeight: Math.ceil(Number(state.amount) / 50) };
      case "saga/ship":
        if (this.carrierAccepts) return { parcel: this.call("shipping", context, `ship ${String(state.orderId)}`) };
        throw new Error("the carrier rejected the parcel");
      case "sagaParallel/ship":
        throw new Error("the carrier rejected the parcel");
      case "sagaParallel/reserve":
        return { reservation: this.call("stock", context, `reserve ${String(state.orderId)}`) };
      case "sagaParallel/charge":
        return { receipt: this.call("payments", context, `charge ${String(state.amount)}`) };
      case "sagaParallel/book":
        return { booking: this.call("courier", context, `book a courier for ${String(state.orderId)}`) };
      case "sagaParallel/insure":
        return { policy: this.call("insurance", context, `insure the parcel of ${String(state.orderId)}`) };
      case "flaky/charge": {
        const receipt = this.call("payments", context, `charge ${String(state.amount)}`);
        if (Number(context.attempt) === 1) {
          await sleep(10); // the client's timeout elapses: a retry comes later, never in the same millisecond
          throw new Error("timeout waiting for the payment provider's answer");
        }
        return { receipt };
      }
      case "loop/remind": {
        const sent = Array.isArray(state.reminders) ? state.reminders : [];
        return { reminders: [...sent, this.call("reminders", context, `reminder ${sent.length + 1} for ${String(state.orderId)}`)] };
      }
      case "loop/wrapUp":
        return { done: `${String(state.orderId)}: ${(state.reminders as unknown[]).length} reminders` };
      default:
        throw new Error(`grader bug: no body for ${this.workflow}/${node}`);
    }
  }

  /** compensate(node) must name an effect that happened: the key it ran with and the update it returned. */
  private verifyCompensation(node: string, context: Context): void {
    const effect = SAGA_EFFECTS[node as keyof typeof SAGA_EFFECTS];
    if (!effect) return;
    const call = this.ledger.executed(effect.service).find((entry) => entry.key === context.effectKey && entry.thread === this.threadId);
    const update = context.effectUpdate as State | undefined;
    if (!call) {
      this.compensationIssues.push(`compensate() of "${node}" was called with effectKey ${JSON.stringify(context.effectKey)}, but no ${effect.service} request ran with that key${node === "ship" ? ' ("ship" failed: it has no effect to undo)' : ""}`);
    } else if (update?.[effect.field] !== call.result) {
      this.compensationIssues.push(`compensate() of "${node}" got effectUpdate ${JSON.stringify(update)}, but "${node}" returned { ${effect.field}: ${JSON.stringify(call.result)} }`);
    }
  }

  private async compensate(node: string, _state: State, context: Context): Promise<void> {
    if (this.workflow !== "saga" && this.workflow !== "sagaParallel") return;
    if (this.at("before-compensate", node)) return this.crash.fire();
    if (node === "pack") return void this.compensationIssues.push('compensate() of "pack", a pure node, was called: a saga undoes effects, and a pure node changed nothing outside');
    this.verifyCompensation(node, context);
    if (node === "insure") this.ledger.call("voids", context.idempotencyKey, `void ${String(context.effectKey)}`, this.threadId);
    if (node === "book") this.ledger.call("cancellations", context.idempotencyKey, `cancel ${String(context.effectKey)}`, this.threadId);
    if (node === "reserve") this.ledger.call("releases", context.idempotencyKey, `release ${String(context.effectKey)}`, this.threadId);
    if (node === "charge") {
      this.ledger.call("refunds", context.idempotencyKey, `refund ${String(context.effectKey)}`, this.threadId);
      if (this.at("after-compensate", "charge")) return this.crash.fire();
    }
  }
}

/** The saga workflows' effects: the provider each calls and the state field its update sets. */
const SAGA_EFFECTS = {
  reserve: { service: "stock", field: "reservation" },
  charge: { service: "payments", field: "receipt" },
  book: { service: "courier", field: "booking" },
  insure: { service: "insurance", field: "policy" },
  ship: { service: "shipping", field: "parcel" },
} as const;

export const ORDER_NODES = ["quote", "charge", "notify", "summarize"] as const;
export const ORDER_EFFECTS = { charge: "payments", notify: "email" } as const;

export interface OrderInput extends State {
  orderId: string;
  amount: number;
}

/**
 * The states the grader's workflows go through for an input, step by step (the input first),
 * computed here and not by the submission: providers number their results, so a run that
 * executes each effect once gets `payments#1`, `email#1`.
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
  } else if (workflow === "loop") {
    step({ reminders: ["reminders#1"] });
    step({ reminders: ["reminders#1", "reminders#2"] });
    step({ done: `${input.orderId}: 2 reminders` });
  } else {
    throw new Error(`no expected states for the ${workflow} workflow`);
  }
  return states;
}

// ---- files and the store, read from the trusted side --------------------------------------

/** A fresh SQLite file in the unit's scratch folder, with a neutral random name. */
export function newDbFile(scratch: string): string {
  return join(scratch, `${randomBytes(6).toString("hex")}.db`);
}

/** Opens the learner's SQLite file here, in the trusted process, to read what was persisted. */
export async function withStore<T>(file: string, read: (saver: SqliteSaver) => Promise<T>): Promise<T> {
  const saver = new SqliteSaver(file);
  try {
    return await read(saver);
  } finally {
    saver.close();
  }
}

/** A checkpoint and its ancestors, newest first, by following parent pointers. */
export async function chainFrom(saver: SqliteSaver, config: RunnableConfig): Promise<CheckpointTuple[]> {
  const chain: CheckpointTuple[] = [];
  for (let tuple = await saver.getTuple(config); tuple; tuple = tuple.parentConfig && (await saver.getTuple(tuple.parentConfig))) {
    chain.push(tuple);
    if (chain.length > 100) throw new Error("the parent pointers form a loop (more than 100 ancestors)");
  }
  return chain;
}

export async function allCheckpoints(saver: SqliteSaver, threadId: string): Promise<CheckpointTuple[]> {
  const tuples: CheckpointTuple[] = [];
  for await (const tuple of saver.list({ threadId })) tuples.push(tuple);
  return tuples;
}
