/**
 * The trusted side of the resumable-graph grader: the ledger (every node visit, checkpoint and
 * email, recorded in this process, which survives the crashes it causes), the mailer the
 * learner's email node talks to, crash points, seeded inputs, the states an uncrashed run goes
 * through, and "run this task in that learner process" with its outcome.
 *
 * Crash points (a small space, enumerated by the checks), for each visit of each node:
 *   during:N#v       killed while the node runs (a pure node's body, or as the email node is entered);
 *   in-send:N#v      the mailer sent the email and recorded it, killed before it answers;
 *   after-work:N#v   the email node returned its update, killed before the graph goes on;
 *   after-save:N#v   killed once the checkpoint saved after that visit was committed.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { deserialize } from "node:v8";
import { inspect, isDeepStrictEqual } from "node:util";
import Database from "better-sqlite3";
import type { CheckContext } from "#harness/check.ts";
import { CrashSwitch, describeOutcome, untilCrash, type CrashOutcome } from "#harness/crash.ts";
import { failWithSeed as fail, seededRandom } from "#harness/seed.ts";
import type { LearnerProcess } from "../../../kit/sandbox/learner.ts";
import type * as Reference from "../../../solutions/lesson-03/resumable-graph/index.ts";
import { body, EMAIL_NODE, END, GRAPHS, INTERRUPT, type GraphName, type State } from "./graphs.ts";
import type { BuildOptions, Hooks } from "./learner-fixture.ts";

export type GraphApi = typeof Reference;
export type LearnerFixture = typeof import("./learner-fixture.ts");
export { EMAIL_NODE, END, INTERRUPT, type GraphName, type State };

export const FIXTURE = "graphs";
const random = seededRandom();

export function show(value: unknown): string {
  return inspect(value, { depth: 5, breakLength: Infinity, maxArrayLength: 12, maxStringLength: 80 });
}

export { fail };

export const opaque = (bytes = 6): string => randomBytes(bytes).toString("hex");

export function newFile(check: CheckContext<GraphApi>): string {
  return join(check.scratch, `${opaque()}.db`);
}

// ---- ledger, mailer, crash points ---------------------------------------------------------

export type Moment = "during" | "in-send" | "after-work" | "after-save";
export interface CrashPoint {
  moment: Moment;
  node: string;
  /** 1 for the node's first visit in the task, 2 for the second... */
  visit: number;
}
export const label = (p: CrashPoint) => `${p.moment}:${p.node}${p.visit > 1 ? ` (visit ${p.visit})` : ""}`;

export type Entry =
  | { kind: "run"; task: string; node: string; key: unknown; phase: number }
  | { kind: "save"; task: string; currentNode: string; phase: number; after: string | undefined }
  | { kind: "find"; task: string; key: string; phase: number }
  | { kind: "send"; task: string; key: string; emailId: string; to: string; subject: string; body: string; phase: number };

/** Everything the grader's nodes, store and mailer saw, in order (shared by the tasks of a check). */
export class Ledger {
  readonly entries: Entry[] = [];

  of<K extends Entry["kind"]>(kind: K, task?: string, phase?: number): Array<Extract<Entry, { kind: K }>> {
    return this.entries.filter((e): e is Extract<Entry, { kind: K }> => e.kind === kind && (task === undefined || e.task === task) && (phase === undefined || e.phase === phase));
  }

  runs(task: string, phase?: number): string[] {
    return this.of("run", task, phase).map((e) => e.node);
  }
}

const MAX_KEY = 200;

/** One task of one graph, seen from the trusted side: its hooks, its mailer, its crash point. */
export class World {
  readonly crash = new CrashSwitch();
  readonly taskId: string;
  point: CrashPoint | undefined;
  /** Which invoke of the task the evidence belongs to (1 = the first). */
  phase = 0;
  private visits = new Map<string, number>();
  private last: { node: string; visit: number } | undefined;
  /** Called as a node is entered (the concurrency check holds nodes here). */
  onEnter: (node: string) => Promise<void> = async () => undefined;
  /** The body of a node, for checks that make one fail. */
  bodyOf: (node: string, state: State) => State = (node, state) => body(this.graph, node, state);

  constructor(
    readonly graph: GraphName,
    readonly ledger: Ledger = new Ledger(),
    taskId?: string,
  ) {
    this.taskId = taskId ?? opaque();
  }

  /** The next invoke runs in `learner`, crashing at `point` if given. Visits are counted per invoke. */
  begin(learner: LearnerProcess, point?: CrashPoint): void {
    this.phase += 1;
    this.point = point;
    this.crash.arm(point ? learner : undefined);
    this.visits = new Map();
    this.last = undefined;
  }

  private at(moment: Moment): boolean {
    return this.crash.armed && this.point?.moment === moment && this.point.node === this.last?.node && this.point.visit === this.last.visit;
  }

  private async entered(node: string, context: unknown): Promise<void> {
    const visit = (this.visits.get(node) ?? 0) + 1;
    this.visits.set(node, visit);
    this.last = { node, visit };
    this.ledger.entries.push({ kind: "run", task: this.taskId, node, key: (context as { key?: unknown } | null)?.key, phase: this.phase });
    await this.onEnter(node);
    if (this.at("during")) return this.crash.fire();
  }

  hooks(): Hooks {
    return {
      run: async (node, state, context) => {
        await this.entered(node, context);
        return this.bodyOf(node, state);
      },
      enter: (node, _state, context) => this.entered(node, context),
      left: async () => {
        if (this.at("after-work")) return this.crash.fire();
      },
      saved: async (task, currentNode) => {
        this.ledger.entries.push({ kind: "save", task, currentNode, phase: this.phase, after: this.last?.node });
        const due = this.at("after-save");
        this.last = undefined;
        if (due) return this.crash.fire();
      },
    };
  }

  /** The email provider: it sends every call it gets, and records it under the key. */
  mailer() {
    const validKey = (key: unknown): string => {
      if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY) throw new Error(`mailer: the key must be a non-empty string of at most ${MAX_KEY} characters; got ${show(key)}`);
      return key;
    };
    return {
      find: async (key: unknown) => {
        const k = validKey(key);
        this.ledger.entries.push({ kind: "find", task: this.taskId, key: k, phase: this.phase });
        const sent = this.ledger.of("send").find((e) => e.key === k);
        return sent ? { emailId: sent.emailId } : null;
      },
      send: async (key: unknown, email: { to?: unknown; subject?: unknown; body?: unknown }) => {
        const k = validKey(key);
        const emailId = `msg-${opaque(4)}`;
        this.ledger.entries.push({ kind: "send", task: this.taskId, key: k, emailId, to: String(email?.to), subject: String(email?.subject), body: String(email?.body), phase: this.phase });
        if (this.at("in-send")) return this.crash.fire();
        return { emailId };
      },
    };
  }
}

// ---- inputs and expected runs ---------------------------------------------------------------

const WORDS = ["invoice", "März", "total", "café", "due", "paid", "ledger", "refund", "batch", "policy", "clause", "review", "annex", "tax", "net"];

/** A document to import: a seeded number of chunks and batches (2 to 4 embed visits). */
export function importInput(): State {
  const batches = 2 + Math.floor(random() * 3);
  const batchSize = 2 + Math.floor(random() * 3);
  const chunkWords = 3 + Math.floor(random() * 4);
  const chunks = (batches - 1) * batchSize + 1 + Math.floor(random() * batchSize);
  const words = chunks * chunkWords - Math.floor(random() * chunkWords);
  const text = Array.from({ length: words }, () => WORDS[Math.floor(random() * WORDS.length)]).join(" ");
  return { docId: `doc-${Math.floor(random() * 1e6)}`, text, chunkWords, batchSize, chunks: [], embedded: new Map(), batches: 0 };
}

export function emailInput(): State {
  const n = 1 + Math.floor(random() * 3);
  return { to: `ops+${Math.floor(random() * 1e4)}@example.org`, subject: `Import report ${Math.floor(random() * 1e3)}`, notes: Array.from({ length: n }, (_, i) => `${WORDS[Math.floor(random() * WORDS.length)]} ${i}`) };
}

export function digestInput(rounds = 2 + Math.floor(random() * 2)): State {
  return { to: `team${Math.floor(random() * 100)}@example.org`, topic: `imports-${opaque(2)}`, rounds, round: 0, sent: [] };
}

export interface Simulation {
  /** The nodes visited, in order. */
  visits: string[];
  /** states[0] is the starting state, states[i + 1] the state after visit i. */
  states: State[];
  /** The node each visit's edge chose (END, INTERRUPT or a node). */
  nexts: string[];
  state: State;
  stopped: "end" | "interrupt";
}

/**
 * What an uncrashed run goes through from (state, node), the email node answering with the ids
 * in `emails` in turn (the ids the mailer gave, read from the ledger).
 */
export function simulate(graph: GraphName, state: State, node: string = GRAPHS[graph].start, emails: readonly string[] = []): Simulation {
  const spec = GRAPHS[graph];
  const sim: Simulation = { visits: [], states: [state], nexts: [], state, stopped: "end" };
  let sent = 0;
  for (let guard = 0; guard < 200; guard++) {
    const update = node === EMAIL_NODE ? { emailId: emails[sent++] ?? `(email ${sent} not sent)` } : body(graph, node, sim.state);
    sim.state = { ...sim.state, ...update };
    sim.visits.push(node);
    sim.states.push(sim.state);
    const edge = spec.edges[node];
    const next = edge === undefined ? END : typeof edge === "string" ? edge : edge(sim.state);
    sim.nexts.push(next);
    if (next === END) return sim;
    if (next === INTERRUPT) return { ...sim, stopped: "interrupt" };
    node = next;
  }
  throw new Error("grader bug: the simulated run did not end");
}

/** Every crash point of a run that visits `visits`, in order. */
export function crashPoints(visits: readonly string[]): CrashPoint[] {
  const seen = new Map<string, number>();
  return visits.flatMap((node) => {
    const visit = (seen.get(node) ?? 0) + 1;
    seen.set(node, visit);
    const moments: Moment[] = node === EMAIL_NODE ? ["during", "in-send", "after-work", "after-save"] : ["during", "after-save"];
    return moments.map((moment) => ({ moment, node, visit }));
  });
}

/** Index (in `visits`) of the visit a crash point names. */
export function visitIndex(visits: readonly string[], point: CrashPoint): number {
  let count = 0;
  return visits.findIndex((node) => node === point.node && ++count === point.visit);
}

// ---- learner processes and runs --------------------------------------------------------------

export interface Proc {
  learner: LearnerProcess;
  api: GraphApi;
  f: LearnerFixture;
}

export async function sharedProc(api: GraphApi, check: CheckContext<GraphApi>): Promise<Proc> {
  return { learner: check.learner, api, f: await check.fixture<LearnerFixture>(FIXTURE) };
}

export async function freshProc(check: CheckContext<GraphApi>): Promise<Proc> {
  const { learner, api } = await check.spawn();
  return { learner, api, f: await check.fixture<LearnerFixture>(FIXTURE, learner) };
}

type Graph = { invoke(input: unknown, start: string, taskId?: string): Promise<unknown> };

/** Builds the world's graph on the learner's StateGraph in `proc`, saving to `file`. */
export async function graphIn(proc: Proc, world: World, options: BuildOptions = {}): Promise<Graph> {
  return (await proc.f.build(proc.api as never, world.graph, world.hooks(), world.mailer(), options)) as unknown as Graph;
}

/** One invoke of the world's task in `proc` (a new phase of evidence), crashing at `point` if given. */
export async function invokeIn(proc: Proc, world: World, file: string | undefined, input: State, extra: { point?: CrashPoint; start?: string; taskId?: string | null; build?: BuildOptions } = {}): Promise<CrashOutcome<unknown>> {
  world.begin(proc.learner, extra.point);
  const graph = await graphIn(proc, world, { ...(file !== undefined && { file }), ...extra.build });
  const taskId = extra.taskId === null ? undefined : (extra.taskId ?? world.taskId);
  return untilCrash(proc.learner, graph.invoke(input, extra.start ?? GRAPHS[world.graph].start, taskId));
}

/** The state an invoke resolved with, or a failure saying what happened instead. */
export function stateOf(outcome: CrashOutcome<unknown>, what: string): State {
  if (outcome.kind !== "finished") fail(`${what}, ${describeOutcome(outcome)}.`);
  if (outcome.result === null || typeof outcome.result !== "object") fail(`${what}, invoke resolved with ${show(outcome.result)}; it must resolve with the task's state.`);
  return outcome.result as State;
}

export function expectState(got: State, want: State, what: string): void {
  if (!isDeepStrictEqual(got, want)) fail(`${what}: the state is\n  ${show(got)}\nexpected\n  ${show(want)}`);
}

// ---- the file, read here ---------------------------------------------------------------------

export interface Saved {
  checkpointId: string;
  parentId: string | null;
  currentNode: string;
  state: State;
}

/** The task's checkpoints in the SQLite file, oldest first, read by the trusted process itself. */
export function history(file: string, taskId: string): Saved[] {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 10_000 });
  } catch {
    return [];
  }
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'").get();
    if (!exists) return [];
    const rows = db.prepare("SELECT checkpoint_id, parent_id, current_node, state FROM checkpoints WHERE task_id = ? ORDER BY seq").all(taskId) as Array<{ checkpoint_id: string; parent_id: string | null; current_node: string; state: Buffer }>;
    return rows.map((r) => ({ checkpointId: r.checkpoint_id, parentId: r.parent_id, currentNode: r.current_node, state: deserialize(r.state) as State }));
  } finally {
    db.close();
  }
}

/** Drops a leading input checkpoint (the state given, currentNode the start node), which the contract allows. */
export function afterInput(saved: Saved[], input: State, start: string): Saved[] {
  const first = saved[0];
  return first && first.currentNode === start && isDeepStrictEqual(first.state, input) ? saved.slice(1) : saved;
}
