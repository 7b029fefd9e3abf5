/**
 * Grader of lesson-03 / trace: the seed's TraceEntry log on SQLite, across a crash and a resume.
 *
 * Each check builds a graph on the learner's StateGraph whose node bodies and tools call back to
 * the trusted side (trace/learner-fixture.ts), so every node entry, tool invocation, node return
 * and checkpoint save is observed here. Crash checks SIGKILL a learner process at each of those
 * points in turn (every point of the graph, not a sample), resume the task in a fresh process
 * that shares only the SQLite files, and read the trace in yet another. The expected trace is
 * computed from the graph alone (trace/fixture.ts), so the checks fix the behaviour, never the
 * schema: the grader opens a file itself only to count its live pages (the cap bounds the file).
 * Core: an uncrashed run's entries; write-ahead at every crash point; complete and ordered after
 * a resume, the redone step marked; exact queries by task and node; a cap that keeps every entry
 * and really removes what it drops.
 * Excellence: two crashes in one step and a finished task; the exact drop policy; the cap across
 * a resume; a clock that steps back; bad input refused.
 */
import { readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import Database from "better-sqlite3";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeOutcome, inParallel } from "#harness/crash.ts";
import { seededRandom } from "#harness/seed.ts";
import {
  applyCap,
  bytesOf,
  crashPoints,
  entriesIn,
  expectedTrace,
  expectFinished,
  expectTrace,
  fail,
  FIXTURE,
  freshProc,
  graphOf,
  label,
  opaque,
  openWorker,
  payloadBytes,
  readerOf,
  resumeStep,
  runTask,
  sharedProc,
  show,
  Task,
  text,
  thrown,
  wideText,
  withBigInputs,
  traceUntil,
  type CrashPoint,
  type LearnerFixture,
  type NodeSpec,
  type RunOptions,
  type TraceApi,
} from "./trace/fixture.ts";
import type { CheckContext } from "#harness/check.ts";

/** Bytes in live pages of a SQLite file (page_count - freelist_count), plus any other file named after it that is not its journal. */
function liveBytes(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const pages = Number(db.pragma("page_count", { simple: true })) - Number(db.pragma("freelist_count", { simple: true }));
    let bytes = pages * Number(db.pragma("page_size", { simple: true }));
    for (const name of readdirSync(dirname(file))) {
      const path = join(dirname(file), name);
      if (path.startsWith(file) && path !== file && !/-(wal|shm|journal)$/.test(path)) bytes += statSync(path).size;
    }
    return bytes;
  } finally {
    db.close();
  }
}

const grader = defineGrader<TraceApi>({
  lesson: "lesson-03",
  unit: "trace",
  exports: ["StateGraph", "SqliteCheckpointStore", "SqliteTraceStore", "TraceStoreError"],
  fixtures: { [FIXTURE]: new URL("./trace/learner-fixture.ts", import.meta.url).pathname },
});

const initialState = (random: () => number) => ({ documentId: `doc-${Math.floor(random() * 1e6)}`, title: text(random, 12) });

/** Kills a fresh learner process at each point, one task per point; fails unless each run was killed there. */
async function crashEach(check: CheckContext<TraceApi>, nodes: NodeSpec[], initial: Record<string, unknown>, points: readonly CrashPoint[], options: RunOptions = {}): Promise<Array<{ point: CrashPoint; task: Task }>> {
  const cases = points.map((point) => ({ point, task: new Task(check, nodes, initial) }));
  const outcomes = await inParallel(
    cases.map(({ point, task }) => async () => runTask(await freshProc(check), task, { ...options, point })),
  );
  for (const [i, outcome] of outcomes.entries()) {
    if (outcome.kind !== "crashed") fail(`A run was to be killed at "${label(cases[i]!.point)}" (${describe(cases[i]!.point)}), but ${describeOutcome(outcome)}.`);
  }
  return cases;
}

function describe(point: CrashPoint): string {
  if (point.moment === "enter") return `when step ${point.step}'s node started`;
  if (point.moment === "tool") return `inside tool call ${point.tool! + 1} of step ${point.step}`;
  if (point.moment === "leave") return `when step ${point.step}'s node was about to return`;
  return `right after step ${point.step}'s checkpoint was saved`;
}

/** Resumes every crashed task to the end, in two fresh processes that share the work. */
async function resumeAll(check: CheckContext<TraceApi>, cases: Array<{ point: CrashPoint; task: Task }>, options: RunOptions = {}): Promise<void> {
  const half = Math.ceil(cases.length / 2);
  await inParallel(
    [cases.slice(0, half), cases.slice(half)].map((batch) => async () => {
      if (batch.length === 0) return;
      const proc = await freshProc(check);
      for (const { point, task } of batch) expectFinished(await runTask(proc, task, options), task, `After a crash ${describe(point)}, invoke() in a fresh process on the same files`);
    }),
  );
}

grader.core(
  "an uncrashed run records node_start, tool_call, tool_result and node_end of every step in order, with their data, step and attempt 1, readable in another process",
  {
    hint: "In invoke(), record node_start (the state) before the node runs, tool_call ({ tool, input }) and tool_result ({ tool, output }) around each ctx.callTool, node_end (the update) after the node returns; step counts node executions from 1, attempt is 1; entries(taskId) returns them in append order with a growing seq.",
    section: "what-a-trace-entry-holds",
    weight: 2,
  },
  async (api, check) => {
    const random = seededRandom();
    const task = new Task(check, graphOf(random, [1, 0, 3, 2, 1]), initialState(random));
    expectFinished(await runTask(await sharedProc(api, check), task), task, "An uncrashed run");
    const reader = await readerOf(check);
    expectTrace(await entriesIn(reader, task.traceFile, task.taskId), expectedTrace(task.steps), task.taskId, "The trace of an uncrashed run of 5 nodes (1, 0, 3, 2 and 1 tool calls), read in another process");
    const none = await entriesIn(reader, task.traceFile, opaque());
    if (!Array.isArray(none) || none.length !== 0) fail(`entries() of a task that never ran returned ${show(none)}; it must return [].`);
  },
);

grader.core(
  "write-ahead: a process killed at any point (a node's start, inside each tool call, a node's return, after each checkpoint) leaves exactly the entries recorded up to that point",
  {
    hint: "Commit each entry before the work it announces goes on: node_start before the node body, tool_call before the tool runs, tool_result before the node gets the output, node_end before the checkpoint is saved. No buffering in memory, no saving at the end of the run.",
    section: "record-before-you-act",
    weight: 3,
    timeout: 40_000,
  },
  async (_api, check) => {
    const random = seededRandom();
    const nodes = graphOf(random, [1, 0, 2, 1]);
    const initial = initialState(random);
    const steps = new Task(check, nodes, initial).steps;
    const cases = await crashEach(check, nodes, initial, crashPoints(steps));
    const reader = await readerOf(check);
    for (const { point, task } of cases) {
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), traceUntil(steps, point), task.taskId, `After a process was killed ${describe(point)}, the trace in the file`);
    }
  },
);

grader.core(
  "after a crash at any point and a resume, the trace is complete and ordered: checkpointed steps appear once, the step the crash cut short is kept and recorded again with attempt 2",
  {
    hint: "Never delete or re-record on resume: the resumed invoke() starts at the checkpoint's step, and the entries of that step get attempt = 1 + the times the step already started in the file (its node_start entries for this task and step); later steps are attempt 1.",
    section: "crash-resume-and-redone-work",
    weight: 3,
    timeout: 40_000,
  },
  async (_api, check) => {
    const random = seededRandom();
    const nodes = graphOf(random, [0, 2, 1, 1]);
    const initial = initialState(random);
    const steps = new Task(check, nodes, initial).steps;
    const cases = await crashEach(check, nodes, initial, crashPoints(steps));
    await resumeAll(check, cases);
    const reader = await readerOf(check);
    for (const { point, task } of cases) {
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), expectedTrace(steps, [point]), task.taskId, `After a crash ${describe(point)} and a resume in a fresh process`);
    }
  },
);

/** Task ids a match with LIKE, GLOB, a prefix, a substring or lower() confuses with `base`. */
const lookAlikes = (base: string) => [base, `${base}1`, base.slice(0, -1), `x${base}`, base.toUpperCase(), `${base}_`, `${base}%`, `${base} `];

grader.core(
  "queries are exact and ordered: entries(taskId) holds only that task's entries, entries(taskId, { nodeId }) only that node's, among look-alike task and node ids",
  {
    hint: "Select with task_id = ? (and node_id = ? for the by-node query), exact and case-sensitive: no LIKE, GLOB, prefix or substring; order by the append sequence.",
    section: "querying-by-task-and-by-node",
    weight: 2,
    timeout: 30_000,
  },
  async (api, check) => {
    const random = seededRandom();
    const base = `a${opaque(2)}b`;
    // Node ids that look alike too, in one graph: each by-node query must return its own only.
    const nodes: NodeSpec[] = [base, `${base}_`, base.toUpperCase(), `${base}2`, `é${base}`].map((name, i) => ({
      name,
      tools: Array.from({ length: i % 3 }, (_, k) => ({ tool: `${name}-tool${k}`, input: { q: text(random, 10), n: k } })),
    }));
    const shared = await sharedProc(api, check);
    const first = new Task(check, nodes, initialState(random), { taskId: base });
    const tasks = lookAlikes(base).map((taskId, i) => (i === 0 ? first : new Task(check, nodes, { ...initialState(random), i }, { taskId, traceFile: first.traceFile, checkpointFile: first.checkpointFile })));
    for (const task of tasks) expectFinished(await runTask(shared, task), task, `A run of task ${show(task.taskId)}`);
    const reader = await readerOf(check);
    for (const task of tasks) {
      const want = expectedTrace(task.steps);
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), want, task.taskId, `entries(${show(task.taskId)}), with tasks ${show(tasks.map((t) => t.taskId))} in the same file`);
    }
    for (const node of nodes) {
      const want = expectedTrace(first.steps).filter((e) => e.nodeId === node.name);
      expectTrace(await entriesIn(reader, first.traceFile, first.taskId, { nodeId: node.name }), want, first.taskId, `entries(taskId, { nodeId: ${show(node.name)} }), with nodes ${show(nodes.map((n) => n.name))} in the graph`);
    }
    for (const type of ["node_start", "tool_call", "tool_result", "node_end"] as const) {
      const want = expectedTrace(first.steps).filter((e) => e.type === type);
      expectTrace(await entriesIn(reader, first.traceFile, first.taskId, { type }), want, first.taskId, `entries(taskId, { type: ${show(type)} })`);
    }
    const both = { nodeId: nodes[2]!.name, type: "tool_call" as const };
    expectTrace(await entriesIn(reader, first.traceFile, first.taskId, both), expectedTrace(first.steps).filter((e) => e.nodeId === both.nodeId && e.type === both.type), first.taskId, `entries(taskId, ${show(both)})`);
  },
);

/** A graph whose payloads are large enough for a cap to bite: state and tool results grow. */
function heavyGraph(random: () => number, toolCounts: readonly number[]): NodeSpec[] {
  return graphOf(random, toolCounts, 160).map((node) => ({
    ...node,
    tools: node.tools.map((t, i) => (i % 2 === 0 ? { ...t, input: { ...(t.input as object), big: wideText(random, 150 + Math.floor(random() * 250)) } } : t)),
  }));
}

grader.core(
  "bounded: with maxDataBytes set, a task keeps at most that many payload bytes, every entry stays in order, dropped payloads read data null and dropped true",
  {
    hint: "Measure each payload as Buffer.byteLength(JSON.stringify(data)); when an append would take the task's kept payloads over maxDataBytes, drop payloads (data NULL, dropped true) instead of entries, so the trace still shows every step, tool call and attempt.",
    section: "a-bounded-trace",
    weight: 2,
  },
  async (api, check) => {
    const random = seededRandom();
    const task = new Task(check, heavyGraph(random, [2, 1, 3, 0, 2]), initialState(random));
    const full = expectedTrace(task.steps);
    const total = payloadBytes(full);
    const cap = Math.floor(total * (0.3 + random() * 0.2));
    expectFinished(await runTask(await sharedProc(api, check), task, { maxDataBytes: cap }), task, `A run with maxDataBytes ${cap}`);
    const reader = await readerOf(check);
    const got = (await entriesIn(reader, task.traceFile, task.taskId)) as Array<Record<string, unknown>>;
    if (!Array.isArray(got)) fail(`entries() must resolve with an array; got ${show(got)}.`);
    const skeleton = (e: Record<string, unknown>) => [e.nodeId, e.type, e.step, e.attempt];
    if (!isDeepStrictEqual(got.map(skeleton), full.map((e) => skeleton(e as never)))) {
      fail(`With maxDataBytes ${cap} (the run's payloads total ${total} bytes), the trace has ${got.length} entries, expected all ${full.length} in order: drop payloads, never entries. Got ${show(got.map(skeleton))}.`);
    }
    let kept = 0;
    for (const [i, e] of got.entries()) {
      if (e.dropped === true) {
        if (e.data !== null) fail(`Entry ${i} (${e.type}) is marked dropped but its data is ${show(e.data)}; a dropped payload reads null.`);
        continue;
      }
      if (e.dropped !== false) fail(`Entry ${i} (${e.type}) has dropped ${show(e.dropped)}; it must be false for a kept payload.`);
      if (!isDeepStrictEqual(e.data, full[i]!.data)) fail(`Entry ${i} (${e.type} of step ${full[i]!.step}) kept its payload, but it reads ${show(e.data)}; expected ${show(full[i]!.data)}.`);
      kept += bytesOf(full[i]!.data);
    }
    if (kept > cap) fail(`With maxDataBytes ${cap}, the task keeps ${kept} bytes of payload (UTF-8 bytes of the JSON of each kept data); it must keep at most ${cap}.`);
    if (kept < cap / 4) fail(`With maxDataBytes ${cap}, the task keeps only ${kept} bytes of payload of ${total}: drop only what the cap requires.`);
  },
);

// Core: a cap that only hides payloads (a flag, a NULL in a view) bounds nothing; the file is what grows.
grader.core(
  "the cap bounds the file: a task whose payloads total over 50 times maxDataBytes leaves at most a few caps of live pages in the trace file",
  {
    hint: "Dropping a payload must remove its bytes (UPDATE ... SET data = NULL, or DELETE its row from a payload table), not only mark it dropped: SQLite reuses the freed pages, so the file stays near the cap.",
    section: "a-bounded-trace",
    weight: 2,
    timeout: 30_000,
  },
  async (api, check) => {
    const random = seededRandom();
    // Every tool call and its result carry ~60 kB: about 5 MB in all, against a cap of 100,000 bytes.
    const nodes = withBigInputs(graphOf(random, [6, 6, 6, 6, 6, 6, 6]), random, 55_000);
    const task = new Task(check, nodes, initialState(random));
    const cap = 100_000;
    const total = payloadBytes(expectedTrace(task.steps));
    expectFinished(await runTask(await sharedProc(api, check), task, { maxDataBytes: cap }), task, `A run with maxDataBytes ${cap}`);
    // Pages in use, as any reader sees them (committed WAL frames included; free pages excluded,
    // since SQLite reuses them): what the task really keeps, whatever the schema. Files the store
    // made beside the trace file (a payload file of its own) count too.
    const live = liveBytes(task.traceFile);
    const bound = 3 * cap + 256 * 1024;
    if (live > bound) {
      fail(`With maxDataBytes ${cap}, a task whose payloads total ${total} bytes left ${live} bytes of live pages in the trace file${live > total / 2 ? ": the dropped payloads are still stored" : ""}; at most ${bound} were expected. Dropping must remove the payload's bytes, not only mark it dropped.`);
    }
  },
);

grader.excellence(
  "a step cut short twice is recorded three times (attempts 1, 2, 3), and invoking a finished task again records nothing",
  {
    hint: "Count the attempt from the file (the step's node_start entries so far), not from a flag of this process: a second crash in the same step makes the third run attempt 3. A task whose checkpoint is at END runs nothing and must record nothing.",
    section: "crash-resume-and-redone-work",
    weight: 2,
    timeout: 30_000,
  },
  async (api, check) => {
    const random = seededRandom();
    const nodes = graphOf(random, [1, 2, 0]);
    const initial = initialState(random);
    const steps = new Task(check, nodes, initial).steps;
    const points: CrashPoint[] = [{ moment: "tool", step: 2, tool: 1 }, { moment: "enter", step: 1 }];
    for (const point of points) {
      const task = (await crashEach(check, nodes, initial, [point]))[0]!.task;
      const again = await freshProc(check);
      const second = await runTask(again, task, { point, firstStep: resumeStep(point) });
      if (second.kind !== "crashed") fail(`A resume was to be killed ${describe(point)} again, but ${describeOutcome(second)}.`);
      const last = await freshProc(check);
      expectFinished(await runTask(last, task), task, `After two crashes ${describe(point)}, a third invoke()`);
      const reader = await readerOf(check);
      const want = expectedTrace(steps, [point, point]);
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), want, task.taskId, `After two crashes ${describe(point)} and a resume`);
      expectFinished(await runTask(last, task), task, "invoke() on the finished task");
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), want, task.taskId, "After invoke() on a finished task (its checkpoint is at END)");
    }
    void api;
  },
);

grader.excellence(
  "the drop policy is exact: oldest tool_result payloads first, then the oldest of any type, a payload over the cap alone dropped on arrival, sizes in UTF-8 bytes, a payload that exactly fits kept",
  {
    hint: "Before inserting a payload of n bytes: if n > maxDataBytes, store it dropped; otherwise, while kept + n > maxDataBytes, drop the oldest kept tool_result payload, or if none is left the oldest kept payload of any type. Count Buffer.byteLength(JSON.stringify(data)), not string length.",
    section: "a-bounded-trace",
    weight: 2,
  },
  async (api, check) => {
    const random = seededRandom();
    const shared = await sharedProc(api, check);
    const nodes = heavyGraph(random, [2, 0, 3, 1, 2]);
    // One tool result bigger than any cap below: dropped on arrival, never pushing others out.
    nodes[2]!.tools[1]!.input = { ...(nodes[2]!.tools[1]!.input as object), big: "é".repeat(6000) };
    const initial = initialState(random);
    const full = expectedTrace(new Task(check, nodes, initial).steps);
    const sizes = full.map((e) => bytesOf(e.data));
    // A cap that the first m payloads fill exactly (nothing dropped until entry m), and a looser one.
    const m = 3 + Math.floor(random() * 3);
    const caps = [sizes.slice(0, m).reduce((a, b) => a + b, 0), Math.floor(sizes.reduce((a, b) => a + b, 0) / 3)];
    const reader = await readerOf(check);
    for (const cap of caps) {
      const task = new Task(check, nodes, initial);
      expectFinished(await runTask(shared, task, { maxDataBytes: cap }), task, `A run with maxDataBytes ${cap}`);
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), applyCap(full, cap), task.taskId, `With maxDataBytes ${cap} (payload sizes in bytes: ${show(sizes)})`);
    }
  },
);

grader.excellence(
  "the cap holds across a crash and a resume, and for a task passed between two live workers: every append counts the payloads the file holds",
  {
    hint: "Read the task's kept payload bytes from the file inside the append's write transaction (SUM over kept rows, or a per-task total updated in the same transaction); a counter in process memory starts at zero after a crash, and a copy loaded once goes stale when another worker appends to the task.",
    section: "a-bounded-trace",
    weight: 1,
    timeout: 30_000,
  },
  async (_api, check) => {
    const random = seededRandom();
    const nodes = heavyGraph(random, [2, 3, 1, 2]);
    const initial = initialState(random);
    const steps = new Task(check, nodes, initial).steps;
    const full = expectedTrace(steps);
    const cap = Math.floor(payloadBytes(full) * 0.45);
    const points: CrashPoint[] = [{ moment: "tool", step: 3, tool: 0 }, { moment: "saved", step: 2 }];
    const cases = await crashEach(check, nodes, initial, points, { maxDataBytes: cap });
    await resumeAll(check, cases, { maxDataBytes: cap });
    const reader = await readerOf(check);
    for (const { point, task } of cases) {
      expectTrace(await entriesIn(reader, task.traceFile, task.taskId), applyCap(expectedTrace(steps, [point]), cap), task.taskId, `With maxDataBytes ${cap}, after a crash ${describe(point)} and a resume`);
    }
    // Two long-lived workers, each keeping its stores: the first runs the task until a node fails
    // at step 3, the second takes it over until a node fails at step 5, the first finishes it.
    const handed = new Task(check, heavyGraph(random, [2, 1, 3, 2, 1, 2]), initial);
    const handedCap = Math.floor(payloadBytes(expectedTrace(handed.steps)) * 0.45);
    const workers = [await openWorker(await freshProc(check), handed, handedCap), await openWorker(await freshProc(check), handed, handedCap)];
    const turns: Array<[number, number, number | undefined]> = [[0, 1, 3], [1, 3, 5], [0, 5, undefined]];
    for (const [worker, firstStep, failAt] of turns) {
      const outcome = await workers[worker]!.invoke({ firstStep, failAt });
      if (failAt === undefined) expectFinished(outcome, handed, "The first worker, finishing the task the second one took over");
      else if (outcome.kind !== "failed") fail(`A node that threw at step ${failAt} must reject invoke; ${describeOutcome(outcome)}.`);
    }
    const handedPoints: CrashPoint[] = [{ moment: "enter", step: 3 }, { moment: "enter", step: 5 }];
    expectTrace(await entriesIn(reader, handed.traceFile, handed.taskId), applyCap(expectedTrace(handed.steps, handedPoints), handedCap), handed.taskId, `With maxDataBytes ${handedCap}, a task run by one worker (its node failed at step 3), taken over by a second (failed at step 5) and finished by the first, both workers alive throughout`);
  },
);

grader.excellence(
  "append order is the order: a clock that steps back at every reading never reorders the trace nor what the cap drops first",
  {
    hint: "Order entries, and pick the oldest payload to drop, by a sequence the database assigns (INTEGER PRIMARY KEY AUTOINCREMENT), never by the timestamp: clocks tie, differ between processes and step back.",
    section: "order-is-append-order",
    weight: 1,
  },
  async (_api, check) => {
    const random = seededRandom();
    const proc = await freshProc(check);
    await (proc.f as LearnerFixture).clockStepsBack(Date.UTC(2026, 6, 1, 12));
    const task = new Task(check, graphOf(random, [2, 1, 0, 2]), initialState(random));
    expectFinished(await runTask(proc, task), task, "A run in a process whose clock steps back");
    const reader = await readerOf(check);
    expectTrace(await entriesIn(reader, task.traceFile, task.taskId), expectedTrace(task.steps), task.taskId, "The trace of a run whose every timestamp is earlier than the one before");
    // And with a cap: "the oldest payload" is the earliest appended, whatever its timestamp says.
    const capped = new Task(check, graphOf(random, [2, 3, 1, 2]), initialState(random));
    const full = expectedTrace(capped.steps);
    const cap = Math.floor(payloadBytes(full) * 0.45);
    expectFinished(await runTask(proc, capped, { maxDataBytes: cap }), capped, `A run with maxDataBytes ${cap} in a process whose clock steps back`);
    expectTrace(await entriesIn(reader, capped.traceFile, capped.taskId), applyCap(full, cap), capped.taskId, `With maxDataBytes ${cap}, in a process whose clock steps back at every reading`);
  },
);

grader.excellence(
  "bad input is refused with TraceStoreError: a maxDataBytes that is not a positive integer, an empty task id, a bad nodeId or type filter",
  {
    hint: "Validate in the constructor and in entries(): maxDataBytes a positive integer, taskId a non-empty string, filter.nodeId a non-empty string, filter.type one of the four; throw TraceStoreError with a message that says what was wrong.",
    section: "refuse-bad-input",
    weight: 1,
  },
  async (api, check) => {
    const file = new Task(check, [], {}).traceFile;
    const cases: Array<[string, () => Promise<unknown>]> = [];
    for (const max of [0, -5, 1.5, "1000", Number.NaN, Number.POSITIVE_INFINITY]) cases.push([`new SqliteTraceStore(file, { maxDataBytes: ${show(max)} })`, async () => new api.SqliteTraceStore(file, { maxDataBytes: max as never })]);
    const store = await new api.SqliteTraceStore(file);
    cases.push(['entries("")', () => store.entries("")]);
    cases.push(["entries(42)", () => store.entries(42 as never)]);
    cases.push(['entries(taskId, { nodeId: "" })', () => store.entries(opaque(), { nodeId: "" })]);
    cases.push(["entries(taskId, { nodeId: 7 })", () => store.entries(opaque(), { nodeId: 7 as never })]);
    cases.push(['entries(taskId, { type: "tool" })', () => store.entries(opaque(), { type: "tool" as never })]);
    for (const [what, run] of cases) {
      const error = await thrown(run);
      if (error === undefined) fail(`${what} was accepted; it must throw TraceStoreError.`);
      if (!(error instanceof api.TraceStoreError)) fail(`${what} threw ${show(error)}; throw your TraceStoreError instead.`);
      if (typeof (error as Error).message !== "string" || (error as Error).message.length < 10) fail(`The TraceStoreError for ${what} needs a message that says what was wrong.`);
    }
    const fine = await thrown(async () => (await new api.SqliteTraceStore(file, { maxDataBytes: 1 })).entries(opaque(), {}));
    if (fine !== undefined) fail(`maxDataBytes 1 with entries(taskId, {}) threw ${show(fine)}; both are valid.`);
  },
);

if (hiddenChecksEnabled()) (await import("./trace/hidden.ts")).registerHiddenChecks(grader);
