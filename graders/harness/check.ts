/**
 * The check API every grader uses. A check is one Vitest test that carries its
 * rubric data (tier, weight, hint, lesson section, visibility) as task meta, so
 * the grading engine and the site read the rubric from the graders themselves.
 *
 *   const grader = defineGrader<SerdeApi>({ lesson: "lesson-11", unit: "serde", exports: ["dumpsTyped", "loadsTyped"] });
 *   grader.core("round-trips every JSON value", { hint: "...", section: "typed-tags" }, async (api, check) => { ... });
 *
 * Checks run here, in the trusted process; the code under test never does. `api`
 * is the learner's module as seen from the learner process (kit/sandbox/): every
 * call is a message and returns a promise (`await api.dumpsTyped(x)`,
 * `await new api.Store(...)`), values cross as structured clones, and objects,
 * classes and errors cross as handles, so `instanceof api.SerdeError` works.
 * `check.spawn()` starts a further learner process (a second instance, a crash
 * victim, a fresh reader); every process a check starts dies when the check ends.
 */
import { chmodSync, mkdtempSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, test } from "vitest";
import { compileLearner, CompileError, type Build } from "../../kit/sandbox/compile.ts";
import { detectSandbox, flushLearnerCoverage, LearnerProcess, mutationHooks, pathInLearner, type SandboxMode } from "../../kit/sandbox/learner.ts";
import { ImplementationLoadError, implementationDir } from "./implementation.ts";
import { activity, noteActivity, servicesDir } from "./services.ts";
import { appendFileSync } from "node:fs";

export type Tier = "core" | "excellence";
export type Visibility = "public" | "hidden";

export interface CheckMeta {
  lesson: string;
  unit: string;
  tier: Tier;
  weight: number;
  /** What to change, in one or two sentences. */
  hint: string;
  /** Anchor of the lesson section to read (a heading slug of lessons/<lesson>/<unit>.md). */
  section: string;
  visibility: Visibility;
  /** Broad category shown for hidden checks instead of their details. */
  category: string;
  /** Per-check time limit in ms, before it is scaled to the machine's measured speed. */
  timeout: number;
}

declare module "vitest" {
  interface TaskMeta {
    check?: CheckMeta;
    /** What the learner's processes printed while this check ran (capped). */
    learnerOutput?: string;
    /** A figure the check reports whatever its result (check.note). */
    note?: string;
  }
}

export interface CheckOptions {
  hint: string;
  section: string;
  weight?: number;
  visibility?: Visibility;
  category?: string;
  /** Per-check timeout in ms (default 10 s), scaled to the machine's measured speed. */
  timeout?: number;
}

/** What a check can do beyond calling the learner's module. */
export interface CheckContext<Api> {
  /** The learner process the module lives in (shared by the unit's checks). */
  learner: LearnerProcess;
  /** A new learner process with the module loaded, killed when the check ends (unless it was already). */
  spawn(): Promise<{ learner: LearnerProcess; api: Api }>;
  /** The exports of a learner-side fixture (trusted code that must run next to the learner's, e.g. classes it registers). */
  fixture<T = Record<string, unknown>>(name: string, learner?: LearnerProcess): Promise<T>;
  /** The unit's read-write folder that every learner process of the unit sees (SQLite files go here). */
  scratch: string;
  /** How much slower than a calm machine this one measured (>= 1): scale waits by it. */
  slowness: number;
  /** A short figure shown with the check's result, pass or fail (e.g. "716 of 716 LangGraph conformance tests pass"). */
  note(text: string): void;
}

export type CheckBody<Api> = (api: Api, check: CheckContext<Api>) => unknown | Promise<unknown>;

export interface Grader<Api> {
  lesson: string;
  unit: string;
  /** The implementation under test, loaded once in the shared learner process; throws a readable error if it does not load. */
  load(): Promise<Api>;
  core(title: string, options: CheckOptions, body: CheckBody<Api>): void;
  excellence(title: string, options: CheckOptions, body: CheckBody<Api>): void;
}

export interface GraderOptions {
  lesson: string;
  unit: string;
  /** Names the module must export; a missing one fails every check with a clear message. */
  exports: string[];
  /** Learner-side fixture modules, by name: absolute paths (use new URL("./x.ts", import.meta.url)). */
  fixtures?: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const LOAD_LIMIT_MS = 8_000;
const OUTPUT_CAP = 500;
const NOTE_CAP = 200;
/** A learner process start on a calm machine (bwrap + node, measured here at ~80-150 ms). */
const CALM_START_MS = 200;
const MAX_SLOWNESS = 8;
/** A check that keeps making progress may run this many times its scaled timeout before it is stopped. */
const PROGRESS_CAP = 4;
const MEMORY_POLL_MS = 250;

function sandboxMode(): SandboxMode {
  const wanted = process.env.CHECKPOINT_KIT_SANDBOX;
  if (wanted === "none") return "none";
  const detected = detectSandbox();
  if (wanted === "bwrap" && detected.mode !== "bwrap") throw new Error(`An OS sandbox is required but ${detected.reason}.`);
  return detected.mode;
}

/** Everything the unit's learner processes share, made once per grading. */
interface UnitSetup {
  build: Build;
  sandbox: SandboxMode;
  scratch: string;
  slowness: number;
}

const live = new Set<LearnerProcess>();
let outputOfCheck = "";
const memoryLimitMb = Number(process.env.CHECKPOINT_KIT_LEARNER_TREE_MB ?? 2_048);
const heapLimitMb = Number(process.env.CHECKPOINT_KIT_LEARNER_HEAP_MB ?? 512);
let overMemory: string | undefined;

const memoryTimer = setInterval(() => {
  let total = 0;
  for (const learner of live) if (learner.running) total += learner.residentBytes();
  if (total > memoryLimitMb * 2 ** 20) {
    overMemory = `your code used ${Math.round(total / 2 ** 20)} MB across its processes, over the memory limit of ${memoryLimitMb} MB`;
    for (const learner of live) learner.kill("SIGKILL", false);
  }
}, MEMORY_POLL_MS);
memoryTimer.unref();

afterAll(async () => {
  clearInterval(memoryTimer);
  await Promise.all([...live].map((learner) => learner.stop()));
});

async function startLearner(setup: UnitSetup): Promise<LearnerProcess> {
  const learner = await LearnerProcess.start({
    build: setup.build,
    scratch: setup.scratch,
    sandbox: setup.sandbox,
    memoryMb: heapLimitMb,
    readable: [servicesDir()],
    onOutput: (text) => {
      if (outputOfCheck.length <= OUTPUT_CAP) outputOfCheck += text;
    },
  });
  live.add(learner);
  // Any message from a learner process is progress: a slow machine shows some, stuck code none.
  learner.child.on("message", (message: { op?: string }) => {
    if (message?.op !== "pong") noteActivity();
  });
  void learner.exited.then(() => live.delete(learner));
  return learner;
}

function withinLimit<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ImplementationLoadError(message)), ms);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

export function defineGrader<Api>(options: GraderOptions): Grader<Api> {
  let setup: Promise<UnitSetup> | undefined;
  let shared: { learner: LearnerProcess; api: Promise<Api> } | undefined;

  const prepare = () =>
    (setup ??= (async () => {
      let build: Build;
      try {
        build = await compileLearner({ implementationDir: implementationDir(options.lesson, options.unit), fixtures: options.fixtures });
      } catch (error) {
        if (error instanceof CompileError) throw new ImplementationLoadError(`Your ${options.unit} module does not compile:\n${error.message}`);
        throw error;
      }
      const sandbox = sandboxMode();
      const scratch = mkdtempSync(join(tmpdir(), "data-"));
      // Under bwrap the learner runs as nobody: it must be able to pass through the (private, 0700) temp folder the engine gives each unit.
      const parent = dirname(scratch);
      if (sandbox === "bwrap" && (statSync(parent).mode & 0o001) === 0) chmodSync(parent, statSync(parent).mode | 0o111);
      // Calibrate: how long one learner process takes to start here and now.
      const started = performance.now();
      const probe = await LearnerProcess.start({ build, scratch, sandbox, memoryMb: 64 });
      const startMs = performance.now() - started;
      await probe.stop();
      const slowness = Math.min(MAX_SLOWNESS, Math.max(1, startMs / CALM_START_MS));
      return { build, sandbox, scratch, slowness };
    })());

  const importUnit = async (learner: LearnerProcess, s: UnitSetup): Promise<Api> => {
    let module: Record<string, unknown>;
    try {
      module = await withinLimit(
        learner.import(pathInLearner(s.build, s.build.unit, s.sandbox)),
        LOAD_LIMIT_MS * s.slowness,
        `Your ${options.unit} module did not finish loading within ${Math.round((LOAD_LIMIT_MS * s.slowness) / 1000)} s: is there a top-level await that never resolves, or a loop at the top level?`,
      );
    } catch (error) {
      if (error instanceof ImplementationLoadError) {
        // A module that never finishes loading would do so again in every check: fail the rest at once.
        loadTimedOut ??= error;
        throw error;
      }
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new ImplementationLoadError(`Your ${options.unit} module threw while it was being imported: ${reason}`);
    }
    const missing = options.exports.filter((name) => module[name] === undefined);
    if (missing.length > 0) {
      throw new ImplementationLoadError(`Your ${options.unit} module does not export ${missing.map((m) => `\`${m}\``).join(", ")}; keep the names of the starter's contract.`);
    }
    return module as Api;
  };

  /** Starts the shared learner process (again, if the last one died or hung) and begins importing the module. */
  let loadTimedOut: ImplementationLoadError | undefined;
  const ensureShared = async (): Promise<{ learner: LearnerProcess; api: Promise<Api> }> => {
    const s = await prepare();
    if (loadTimedOut) throw loadTimedOut;
    if (!shared || !shared.learner.running) {
      const learner = await startLearner(s);
      const api = importUnit(learner, s);
      api.catch(() => undefined); // awaited by every check; an early failure is not unhandled
      shared = { learner, api };
    }
    return shared;
  };
  const load = async (): Promise<Api> => (await ensureShared()).api;

  const register = (tier: Tier) => (title: string, check: CheckOptions, body: CheckBody<Api>) => {
    const meta: CheckMeta = {
      lesson: options.lesson,
      unit: options.unit,
      tier,
      weight: check.weight ?? 1,
      hint: check.hint,
      section: check.section,
      visibility: check.visibility ?? "public",
      category: check.category ?? tier,
      timeout: check.timeout ?? DEFAULT_TIMEOUT_MS,
    };
    // Vitest's own timeout is a backstop far past ours; ours says why it fired.
    test(title, { meta: { check: meta }, timeout: meta.timeout * MAX_SLOWNESS * PROGRESS_CAP + 60_000 }, async (context) => {
      outputOfCheck = "";
      overMemory = undefined;
      const spawned: LearnerProcess[] = [];
      let finished = false;
      let s: UnitSetup | undefined;
      try {
        reportProgress(title, meta.timeout * MAX_SLOWNESS * PROGRESS_CAP + 30_000);
        s = await prepare();
        const setupNow = s;
        // Start the learner process; its import runs under the same watch as the check's body.
        const { learner: sharedLearner, api: loading } = await ensureShared();
        const ctx: CheckContext<Api> = {
          learner: sharedLearner,
          scratch: setupNow.scratch,
          slowness: setupNow.slowness,
          note(text) {
            context.task.meta.note = text.slice(0, NOTE_CAP);
          },
          async spawn() {
            if (finished) throw new Error("the check has ended");
            const learner = await startLearner(setupNow);
            spawned.push(learner);
            return { learner, api: await importUnit(learner, setupNow) };
          },
          async fixture<T>(name: string, learner = sharedLearner) {
            const file = setupNow.build.fixtures[name];
            if (!file) throw new Error(`grader bug: no fixture named ${name}`);
            return (await learner.import(pathInLearner(setupNow.build, file, setupNow.sandbox))) as T;
          },
        };
        await runWithDeadline(loading.then((api) => body(api, ctx)), meta.timeout * setupNow.slowness, meta.timeout, sharedLearner, title);
      } catch (error) {
        if (overMemory) throw new Error(`Stopped: ${overMemory}.`);
        throw error;
      } finally {
        finished = true;
        // Mutation testing only: what a spawned process reached without a message (the HTTP requests its
        // server answered) is collected before the kill, or it would be credited to no check at all.
        if (mutationHooks.onCoverage) await flushLearnerCoverage();
        for (const learner of spawned) learner.kill("SIGKILL");
        // A learner process that is stuck would hold up every later check: start the next one afresh.
        if (shared && shared.learner.running && !(await shared.learner.responsive(1_000 * (s?.slowness ?? 1)))) {
          shared.learner.kill("SIGKILL", false);
          shared = undefined;
        }
        context.task.meta.learnerOutput = outputOfCheck.length > OUTPUT_CAP ? `${outputOfCheck.slice(0, OUTPUT_CAP)}… (output capped at ${OUTPUT_CAP} characters)` : outputOfCheck;
      }
    });
  };

  return { lesson: options.lesson, unit: options.unit, load, core: register("core"), excellence: register("excellence") };
}

const POLL_MS = 250;
/** A process that answers no message for this much of its own CPU time is in a loop (machine speed does not change CPU time). */
const BUSY_CPU_SECONDS = 4;
/** After this many checks stopped for a hang, later checks fail at once instead of waiting out the same hang. */
const STUCK_LIMIT = 2;
const stuckChecks: string[] = [];
const SILENCE_BEFORE_PING_MS = 3_000;
/** An idle process answers a ping in milliseconds; this allows for a very busy machine. */
const PING_ANSWER_MS = 5_000;

class StuckError extends Error {}

function cpuOf(): number {
  let total = 0;
  for (const learner of live) if (learner.running) total += learner.cpuSeconds();
  return total;
}

/**
 * Runs a check's body under its deadline, judged by what the learner's
 * processes do rather than by the wall clock alone:
 * - busy: they used BUSY_CPU_SECONDS of CPU without sending a single message
 *   (a synchronous loop); CPU time, unlike wall time, does not stretch on a busy machine;
 * - no progress: nothing from either side for the check's timeout while the
 *   learner answers pings (a promise that never settles);
 * - still making progress after PROGRESS_CAP scaled timeouts: the machine is
 *   overloaded, and the message says so instead of blaming the code.
 */
/**
 * `silenceMs` is not scaled by the machine's slowness: a slow machine stretches the gaps between
 * messages, but it does not make both sides fall silent while the learner answers pings at once.
 */
async function runWithDeadline(work: Promise<unknown>, timeoutMs: number, silenceMs: number, learner: LearnerProcess, title: string): Promise<void> {
  work.catch(() => undefined); // a body that is not awaited below may still fail: that is no news
  if (stuckChecks.length >= STUCK_LIMIT) {
    throw new StuckError(`Not run: your code hung in ${stuckChecks.length} earlier checks (${stuckChecks.map((t) => `"${t}"`).join(", ")}), so this one was not tried.`);
  }
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  // When the check is stopped, the abandoned body may still fail later: that is no news.
  done.catch(() => undefined);
  const started = Date.now();
  let lastProgress = activity.count;
  let lastProgressAt = Date.now();
  let cpuAtProgress = cpuOf();
  // A silent process is pinged: one that neither answers nor uses CPU has a broken channel or is frozen.
  let ping: { sentAt: number; cpu: number; answered: boolean } | undefined;
  const hung = (message: string) => {
    stuckChecks.push(title);
    return new StuckError(message);
  };
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<"tick">((resolve) => {
      timer = setTimeout(() => resolve("tick"), POLL_MS);
    });
    const outcome = await Promise.race([done.then(() => "done" as const), tick]).finally(() => clearTimeout(timer));
    if (outcome === "done" || settled) {
      await done;
      return;
    }
    const cpu = cpuOf();
    if (activity.count !== lastProgress) {
      lastProgress = activity.count;
      lastProgressAt = Date.now();
      cpuAtProgress = cpu;
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    if (learner.running && Date.now() - lastProgressAt > SILENCE_BEFORE_PING_MS) {
      if (!ping || (ping.answered && Date.now() - ping.sentAt > SILENCE_BEFORE_PING_MS)) {
        const sent = { sentAt: Date.now(), cpu, answered: false };
        ping = sent;
        void learner.ping().then(() => void (sent.answered = true));
      } else if (!ping.answered && Date.now() - ping.sentAt > PING_ANSWER_MS && cpu - ping.cpu < 0.05) {
        throw hung(`Stopped after ${seconds} s: the process running your code stopped answering while idle (its channel to the grader is broken or it is frozen: did it write to file descriptors it does not own, or block in Atomics.wait?).`);
      }
    }
    if (cpu - cpuAtProgress > BUSY_CPU_SECONDS) {
      throw hung(`Timed out after ${seconds} s: your code kept its process busy and never returned (it used ${(cpu - cpuAtProgress).toFixed(1)} s of CPU without answering: a loop that never ends, or work far beyond what the check asks for?).`);
    }
    if (Date.now() - lastProgressAt > silenceMs) {
      if (!learner.running) throw new Error(`Stopped after ${seconds} s: ${learner.describeExit()}.`);
      const responsive = await learner.responsive(2_000);
      if (settled) return void (await done);
      throw hung(
        responsive
          ? `Timed out after ${seconds} s with no progress: a call into your code never settled (a promise that never resolves, or a wait on something that never comes).`
          : `Timed out after ${seconds} s: your code kept its process busy and never returned (a synchronous loop that never ends?).`,
      );
    }
    if (Date.now() - started > timeoutMs * PROGRESS_CAP) {
      throw new Error(
        `Stopped after ${seconds} s although your code was still making progress: the machine looks overloaded (load average ${loadavg()[0]!.toFixed(1)}). This is not a verdict on your code; grade again when the machine is calmer.`,
      );
    }
  }
}

/**
 * Tells the engine which check is starting, and how long it may take at most:
 * if the trusted side itself hangs, the engine knows which check to name.
 */
function reportProgress(title: string, timeoutMs: number): void {
  const file = process.env.CHECKPOINT_KIT_PROGRESS;
  if (file) appendFileSync(file, `${JSON.stringify({ title, timeoutMs })}\n`);
}

/** True when hidden checks should be registered (interviewer grading). The candidate bundle ships none. */
export function hiddenChecksEnabled(): boolean {
  return process.env.CHECKPOINT_KIT_HIDDEN === "1";
}
