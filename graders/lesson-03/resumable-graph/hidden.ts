/**
 * Hidden checks of lesson-03 / resumable-graph (interviewer grading only): what a candidate who
 * read the public checks may still miss. Two tasks on one graph instance at once, the plain
 * graph without a task id, and keys for a long task id over many loop visits.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import Database from "better-sqlite3";
import type { Grader } from "#harness/check.ts";
import { afterInput, digestInput, emailInput, expectState, fail, history, importInput, invokeIn, newFile, sharedProc, show, simulate, stateOf, World, type GraphApi } from "./fixture.ts";
import type { Hooks } from "./learner-fixture.ts";

function rowsIn(file: string): number {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'").get();
      return table ? (db.prepare("SELECT count(*) AS n FROM checkpoints").get() as { n: number }).n : 0;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

export function registerHiddenChecks(grader: Grader<GraphApi>): void {
  grader.excellence(
    "two tasks run at the same time on one graph instance keep their own state, position and checkpoints",
    {
      hint: "Keep everything about a run (state, current node, the checkpoint it started from) in local variables of invoke, never in fields of the graph: one StateGraph serves every task.",
      section: "resume-from-the-checkpoint",
      weight: 2,
      visibility: "hidden",
      category: "concurrency",
      timeout: 20_000,
    },
    async (api, check) => {
      const proc = await sharedProc(api, check);
      const file = newFile(check);
      const inputs = [importInput(), importInput()];
      const worlds = [new World("import"), new World("import")];
      // The first task waits in "split" until the second has reached "embed": the two runs interleave.
      let secondInEmbed = false;
      worlds[1]!.onEnter = async (node) => void (node === "embed" && (secondInEmbed = true));
      worlds[0]!.onEnter = async (node) => {
        if (node !== "split") return;
        for (const started = Date.now(); !secondInEmbed && Date.now() - started < 5_000 * check.slowness; ) await sleep(5);
      };
      const byTask = new Map(worlds.map((w) => [w.taskId, w]));
      const pick = (taskId: unknown) => byTask.get(String(taskId)) ?? fail(`A node was called with context.taskId ${show(taskId)}, which is neither of the two tasks.`);
      const hooks: Hooks = {
        run: (node, state, context) => pick((context as { taskId?: unknown })?.taskId).hooks().run(node, state, context),
        enter: (node, state, context) => pick((context as { taskId?: unknown })?.taskId).hooks().enter(node, state, context),
        left: async () => undefined,
        // A design may save records of its own under another task id (a journal, a marker): not a node call.
        saved: async (taskId, currentNode, id) => {
          const world = byTask.get(String(taskId));
          if (world !== undefined) await world.hooks().saved(taskId, currentNode, id);
        },
      };
      for (const world of worlds) world.begin(proc.learner);
      const graph = (await proc.f.build(proc.api as never, "import", hooks, worlds[0]!.mailer(), { file })) as unknown as { invoke(i: unknown, s: string, t: string): Promise<unknown> };
      const results = await Promise.all(worlds.map((w, n) => graph.invoke(inputs[n], "fetch", w.taskId)));
      for (const [n, world] of worlds.entries()) {
        const sim = simulate("import", inputs[n]!);
        expectState(results[n] as never, sim.state, `Task ${n + 1} of two run at the same time on one graph`);
        const saved = afterInput(history(file, world.taskId), inputs[n]!, "fetch");
        const nodes = saved.map((c) => c.currentNode);
        if (!isDeepStrictEqual(nodes, sim.nexts)) fail(`Task ${n + 1} of two run at the same time saved checkpoints naming ${show(nodes)}; expected ${show(sim.nexts)}.`);
      }
    },
  );

  grader.excellence(
    "without a task id, or without a store, the graph runs as the seed's plain graph and saves nothing",
    {
      hint: "Only save when invoke got a taskId and the graph has a store; otherwise run start on input to the end (INTERRUPT simply returns the state) without touching the store.",
      section: "errors-and-bad-graphs",
      weight: 1,
      visibility: "hidden",
      category: "plain runs",
    },
    async (api, check) => {
      const proc = await sharedProc(api, check);
      const input = importInput();
      const sim = simulate("import", input);
      const file = newFile(check);
      const plain = stateOf(await invokeIn(proc, new World("import"), file, input, { taskId: null }), "invoke(input, start) without a task id, on a graph with a store");
      expectState(plain, sim.state, "invoke(input, start) without a task id");
      if (rowsIn(file) > 0) fail(`invoke(input, start) without a task id saved ${rowsIn(file)} checkpoint(s); it must save nothing.`);
      const storeless = stateOf(await invokeIn(proc, new World("import"), undefined, input), "invoke(input, start, taskId) on a graph without a store");
      expectState(storeless, sim.state, "invoke(input, start, taskId) on a graph without a store");
      // Keys still name each visit, and an INTERRUPT edge simply returns the state.
      const loop = new World("digest");
      const digest = digestInput(3);
      const looped = stateOf(await invokeIn(proc, loop, undefined, digest, { taskId: null }), "A digest loop without a task id or a store");
      const sends = loop.ledger.of("send");
      if (sends.length !== 3 || new Set(sends.map((e) => e.key)).size !== 3) fail(`A 3-round digest without a task id sent ${sends.length} email(s) under ${new Set(sends.map((e) => e.key)).size} distinct key(s); every visit is still its own effect.`);
      expectState(looped, simulate("digest", digest, "collect", sends.map((e) => e.emailId)).state, "At the end of a digest without a task id");
      const input2 = emailInput();
      const waiting = stateOf(await invokeIn(proc, new World("approval"), undefined, input2, { taskId: null }), "The approval graph without a task id or a store");
      expectState(waiting, simulate("approval", input2).state, "The approval graph without a task id, at its INTERRUPT edge");
    },
  );

  grader.excellence(
    "keys stay within 200 characters and distinct for a 190-character task id over a dozen loop visits",
    {
      hint: "Bound the key: hash the parts (task, starting checkpoint, node) instead of concatenating a task id of any length, and keep it distinct per visit.",
      section: "side-effects-once-check-before-with-a-key",
      weight: 1,
      visibility: "hidden",
      category: "edge cases",
      timeout: 20_000,
    },
    async (api, check) => {
      const proc = await sharedProc(api, check);
      const taskId = `digest-${"ü".repeat(80)}-${"x".repeat(100)}-${Date.now().toString(36)}`.slice(0, 190);
      const world = new World("digest", undefined, taskId);
      const input = digestInput(12);
      const state = stateOf(await invokeIn(proc, world, newFile(check), input), `A 12-round digest under a ${taskId.length}-character task id`);
      const sends = world.ledger.of("send", taskId);
      if (sends.length !== 12 || new Set(sends.map((s) => s.key)).size !== 12) fail(`A 12-round digest under a long task id sent ${sends.length} email(s) under ${new Set(sends.map((s) => s.key)).size} distinct key(s); expected 12 and 12.`);
      expectState(state, simulate("digest", input, "collect", sends.map((s) => s.emailId)).state, "At the end of a 12-round digest under a long task id");
    },
  );
}
