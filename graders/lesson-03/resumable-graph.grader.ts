/**
 * Grader of lesson-03 / resumable-graph: a state graph that saves after each node and resumes.
 *
 * The grader builds its own graphs (resumable-graph/graphs.ts) on the learner's StateGraph in a
 * learner process: node bodies are the trusted side's callbacks, the email node is the learner's
 * sendEmailNode talking to the trusted side's mailer, and the store is the grader's own SQLite
 * store, which reports each committed checkpoint. So every node visit, checkpoint and email is
 * recorded here, in the process that survives the crashes it causes: a crash is a SIGKILL of a
 * learner process at a point the trusted side observes, and the resume runs in a fresh process
 * that shares only the SQLite file. Core: checkpoints after each node naming the node to run
 * next, the full crash matrix of a long task, the email sent once across the crash, keys per task
 * and per loop visit, the approval stop, resume and rejection. Excellence: the router asked once,
 * the approval flow's crash matrix, bad graphs and throwing nodes.
 */
import { isDeepStrictEqual } from "node:util";
import { defineGrader, hiddenChecksEnabled } from "#harness/check.ts";
import { describeOutcome, inParallel } from "#harness/crash.ts";
import { seededRandom } from "#harness/seed.ts";
import {
  afterInput,
  crashPoints,
  digestInput,
  emailInput,
  END,
  expectState,
  fail,
  FIXTURE,
  freshProc,
  history,
  importInput,
  invokeIn,
  label,
  Ledger,
  newFile,
  sharedProc,
  show,
  simulate,
  stateOf,
  visitIndex,
  World,
  type CrashPoint,
  type GraphApi,
  type GraphName,
  type State,
} from "./resumable-graph/fixture.ts";
import type { CheckContext } from "#harness/check.ts";
import type { CrashOutcome } from "#harness/crash.ts";
import { body } from "./resumable-graph/graphs.ts";

const grader = defineGrader<GraphApi>({
  lesson: "lesson-03",
  unit: "resumable-graph",
  exports: ["StateGraph", "GraphError", "sendEmailNode", "END", "INTERRUPT"],
  fixtures: { [FIXTURE]: new URL("./resumable-graph/learner-fixture.ts", import.meta.url).pathname },
});

interface Crashed {
  point: CrashPoint;
  world: World;
  file: string;
  resumed: CrashOutcome<unknown>;
}

/**
 * For each crash point: a fresh process runs the task on a file of its own and is killed at that
 * point. Then fresh processes (two, sharing the work) resume every crashed task, calling invoke
 * with `resumeInput` (by default the task's original input, as a restarted worker would).
 */
async function crashAndResume(check: CheckContext<GraphApi>, graph: GraphName, input: State, points: readonly CrashPoint[], resumeInput: (point: CrashPoint) => State = () => input): Promise<Crashed[]> {
  const cases = points.map((point) => ({ point, world: new World(graph), file: newFile(check) }));
  const crashes = await inParallel(
    cases.map(({ point, world, file }) => async () => {
      const victim = await freshProc(check);
      return invokeIn(victim, world, file, input, { point });
    }),
  );
  for (const [i, outcome] of crashes.entries()) {
    if (outcome.kind === "crashed") continue;
    const { point } = cases[i]!;
    const why = point.moment === "after-save" ? `a checkpoint is saved after every node, "${point.node}" included` : point.moment === "during" ? `every node of an uncrashed run is run` : "the email node sends through the mailer";
    fail(`The "${graph}" task was started to crash at "${label(point)}", but ${outcome.kind === "finished" ? `the run finished without reaching it (expected: ${why})` : describeOutcome(outcome)}.`);
  }
  const half = Math.ceil(cases.length / 2);
  const batches = [cases.slice(0, half), cases.slice(half)].filter((b) => b.length > 0);
  const resumed = await inParallel(
    batches.map((batch) => async () => {
      const proc = await freshProc(check);
      const outcomes: Array<CrashOutcome<unknown>> = [];
      for (const { point, world, file } of batch) outcomes.push(await invokeIn(proc, world, file, resumeInput(point)));
      return outcomes;
    }),
  );
  const flat = resumed.flat();
  return cases.map((c, i) => ({ ...c, resumed: flat[i]! }));
}

grader.core(
  "after each node the graph saves the state it produced and the node to run next, and the run ends at a kept END checkpoint",
  {
    hint: "After a node returns, merge its update, ask its edge for the next node, then save { taskId, state, currentNode: next, timestamp } before running next; the last node's checkpoint names END and nothing is deleted. Saving the node that just finished makes every resume repeat it.",
    section: "save-the-node-to-run-next",
    weight: 3,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const input = importInput();
    const world = new World("import");
    const file = newFile(check);
    const sim = simulate("import", input);
    const state = stateOf(await invokeIn(proc, world, file, input), "An uncrashed run of the import graph");
    const runs = world.ledger.runs(world.taskId);
    if (!isDeepStrictEqual(runs, sim.visits)) fail(`An uncrashed run of the import graph visited ${show(runs)}; expected ${show(sim.visits)} (embed once per batch, then index and summarize; a node without an edge goes to END).`);
    expectState(state, sim.state, "invoke resolved, at the end of an uncrashed import");
    const saved = afterInput(history(file, world.taskId), input, "fetch");
    if (saved.length === 0) fail("After an uncrashed run, the store holds no checkpoint of the task: save one after each node, and keep the last (a deleted checkpoint leaves a late crash nothing to resume from).");
    if (saved.length !== sim.visits.length) {
      fail(`An uncrashed run of ${sim.visits.length} node visits left ${saved.length} checkpoints after the input (nodes to run next: ${show(saved.map((s) => s.currentNode))}); expected one per visit: ${show(sim.nexts)}.`);
    }
    for (const [i, checkpoint] of saved.entries()) {
      const after = `visit ${i + 1} ("${sim.visits[i]}")`;
      if (checkpoint.currentNode !== sim.nexts[i]) {
        const finished = checkpoint.currentNode === sim.visits[i] && sim.nexts[i] !== sim.visits[i];
        fail(`The checkpoint saved after ${after} names ${show(checkpoint.currentNode)}; it must name the node to run next, ${show(sim.nexts[i])}.${finished ? " That is the node that just finished: a resume from it would run it again." : ""}`);
      }
      if (!isDeepStrictEqual(checkpoint.state, sim.states[i + 1])) fail(`The checkpoint saved after ${after} holds the state\n  ${show(checkpoint.state)}\nexpected the state after that node\n  ${show(sim.states[i + 1])}`);
    }
  },
);

grader.core(
  "a crash at any point of any node (a real SIGKILL) resumes in a fresh process at the right node and ends with the uncrashed run's state; a finished task runs nothing",
  {
    hint: "invoke(input, start, taskId) loads the task's latest checkpoint first: none -> run start on input; currentNode END -> return its state; otherwise run currentNode on the saved state and ignore the input (merging it would undo the finished nodes' work). Never delete the final checkpoint.",
    section: "resume-from-the-checkpoint",
    weight: 4,
    timeout: 40_000,
  },
  async (_api, check) => {
    const input = importInput();
    const sim = simulate("import", input);
    // Where a checkpoint surely exists, the restarted caller's input differs (a later job payload, a
    // stray approval answer): an interrupted task ignores it, whatever fields it carries.
    const saved = (point: CrashPoint) => visitIndex(sim.visits, point) > 0 || point.moment === "after-save";
    const late = { ...input, text: "a later caller's input", approvalGranted: true };
    const runs = await crashAndResume(check, "import", input, crashPoints(sim.visits), (point) => (saved(point) ? late : input));
    for (const { point, world, resumed } of runs) {
      const i = visitIndex(sim.visits, point);
      const situation = `After a crash at "${label(point)}" of the import, a fresh process called invoke with the same task id${saved(point) ? " (and another input, which an interrupted task ignores)" : ""}`;
      const ranBefore = world.ledger.runs(world.taskId, 1);
      if (!isDeepStrictEqual(ranBefore, sim.visits.slice(0, i + 1))) fail(`Before the crash at "${label(point)}", the run visited ${show(ranBefore)}; expected ${show(sim.visits.slice(0, i + 1))}.`);
      const state = stateOf(resumed, situation);
      const want = sim.visits.slice(point.moment === "during" ? i : i + 1);
      const got = world.ledger.runs(world.taskId, 2);
      if (!isDeepStrictEqual(got, want)) {
        const reason =
          got[0] === sim.visits[0] && want[0] !== sim.visits[0]
            ? " It started over from the first node: load the task's checkpoint and run its currentNode."
            : point.moment === "after-save" && got[0] === sim.visits[i]
              ? ` It ran "${point.node}" again although the checkpoint after it was saved: save the node to run next, not the one that finished.`
              : point.moment === "during" && got.length < want.length
                ? ` "${point.node}" was interrupted before its checkpoint was saved, so the resume must run it again.`
                : "";
        fail(`${situation}, and the resume visited ${show(got)}; expected ${show(want)}.${reason}`);
      }
      expectState(state, sim.state, situation);
    }
    // The task whose last checkpoint (END) was saved before the crash is finished: invoke runs nothing.
    const done = runs.at(-1)!;
    const proc = await freshProc(check);
    const savesBefore = history(done.file, done.world.taskId).length;
    const again = stateOf(await invokeIn(proc, done.world, done.file, input), "Invoking a finished task once more");
    const ran = done.world.ledger.runs(done.world.taskId, 3);
    if (ran.length > 0) fail(`Invoking a finished task (its latest checkpoint names END) ran ${show(ran)}; it must run nothing and return the final state.`);
    if (history(done.file, done.world.taskId).length !== savesBefore) fail("Invoking a finished task saved a checkpoint; it must save nothing.");
    expectState(again, sim.state, "Invoking a finished task once more");
  },
);

grader.core(
  "the email is sent once: a crash right after the mailer sent it, or anywhere around it, resumes without a second email",
  {
    hint: "sendEmailNode asks mailer.find(context.key) first and returns the earlier { emailId } when there is one; the graph's key for a visit must be the same after the crash: derive it from the checkpoint the visit starts from (with the task and node), never from the clock, a random value or a counter in memory.",
    section: "side-effects-once-check-before-with-a-key",
    weight: 4,
    timeout: 30_000,
  },
  async (_api, check) => {
    const input = emailInput();
    const sim = simulate("notify", input);
    const runs = await crashAndResume(check, "notify", input, crashPoints(sim.visits));
    for (const { point, world, resumed } of runs) {
      const situation = `After a crash at "${label(point)}" and a resume`;
      const state = stateOf(resumed, `${situation}, invoke`);
      const sends = world.ledger.of("send", world.taskId);
      if (sends.length === 0) fail(`${situation}, no email was sent at all (the email node must call mailer.send when mailer.find(key) finds nothing).`);
      if (sends.length > 1) {
        const keys = sends.map((s) => s.key);
        const foundFirst = world.ledger.of("find", world.taskId, 2).some((f) => f.key === sends[1]!.key);
        fail(
          `${situation}, the mailer sent ${sends.length} emails (keys ${show(keys)}).` +
            (keys[0] !== keys[1] ? " The resumed visit got a different key, so asking the mailer could not find the first email: the key must be the same when a visit runs again." : foundFirst ? "" : " The email node sent without asking mailer.find(key) first."),
        );
      }
      const [send] = sends;
      const want = simulate("notify", input, "draft", [send!.emailId]).state;
      if (send!.body !== want.body || send!.to !== want.to || send!.subject !== want.subject) fail(`${situation}, the email sent was ${show(send)}; it must carry the state's to, subject and body ${show({ to: want.to, subject: want.subject, body: want.body })}.`);
      expectState(state, want, `${situation} (the resumed state must carry the emailId of the one email sent)`);
    }
  },
);

grader.core(
  "keys tell effects apart: two tasks with the same content each get their email, and a node visited in a loop sends once per visit",
  {
    hint: "A key names one visit: include the task (another task is another email) and the position in the task's history, e.g. the id of the checkpoint the visit starts from (a loop visits the same node again from a later checkpoint). The node name alone collides.",
    section: "side-effects-once-check-before-with-a-key",
    weight: 3,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const ledger = new Ledger();
    const input = emailInput();
    const worlds = [new World("notify", ledger), new World("notify", ledger)];
    const file = newFile(check);
    const states: State[] = [];
    for (const world of worlds) states.push(stateOf(await invokeIn(proc, world, file, input), "A run of the notify graph"));
    for (const [n, world] of worlds.entries()) {
      const sends = ledger.of("send", world.taskId);
      if (sends.length !== 1) {
        const keys = ledger.of("find", world.taskId).map((f) => f.key);
        fail(`Two tasks with the same content ran the notify graph; task ${n + 1} sent ${sends.length} emails (keys asked: ${show(keys)}).${sends.length === 0 ? " It found the other task's email under the same key: the key must include the task." : ""}`);
      }
      expectState(states[n]!, simulate("notify", input, "draft", [sends[0]!.emailId]).state, `Task ${n + 1} of two with the same content`);
    }
    const loop = new World("digest");
    const digest = digestInput();
    // The loop runs in a process whose clock stands still: a fast loop saves several checkpoints
    // in one millisecond, so a key made from a time (the checkpoint's timestamp) collides.
    const still = await freshProc(check);
    await still.f.stopClock(Date.UTC(2026, 5, 1, 12, 0, 0, Math.floor(seededRandom()() * 1000)));
    const state = stateOf(await invokeIn(still, loop, file, digest), "A run of the digest loop");
    const sends = loop.ledger.of("send", loop.taskId);
    const rounds = Number(digest.rounds);
    if (sends.length !== rounds) fail(`The digest loop visits send-email ${rounds} times, with the same reminder email each time, and every checkpoint of the run is saved in the same millisecond; the mailer sent ${sends.length} email(s) (keys ${show(loop.ledger.of("find", loop.taskId).map((f) => f.key))}): a later visit of the same node needs a new key, and a time does not tell two visits apart.`);
    if (new Set(sends.map((s) => s.key)).size !== rounds) fail(`The digest loop's ${rounds} emails were sent under the keys ${show(sends.map((s) => s.key))}; each visit needs its own key.`);
    expectState(state, simulate("digest", digest, "collect", sends.map((s) => s.emailId)).state, "At the end of the digest loop");
  },
);

grader.core(
  "the approval edge stops the run with awaitingApproval; the same task id resumes it in a fresh process once approved, and ends it without the email when rejected",
  {
    hint: "When an edge returns INTERRUPT, save a checkpoint from which that node runs again, recorded so another process can tell the task waits, and return the state; on the next invoke of a waiting task merge the input (the answer) into the saved state and run that node again. Never route the wait to END, and never delete.",
    section: "the-approval-edge",
    weight: 4,
    timeout: 20_000,
  },
  async (api, check) => {
    const input = emailInput();
    const first = simulate("approval", input);
    const shared = await sharedProc(api, check);
    const later = await freshProc(check);
    for (const approvalGranted of [true, false]) {
      const world = new World("approval");
      const file = newFile(check);
      const stopped = stateOf(await invokeIn(shared, world, file, input), "The first run of the approval graph");
      if (stopped.awaitingApproval !== first.state.awaitingApproval) fail(`The first run of the approval graph resolved with awaitingApproval ${show(stopped.awaitingApproval)}; expected ${show(first.state.awaitingApproval)}, set by check-approval before its edge returned INTERRUPT.`);
      expectState(stopped, first.state, "When the run stopped for approval");
      const ran = world.ledger.runs(world.taskId, 1);
      if (!isDeepStrictEqual(ran, first.visits) || world.ledger.of("send", world.taskId).length > 0) fail(`Before the approval, the run visited ${show(ran)} and sent ${world.ledger.of("send", world.taskId).length} email(s); it must stop after ${show(first.visits)} and send nothing.`);
      const saved = history(file, world.taskId);
      if (saved.length === 0 || saved.at(-1)!.currentNode === END) fail(`When the run stopped for approval, the task's latest checkpoint was ${saved.length === 0 ? "missing" : `one naming END (finished)`}: the wait must be saved as an unfinished task that another process can resume.`);

      const answer = { approvalGranted };
      const state = stateOf(await invokeIn(later, world, file, answer), `Once ${approvalGranted ? "approved" : "rejected"}, invoke({ approvalGranted: ${approvalGranted} }) with the same task id in a fresh process`);
      const sends = world.ledger.of("send", world.taskId);
      const rest = simulate("approval", { ...first.state, ...answer }, "check-approval", sends.map((s) => s.emailId));
      const resumedRuns = world.ledger.runs(world.taskId, 2);
      if (!isDeepStrictEqual(resumedRuns, rest.visits)) {
        fail(
          `Once ${approvalGranted ? "approved" : "rejected"}, the resume visited ${show(resumedRuns)}; expected ${show(rest.visits)}.` +
            (resumedRuns[0] === "draft" ? " It started over: the checkpoint of the wait must name the approval node, not END (and must not be deleted)." : "") +
            (resumedRuns.length === 1 && resumedRuns[0] === "check-approval" ? " check-approval saw no decision: merge the answer into the saved state when the task waits." : ""),
        );
      }
      if (sends.length !== (approvalGranted ? 1 : 0)) fail(`Once ${approvalGranted ? "approved" : "rejected"}, the mailer sent ${sends.length} email(s); expected ${approvalGranted ? 1 : 0}.`);
      expectState(state, rest.state, `Once ${approvalGranted ? "approved" : "rejected"}, at the end`);
      if (history(file, world.taskId).at(-1)?.currentNode !== END) fail(`Once ${approvalGranted ? "approved" : "rejected"}, the run ended but the task's latest checkpoint does not name END.`);
      if (!approvalGranted) {
        // A late "approve" of a rejected (finished) task changes nothing.
        const late = stateOf(await invokeIn(later, world, file, { approvalGranted: true }), "An approval arriving after the rejection");
        if (world.ledger.runs(world.taskId, 3).length > 0 || world.ledger.of("send", world.taskId).length > 0) fail(`An approval arriving after the task was rejected (finished) ran ${show(world.ledger.runs(world.taskId, 3))}; a finished task runs nothing.`);
        expectState(late, rest.state, "An approval arriving after the rejection");
      }
    }
  },
);

grader.excellence(
  "the router is asked once per step: the node a checkpoint names is the node that runs next, even when the router answers differently each time",
  {
    hint: "Ask the edge once after a node, keep the answer, and use it both for the checkpoint's currentNode and for the next step; a second call may answer differently (an A/B split, a round-robin, a model call), and the saved path then differs from the path run.",
    section: "save-the-node-to-run-next",
    weight: 2,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const world = new World("ab");
    const file = newFile(check);
    const state = stateOf(await invokeIn(proc, world, file, { picks: 0, path: [] }), "A run of the A/B graph");
    const entries = world.ledger.entries.filter((e) => (e.kind === "run" || e.kind === "save") && e.task === world.taskId);
    for (const [i, entry] of entries.entries()) {
      if (entry.kind !== "save" || entry.currentNode === END || entry.after === undefined) continue;
      const next = entries.slice(i + 1).find((e) => e.kind === "run");
      if (next?.kind === "run" && next.node !== entry.currentNode) fail(`After "${entry.after}", the checkpoint named ${show(entry.currentNode)} as the node to run next, but the graph ran ${show(next.node)}: the router was asked again after the save.`);
    }
    const path = (state.path as unknown[]) ?? [];
    const ran = world.ledger.runs(world.taskId).filter((n) => n !== "pick");
    if (!isDeepStrictEqual(path, ran)) fail(`The A/B run's state records the path ${show(path)}, but the nodes run were ${show(ran)}.`);
  },
);

grader.excellence(
  "every crash point of the approval flow, before the stop and after the answer, ends in the same final state with exactly one email",
  {
    hint: "The wait and the answer must survive a crash: a crash before the wait was saved leaves an interrupted task that stops again on resume; a crash after the answer was merged but before the next save leaves a waiting task that takes the answer again; after send-email, the key finds the email already sent.",
    section: "the-approval-edge",
    weight: 3,
    timeout: 60_000,
  },
  async (api, check) => {
    const input = emailInput();
    const first = simulate("approval", input);
    const approved = { ...first.state, approvalGranted: true };
    const shared = await sharedProc(api, check);
    const points = [
      ...crashPoints(first.visits).map((point) => ({ point, phase: 1 as const })),
      ...crashPoints(simulate("approval", approved, "check-approval").visits).map((point) => ({ point, phase: 2 as const })),
    ];
    const cases = points.map((c) => ({ ...c, world: new World("approval"), file: newFile(check), where: `${label(c.point)} ${c.phase === 1 ? "of the run before the approval" : "of the run after the approval"}` }));
    // Phase-2 tasks reach the wait first (in the shared process); every victim is a fresh process killed at its point.
    for (const c of cases) if (c.phase === 2) stateOf(await invokeIn(shared, c.world, c.file, input), "The first run of the approval graph");
    await inParallel(
      cases.map((c) => async () => {
        const outcome = await invokeIn(await freshProc(check), c.world, c.file, c.phase === 1 ? input : { approvalGranted: true }, { point: c.point });
        if (outcome.kind !== "crashed") fail(`The approval flow was started to crash at ${c.where}, but ${describeOutcome(outcome)}.`);
      }),
    );
    // Two fresh processes share the resumes: a restarted worker (phase 1), then the approver's answer.
    const half = Math.ceil(cases.length / 2);
    await inParallel(
      [cases.slice(0, half), cases.slice(half)].map((batch) => async () => {
        const resume = await freshProc(check);
        for (const { world, file, where, phase } of batch) {
          if (phase === 1) {
            const stopped = stateOf(await invokeIn(resume, world, file, input), `After a crash at ${where}, the restarted invoke`);
            if (stopped.awaitingApproval !== first.state.awaitingApproval) fail(`After a crash at ${where}, the restarted invoke resolved with awaitingApproval ${show(stopped.awaitingApproval)}; the task must stop for approval again (expected ${show(first.state.awaitingApproval)}).`);
          }
          let state = stateOf(await invokeIn(resume, world, file, { approvalGranted: true }), `After a crash at ${where}, invoke({ approvalGranted: true })`);
          if (state.awaitingApproval) state = stateOf(await invokeIn(resume, world, file, { approvalGranted: true }), `After a crash at ${where}, the answer given again`);
          const sends = world.ledger.of("send", world.taskId);
          if (sends.length !== 1) fail(`After a crash at ${where}, the mailer sent ${sends.length} emails (keys ${show(sends.map((s) => s.key))}); expected exactly 1.`);
          expectState(state, simulate("approval", approved, "check-approval", [sends[0]!.emailId]).state, `After a crash at ${where} and the approval`);
        }
      }),
    );
  },
);

grader.excellence(
  "bad graphs fail loudly and leave the task resumable: an unknown start node or edge target is a GraphError saved nowhere, and a node that throws runs again on the next invoke",
  {
    hint: "Check the start node and each edge's answer against the nodes before saving a checkpoint that names them, and throw GraphError naming the node; when a node throws, let its own error (not a wrapper) reject invoke and save nothing for that node, so the task stays at the checkpoint before it.",
    section: "errors-and-bad-graphs",
    weight: 2,
    timeout: 20_000,
  },
  async (api, check) => {
    const proc = await sharedProc(api, check);
    const input = importInput();
    const file = newFile(check);
    const rejection = async (outcome: CrashOutcome<unknown>, what: string) => {
      if (outcome.kind !== "failed") fail(`${what}: invoke must reject, but ${describeOutcome(outcome)}.`);
      return outcome.error;
    };
    const unknownStart = new World("import");
    const e1 = await rejection(await invokeIn(proc, unknownStart, file, input, { start: "fetcher" }), 'invoke(input, "fetcher", taskId) where no node is called "fetcher"');
    if (!(e1 instanceof api.GraphError)) fail(`An unknown start node was refused with ${show(e1)}; throw your GraphError, naming the node.`);
    if (!String((e1 as Error).message).includes("fetcher")) fail(`An unknown start node was refused with the message ${show((e1 as Error).message)}; name the node ("fetcher") so the caller can fix the call.`);
    if (history(file, unknownStart.taskId).length > 0) fail("An unknown start node was refused, but a checkpoint of the task was saved first: validate before saving.");

    const broken = new World("import");
    const e2 = await rejection(await invokeIn(proc, broken, file, input, { build: { brokenEdgeFrom: "split" } }), 'A run whose edge out of "split" names "reindex", which is not a node');
    if (!(e2 instanceof api.GraphError)) fail(`An edge naming a node that does not exist was refused with ${show(e2)}; throw your GraphError, naming the node.`);
    if (!String((e2 as Error).message).includes("reindex")) fail(`An edge naming a node that does not exist was refused with the message ${show((e2 as Error).message)}; name the node ("reindex").`);
    const brokenSaved = history(file, broken.taskId);
    if (brokenSaved.some((c) => c.currentNode === "reindex")) fail('A checkpoint naming "reindex" (a node that does not exist) was saved: every resume of that task would fail. Check the edge\'s answer before saving.');

    const flaky = new World("import");
    const sim = simulate("import", input);
    let failures = 0;
    flaky.bodyOf = (node, state) => {
      if (node === "index" && failures++ === 0) throw new IndexReadOnlyError();
      return body("import", node, state);
    };
    const e3 = await rejection(await invokeIn(proc, flaky, file, input), 'A run whose "index" node throws');
    const own = e3 as { name?: unknown; message?: unknown; code?: unknown } | undefined;
    if (own?.name !== "IndexReadOnlyError" || own.message !== "the search index is read-only right now" || own.code !== "READ_ONLY") {
      fail(`When "index" threw an IndexReadOnlyError (code "READ_ONLY", message "the search index is read-only right now"), invoke rejected with ${show(e3)}; reject with the node's own error, unwrapped, so a caller's retry policy still sees its class and code.`);
    }
    const latest = history(file, flaky.taskId).at(-1);
    if (latest?.currentNode !== "index") fail(`After "index" threw, the task's latest checkpoint names ${show(latest?.currentNode)}; it must still name "index" (nothing is saved for a node that failed).`);
    const retried = stateOf(await invokeIn(await freshProc(check), flaky, file, input), 'After "index" threw once, invoke in a fresh process');
    const ran = flaky.ledger.runs(flaky.taskId, 2);
    if (!isDeepStrictEqual(ran, ["index", "summarize"])) fail(`After "index" threw once, the next invoke visited ${show(ran)}; expected ["index", "summarize"].`);
    expectState(retried, sim.state, 'After "index" threw once and the task was invoked again');
  },
);

/** A provider's own error, with the class name and code a retry policy looks at. */
class IndexReadOnlyError extends Error {
  override name = "IndexReadOnlyError";
  readonly code = "READ_ONLY";
  constructor() {
    super("the search index is read-only right now");
  }
}

if (hiddenChecksEnabled()) (await import("./resumable-graph/hidden.ts")).registerHiddenChecks(grader);

