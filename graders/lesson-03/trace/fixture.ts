/**
 * The trusted side of the trace grader: seeded graphs, the hooks their nodes and tools call
 * back to, the crash points, and the trace a correct implementation records for a run (with or
 * without a crash, with or without a cap), computed here from the graph alone.
 *
 * Crash points (a small space, enumerated by the checks): for each step k of a run,
 *   enter:k     the node's body started (killed before it goes on);
 *   tool:k:i    the i-th tool of the step was invoked (killed before it returns);
 *   leave:k     the node is about to return its update (all its tools returned);
 *   saved:k     the checkpoint after step k was saved.
 * Every one of them is a callback into this process; the learner process dies before it replies.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { inspect, isDeepStrictEqual } from "node:util";
import type { CheckContext } from "#harness/check.ts";
import { CrashSwitch, describeOutcome, untilCrash, type CrashOutcome } from "#harness/crash.ts";
import { failWithSeed as fail } from "#harness/seed.ts";
import type { LearnerProcess } from "../../../kit/sandbox/learner.ts";
import type * as Reference from "../../../solutions/lesson-03/trace/index.ts";
import type { Hooks, NodeSpec } from "./learner-fixture.ts";

export type TraceApi = typeof Reference;
export type LearnerFixture = typeof import("./learner-fixture.ts");
export type State = Record<string, unknown>;
export type Type = "node_start" | "node_end" | "tool_call" | "tool_result";
export type { NodeSpec } from "./learner-fixture.ts";

export const FIXTURE = "trace";

export function show(value: unknown): string {
  return inspect(value, { depth: 5, breakLength: Infinity, maxArrayLength: 12, maxStringLength: 80 });
}

export { fail };

export const opaque = (bytes = 5): string => randomBytes(bytes).toString("hex");

// ---- the graph and what it does ---------------------------------------------------------

const WORDS = ["naïve café", "résumé ✓", "größe", "日本語", "🙂 ok", "plain"];

/** A seeded JSON text of about `length` characters, with multi-byte characters in it. */
export function text(random: () => number, length: number): string {
  let out = "";
  while (out.length < length) out += `${WORDS[Math.floor(random() * WORDS.length)]} ${Math.floor(random() * 1000)} `;
  return out.slice(0, length);
}

/** A seeded text of `length` characters, most of them 3 bytes in UTF-8 (so bytes and characters differ a lot). */
export function wideText(random: () => number, length: number): string {
  const chars = "日本語の文書検索結果要約✓é";
  return Array.from({ length }, () => chars[Math.floor(random() * chars.length)]).join("");
}

/**
 * A linear graph: node names opaque, tool counts as given (irregular), inputs seeded. A node with
 * two tools or more calls its first tool twice (two fetches in one step), so nothing about an
 * entry but its place in the trace tells those two calls apart.
 */
export function graphOf(random: () => number, toolCounts: readonly number[], size = 40): NodeSpec[] {
  const prefix = opaque(2);
  return toolCounts.map((count, index) => {
    const names = Array.from({ length: count }, (_, i) => `t${opaque(2)}${i}`);
    return {
      name: `${prefix}-${["split", "fetch", "embed", "index", "review", "publish"][index % 6]}${index >= 6 ? index : ""}`,
      tools: names.map((name, i) => ({ tool: i === 1 ? names[0]! : name, input: { q: text(random, 5 + Math.floor(random() * size)), n: Math.floor(random() * 100) } })),
    };
  });
}

/** The same graph with a text of `min` to `min + 10,000` characters in every tool's input (and so in its output). */
export function withBigInputs(nodes: NodeSpec[], random: () => number, min: number): NodeSpec[] {
  return nodes.map((node) => ({ ...node, tools: node.tools.map((t) => ({ ...t, input: { ...(t.input as object), big: text(random, min + Math.floor(random() * 10_000)) } })) }));
}

/** What a tool returns for an input: deterministic, so a redone call returns the same. */
export function outputOf(tool: string, input: unknown): unknown {
  const q = (input as { q?: string }).q ?? "";
  return { from: tool, hits: [q.length, q.split(" ").length], echo: q.slice(0, 12), big: (input as { big?: string }).big ?? null };
}

/** The update a node returns for a state: deterministic. */
export function updateOf(node: string, state: State): State {
  const runs = Number(state[`runs_${node}`] ?? 0) + 1;
  return { [`runs_${node}`]: runs, [`out_${node}`]: `${node} ✓ ${Object.keys(state).length}`, last: node };
}

export interface Step {
  step: number;
  node: string;
  state: State;
  tools: Array<{ tool: string; input: unknown; output: unknown }>;
  update: State;
}

/** The steps an uncrashed run of the graph takes from `initial`. */
export function stepsOf(nodes: readonly NodeSpec[], initial: State): Step[] {
  const steps: Step[] = [];
  let state = { ...initial };
  for (const spec of nodes) {
    for (let pass = 0; pass < (spec.repeat ?? 1); pass++) {
      const update = updateOf(spec.name, state);
      steps.push({ step: steps.length + 1, node: spec.name, state, tools: spec.tools.map((t) => ({ ...t, output: outputOf(t.tool, t.input) })), update });
      state = { ...state, ...update };
    }
  }
  return steps;
}

/** An entry as the contract fixes it (seq and timestamp are checked apart). */
export interface Expected {
  nodeId: string;
  type: Type;
  step: number;
  attempt: number;
  data: unknown;
  dropped?: boolean;
}

export type Moment = "enter" | "tool" | "leave" | "saved";
export interface CrashPoint {
  moment: Moment;
  step: number;
  tool?: number;
}
export const label = (p: CrashPoint) => `${p.moment}:${p.step}${p.tool === undefined ? "" : `:${p.tool}`}`;

/** Every crash point of a run of these steps, in run order. */
export function crashPoints(steps: readonly Step[]): CrashPoint[] {
  return steps.flatMap((s) => [
    { moment: "enter" as const, step: s.step },
    ...s.tools.map((_, tool) => ({ moment: "tool" as const, step: s.step, tool })),
    { moment: "leave" as const, step: s.step },
    { moment: "saved" as const, step: s.step },
  ]);
}

/** The entries of one step, cut short at `point` if it falls in that step. */
export function entriesOfStep(s: Step, attempt: number, point?: CrashPoint): Expected[] {
  const base = { nodeId: s.node, step: s.step, attempt };
  const out: Expected[] = [{ ...base, type: "node_start", data: s.state }];
  const cut = point?.step === s.step ? point : undefined;
  if (cut?.moment === "enter") return out;
  for (const [i, t] of s.tools.entries()) {
    out.push({ ...base, type: "tool_call", data: { tool: t.tool, input: t.input } });
    if (cut?.moment === "tool" && cut.tool === i) return out;
    out.push({ ...base, type: "tool_result", data: { tool: t.tool, output: t.output } });
  }
  if (cut?.moment === "leave") return out;
  out.push({ ...base, type: "node_end", data: s.update });
  return out;
}

/** The trace of a run killed at each of `points` in turn (each resume killed at the next), then resumed to the end. */
export function expectedTrace(steps: readonly Step[], points: readonly CrashPoint[] = []): Expected[] {
  const out: Expected[] = [];
  let next = 1; // the step the next run starts with
  const attempts = new Map<number, number>();
  const runFrom = (point?: CrashPoint) => {
    for (const s of steps.slice(next - 1)) {
      const attempt = (attempts.get(s.step) ?? 0) + 1;
      attempts.set(s.step, attempt);
      out.push(...entriesOfStep(s, attempt, point));
      if (point?.step === s.step) {
        next = point.moment === "saved" ? s.step + 1 : s.step;
        return;
      }
    }
    next = steps.length + 1;
  };
  for (const point of points) runFrom(point);
  runFrom();
  return out;
}

/** The contract's size of a payload: UTF-8 bytes of its JSON. */
export const bytesOf = (data: unknown): number => Buffer.byteLength(JSON.stringify(data ?? null), "utf8");

/** The payload bytes of these entries together. */
export const payloadBytes = (entries: readonly Expected[]): number => entries.reduce((sum, e) => sum + bytesOf(e.data), 0);

/** Marks which payloads the contract's policy drops under `cap`, appending in order. */
export function applyCap(entries: readonly Expected[], cap: number): Expected[] {
  const out = entries.map((e) => ({ ...e, dropped: false }));
  const kept: number[] = [];
  const sizes = out.map((e) => bytesOf(e.data));
  for (const [i, entry] of out.entries()) {
    if (sizes[i]! > cap) {
      entry.dropped = true;
      continue;
    }
    let total = kept.reduce((sum, k) => sum + sizes[k]!, 0);
    while (total + sizes[i]! > cap) {
      const victim = kept.find((k) => out[k]!.type === "tool_result") ?? kept[0]!;
      kept.splice(kept.indexOf(victim), 1);
      out[victim]!.dropped = true;
      total -= sizes[victim]!;
    }
    kept.push(i);
  }
  return out;
}

// ---- comparing a trace --------------------------------------------------------------------

const describeEntry = (e: Partial<Expected> | undefined) => (e ? `${e.type} of ${show(e.nodeId)} (step ${e.step}, attempt ${e.attempt}${e.dropped ? ", dropped" : ""})` : "nothing");

/**
 * Fails unless `got` is exactly `want`: same entries in the same order, each with its node, type,
 * step, attempt and data (null and dropped true where `want` says dropped), seq growing, the
 * task's id, a valid Date timestamp.
 */
export function expectTrace(got: unknown, want: readonly Expected[], taskId: string, what: string): void {
  if (!Array.isArray(got)) fail(`${what}: entries() must resolve with an array; got ${show(got)}.`);
  const entries = got as Array<Record<string, unknown>>;
  const n = Math.max(entries.length, want.length);
  for (let i = 0; i < n; i++) {
    const g = entries[i];
    const w = want[i];
    const context = () => `\n  entries ${Math.max(0, i - 2)}..${i + 2} expected: ${want.slice(Math.max(0, i - 2), i + 3).map(describeEntry).join(" | ")}\n  got: ${entries.slice(Math.max(0, i - 2), i + 3).map((e) => describeEntry(e as Partial<Expected>)).join(" | ")}`;
    if (!w) fail(`${what}: the trace has ${entries.length} entries, expected ${want.length}; entry ${i} is an extra ${describeEntry(g as Partial<Expected>)}.${context()}`);
    if (!g || typeof g !== "object") fail(`${what}: the trace has ${entries.length} entries, expected ${want.length}; missing from entry ${i} on: ${describeEntry(w)}.${context()}`);
    if (g.nodeId !== w.nodeId || g.type !== w.type || g.step !== w.step || g.attempt !== w.attempt) {
      fail(`${what}: entry ${i} is ${describeEntry(g as Partial<Expected>)}; expected ${describeEntry(w)}.${context()}`);
    }
    if (g.taskId !== taskId) fail(`${what}: entry ${i} has taskId ${show(g.taskId)}; expected ${show(taskId)}.`);
    const dropped = w.dropped === true;
    if (g.dropped !== dropped) fail(`${what}: entry ${i} (${describeEntry(w)}) has dropped ${show(g.dropped)}; expected ${dropped}${dropped ? ": the cap's policy drops this payload" : ""}.`);
    const data = dropped ? null : w.data;
    if (!isDeepStrictEqual(g.data, data)) fail(`${what}: entry ${i} (${describeEntry(w)}) has data ${show(g.data)}; expected ${show(data)}.`);
    if (!(g.timestamp instanceof Date) || Number.isNaN(g.timestamp.getTime())) fail(`${what}: entry ${i} has timestamp ${show(g.timestamp)}; it must be a valid Date.`);
    if (typeof g.seq !== "number" || !Number.isFinite(g.seq)) fail(`${what}: entry ${i} has seq ${show(g.seq)}; it must be a number.`);
    if (i > 0 && !((g.seq as number) > (entries[i - 1]!.seq as number))) fail(`${what}: entry ${i} has seq ${show(g.seq)} after ${show(entries[i - 1]!.seq)}; seq must grow with every append.`);
  }
}

// ---- running a task in a learner process ------------------------------------------------------

export interface Proc {
  learner: LearnerProcess;
  api: TraceApi;
  f: LearnerFixture;
}

export async function sharedProc(api: TraceApi, check: CheckContext<TraceApi>): Promise<Proc> {
  return { learner: check.learner, api, f: await check.fixture<LearnerFixture>(FIXTURE) };
}

export async function freshProc(check: CheckContext<TraceApi>): Promise<Proc> {
  const { learner, api } = await check.spawn();
  return { learner, api, f: await check.fixture<LearnerFixture>(FIXTURE, learner) };
}

/** One task of one graph, seen from the trusted side: files, hooks and the crash point it is armed with. */
export class Task {
  readonly crash = new CrashSwitch();
  readonly taskId: string;
  readonly traceFile: string;
  readonly checkpointFile: string;
  private point: CrashPoint | undefined;
  private step = 0;
  private toolIndex = 0;
  /** The step whose node throws as it starts, once (the process lives on). */
  private failing: number | undefined;

  constructor(
    check: CheckContext<TraceApi>,
    readonly nodes: NodeSpec[],
    readonly initial: State,
    options: { taskId?: string; traceFile?: string; checkpointFile?: string } = {},
  ) {
    this.taskId = options.taskId ?? opaque();
    this.traceFile = options.traceFile ?? join(check.scratch, `${opaque()}.db`);
    this.checkpointFile = options.checkpointFile ?? join(check.scratch, `${opaque()}.db`);
  }

  get steps(): Step[] {
    return stepsOf(this.nodes, this.initial);
  }

  /** Arms `point` for the next run in `victim`, which starts with step `firstStep`. */
  arm(victim: LearnerProcess | undefined, point?: CrashPoint, firstStep = 1, failAt?: number): void {
    this.point = point;
    this.step = firstStep - 1;
    this.failing = failAt;
    this.crash.arm(point ? victim : undefined);
  }

  private at(moment: Moment, tool?: number): boolean {
    return this.crash.armed && this.point?.moment === moment && this.point.step === this.step && (tool === undefined || this.point.tool === tool);
  }

  hooks(): Hooks {
    return {
      enter: async () => {
        this.step += 1;
        this.toolIndex = 0;
        if (this.at("enter")) return this.crash.fire();
        if (this.failing === this.step) {
          this.failing = undefined;
          throw new Error("the worker lost its lease on this task");
        }
      },
      tool: async (tool, input) => {
        const index = this.toolIndex++;
        if (this.at("tool", index)) return this.crash.fire();
        return outputOf(tool, input);
      },
      leave: async (node, state) => {
        if (this.at("leave")) return this.crash.fire();
        return updateOf(node, state);
      },
      saved: async () => {
        if (this.at("saved")) return this.crash.fire();
      },
    };
  }
}

export interface RunOptions {
  point?: CrashPoint;
  firstStep?: number;
  /** The step whose node throws as it starts (the process lives on). */
  failAt?: number;
  maxDataBytes?: number;
}

/** Runs (or resumes) the task in `proc` with fresh stores on its files, armed at `point` if given. */
export async function runTask(proc: Proc, task: Task, options: RunOptions = {}): Promise<CrashOutcome<unknown>> {
  return (await openWorker(proc, task, options.maxDataBytes)).invoke(options);
}

/**
 * A long-lived worker in `proc`: one graph and one pair of stores, kept for every invoke it is
 * given (a store instance may remember things between invokes; the file is the truth). Each
 * invoke is armed at `point`, starts with step `firstStep`, and its node at step `failAt` throws.
 */
export async function openWorker(proc: Proc, task: Task, maxDataBytes?: number): Promise<{ invoke(options?: Omit<RunOptions, "maxDataBytes">): Promise<CrashOutcome<unknown>> }> {
  const graph = await new proc.api.StateGraph();
  const checkpoints = await new proc.api.SqliteCheckpointStore(task.checkpointFile);
  const traces = await new proc.api.SqliteTraceStore(task.traceFile, maxDataBytes === undefined ? undefined : { maxDataBytes });
  await proc.f.build(graph as never, task.nodes, task.hooks(), checkpoints as never);
  await graph.withTrace(traces);
  return {
    invoke(options = {}) {
      task.arm(proc.learner, options.point, options.firstStep, options.failAt);
      return untilCrash(proc.learner, graph.invoke(task.initial, task.nodes[0]!.name, task.taskId));
    },
  };
}

/** The run finished with the expected final state, or a failure saying what happened. */
export function expectFinished(outcome: CrashOutcome<unknown>, task: Task, what: string): void {
  if (outcome.kind !== "finished") fail(`${what}, ${describeOutcome(outcome)}.`);
  const steps = task.steps;
  const last = steps.at(-1)!;
  const final = { ...last.state, ...last.update };
  if (!isDeepStrictEqual(outcome.result, final)) fail(`${what}, invoke() resolved with ${show(outcome.result)}; the graph's final state is ${show(final)} (the graph and checkpoint store are given code: keep them working).`);
}

/** A process with a trace store on `file`, to read what reached the file. */
export async function readerOf(check: CheckContext<TraceApi>): Promise<Proc> {
  return freshProc(check);
}

export async function entriesIn(proc: Proc, file: string, taskId: string, filter?: Reference.TraceFilter): Promise<unknown> {
  const store = await new proc.api.SqliteTraceStore(file);
  return filter === undefined ? store.entries(taskId) : store.entries(taskId, filter);
}

/** The error a call threw (or rejected with), or undefined when it returned. */
export async function thrown(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** The entries in the file when a run from step 1 is killed at `point`. */
export function traceUntil(steps: readonly Step[], point: CrashPoint): Expected[] {
  return steps.slice(0, point.step).flatMap((s) => entriesOfStep(s, 1, point));
}

/** The step a resume after a crash at `point` starts with. */
export const resumeStep = (point: CrashPoint): number => (point.moment === "saved" ? point.step + 1 : point.step);
