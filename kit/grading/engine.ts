/**
 * Grades units. Each unit runs in its own process group (unit-process.ts) so a
 * submission that loops, hangs, exits or eats memory costs only its own unit:
 * the engine watches progress and kills the group when a check overruns.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { build } from "esbuild";
import pLimit from "p-limit";
import { z } from "zod";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { detectSandbox, type SandboxMode } from "../sandbox/learner.ts";
import { loadManifest, findLesson, findUnit, unitPaths, type Manifest } from "../manifest.ts";
import { typecheckUnits } from "./typecheck.ts";
import { worthALook } from "./worth-a-look.ts";
import { verifyLine, type RawCheck, type UnitMessage } from "./channel.ts";
import {
  capTier,
  lessonTier,
  unitTier,
  weightedScore,
  scoreWithinTier,
  type CheckResult,
  type LessonReport,
  type UnitResult,
} from "./report.ts";

export interface GradeLimits {
  /** Time allowed before the first check starts (start-up, collection). */
  startupMs: number;
  /** Extra time past a check's own timeout before the process is killed. */
  graceMs: number;
  /** Hard cap for the whole unit. */
  unitMs: number;
  /** Heap limit of the process that runs the submission. */
  memoryMb: number;
  /** Resident memory of the unit's whole process group (buffers and child processes count too). */
  groupMemoryMb: number;
}

// Backstops only: a check itself tells a hang from slow progress within seconds (graders/harness/check.ts),
// so these are generous enough that a busy machine never reaches them with code that makes progress.
export const DEFAULT_LIMITS: GradeLimits = { startupMs: 120_000, graceMs: 5_000, unitMs: 600_000, memoryMb: 768, groupMemoryMb: 3_072 };

const PAGE_SIZE = 4096;

/** Resident set size of every process in a process group (Linux /proc; 0 elsewhere). */
export function groupResidentBytes(pgid: number): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return 0;
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid) total += Number(fields[21]) * PAGE_SIZE;
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

export interface GradeUnitOptions {
  lesson: string;
  unit: string;
  title?: string;
  /** Folder holding the implementation's index.ts. */
  implementationDir: string;
  hidden: boolean;
  seed: number;
  limits?: Partial<GradeLimits>;
  /** Environment overrides for the grading process (e.g. REDIS_URL, or undefined to unset it). */
  env?: Record<string, string | undefined>;
  /**
   * Learner code always runs in learner processes apart from the checks, in the
   * OS sandbox where the machine has one. true marks it as the learner's (it is
   * type-checked first); "require" also refuses to grade without the OS sandbox
   * (a stranger's submission).
   */
  sandbox?: boolean | SandboxPolicy;
  /** Compiler errors found before grading; they cap the unit at adequate. */
  typeErrors?: string;
}

interface ProcessOutcome {
  done?: Extract<UnitMessage, { kind: "done" }>;
  /** Titles of the checks that started, in order. */
  started: string[];
  killedFor?: string;
  /** What the submission tampered with, as noticed by the check wrapper. */
  tampering?: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  durationMs: number;
}

const STDERR_CAP = 2_000;
/** How a check's message starts when the learner's module could not be loaded (see graders/harness/check.ts). */
const LOAD_FAILURE = "ImplementationLoadError: ";
const PROGRESS_POLL_MS = 100;
const MEMORY_POLL_MS = 250;
/** A check may not extend its own deadline past this, whatever timeout it declares. */
const MAX_CHECK_MS = 400_000;
const ProgressSchema = z.union([
  z.strictObject({ title: z.string(), timeoutMs: z.number().positive() }),
  z.strictObject({ tampering: z.string() }),
]);

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function capture(stream: Readable, cap: number): () => string {
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    if (text.length < cap) text += chunk;
  });
  return () => (text.length > cap ? `${text.slice(0, cap)}…` : text);
}

/** How learner code is confined: "auto" uses the OS sandbox where there is one; "require" refuses to run without it. */
export type SandboxPolicy = "auto" | "require";

export class SandboxUnavailableError extends Error {
  override name = "SandboxUnavailableError";
}

/**
 * Decides, once per grading, whether learner processes run in bubblewrap. In CI
 * (CI=true) the sandbox is mandatory, so a broken sandbox cannot pass unnoticed.
 */
export function resolveSandbox(policy: SandboxPolicy): SandboxMode {
  const found = detectSandbox();
  if (found.mode === "bwrap") return "bwrap";
  if (policy === "require" || process.env.CI === "true") {
    throw new SandboxUnavailableError(
      `Grading a submission runs a stranger's code, and this machine has no OS sandbox: ${found.reason}. ` +
        "Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap) or grade inside a Linux container; " +
        "or pass --allow-unsandboxed to run it unconfined, with your own rights, at your own risk.",
    );
  }
  return "none";
}

let unitProcessEntry: Promise<string> | undefined;

/**
 * The unit process starts on plain JavaScript: unit-process.ts and the kit files it imports,
 * bundled once per engine process (packages stay imports, resolved from node_modules). Under a
 * TypeScript loader every one of Vitest's modules would pass through the loader's hooks, which
 * cost about half a second per unit here.
 */
function compiledUnitProcess(): Promise<string> {
  unitProcessEntry ??= (async () => {
    const result = await build({
      entryPoints: [join(KIT_ROOT, "kit", "grading", "unit-process.ts")],
      bundle: true,
      packages: "external",
      format: "esm",
      platform: "node",
      target: "node20",
      write: false,
      logLevel: "silent",
    });
    const code = result.outputFiles[0]!.contents;
    const file = join(KIT_ROOT, "node_modules", ".cache", "checkpoint-kit", `unit-process-${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`);
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      // Written aside and renamed, so a unit process started by another engine never reads half a file.
      const partial = `${file}.${process.pid}`;
      writeFileSync(partial, code);
      renameSync(partial, file);
    }
    return file;
  })();
  return unitProcessEntry;
}

async function runUnitProcess(options: GradeUnitOptions, limits: GradeLimits): Promise<ProcessOutcome> {
  const entry = await compiledUnitProcess();
  const key = randomBytes(32);
  const grader = relative(KIT_ROOT, unitPaths(options.lesson, options.unit).grader);
  const started = Date.now();
  // The unit's own temp folder: its TMPDIR, and under the sandbox the only place it may write.
  const scratch = realpathSync(mkdtempSync(join(tmpdir(), "w-")));
  const progressFile = join(scratch, "progress.ndjson");
  const sandbox = resolveSandbox(options.sandbox === "require" ? "require" : "auto");
  const child = spawn(
    process.execPath,
    [entry, grader, String(limits.memoryMb)],
    {
      cwd: KIT_ROOT,
      detached: true,
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        CHECKPOINT_KIT_UNIT_DIR: options.implementationDir,
        CHECKPOINT_KIT_HIDDEN: options.hidden ? "1" : "0",
        CHECKPOINT_KIT_SEED: String(options.seed),
        CHECKPOINT_KIT_PROGRESS: progressFile,
        TMPDIR: scratch,
        TMP: scratch,
        TEMP: scratch,
        // Learner code runs in learner processes the grader starts (kit/sandbox/), confined by this.
        CHECKPOINT_KIT_SANDBOX: sandbox,
        CHECKPOINT_KIT_LEARNER_TREE_MB: String(limits.groupMemoryMb),
        NO_COLOR: "1",
        ...options.env,
      },
    },
  );
  child.stdin!.end(key.toString("hex"));
  const stdout = capture(child.stdout!, STDERR_CAP);
  const stderr = capture(child.stderr!, STDERR_CAP);
  const outcome: ProcessOutcome = { started: [], exitCode: null, signal: null, stderr: "", durationMs: 0 };

  let deadline: NodeJS.Timeout | undefined;
  const killFor = (reason: string) => {
    if (outcome.killedFor || outcome.done) return;
    outcome.killedFor = reason;
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  };
  const armDeadline = (ms: number, reason: () => string) => {
    clearTimeout(deadline);
    deadline = setTimeout(() => killFor(reason()), ms);
  };
  const unitDeadline = setTimeout(
    () => killFor(`the unit took longer than its limit of ${Math.round(limits.unitMs / 1000)} s`),
    limits.unitMs,
  );
  armDeadline(limits.startupMs, () => `it did not start its first check within ${Math.round(limits.startupMs / 1000)} s`);

  // Progress: the check wrapper appends a line before each check runs (see #harness/check.ts).
  let progressRead = 0;
  const progressTimer = setInterval(() => {
    let text: string;
    try {
      text = readFileSync(progressFile, "utf8");
    } catch {
      return;
    }
    const fresh = text.slice(progressRead);
    const complete = fresh.lastIndexOf("\n");
    if (complete < 0) return;
    progressRead += complete + 1;
    for (const line of fresh.slice(0, complete).split("\n")) {
      const parsed = ProgressSchema.safeParse(safeJson(line));
      if (!parsed.success) continue;
      if ("tampering" in parsed.data) {
        outcome.tampering ??= parsed.data.tampering;
        continue;
      }
      const { title, timeoutMs } = parsed.data;
      outcome.started.push(title);
      const limitMs = Math.min(timeoutMs, MAX_CHECK_MS) + limits.graceMs;
      armDeadline(limitMs, () => `timed out after ${Math.round(limitMs / 1000)} s while running check "${title}"`);
    }
  }, PROGRESS_POLL_MS);

  const memoryTimer = setInterval(() => {
    const resident = groupResidentBytes(child.pid!);
    if (resident > limits.groupMemoryMb * 1024 * 1024) {
      const where = outcome.started.at(-1);
      killFor(`it used ${Math.round(resident / 2 ** 20)} MB, over the memory limit of ${limits.groupMemoryMb} MB${where ? `, while running check "${where}"` : ""}`);
    }
  }, MEMORY_POLL_MS);

  const lines = createInterface({ input: child.stdio[3] as Readable });
  lines.on("line", (line) => {
    const message = verifyLine(key, line);
    if (!message) return; // not signed by our grading process: ignore, never trust
    outcome.done = message;
    clearTimeout(deadline);
  });

  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      // Whatever the unit started and left behind (it shares the unit's process group) ends with it.
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group is already empty
      }
      // A result is trusted only from a unit process that ended on its own or by our hand.
      if (signal && !outcome.killedFor) outcome.done = undefined;
      clearInterval(progressTimer);
      clearInterval(memoryTimer);
      rmSync(scratch, { recursive: true, force: true });
      clearTimeout(deadline);
      clearTimeout(unitDeadline);
      outcome.exitCode = code;
      outcome.signal = signal;
      outcome.stderr = [stderr(), stdout()].filter(Boolean).join("\n");
      outcome.durationMs = Date.now() - started;
      resolve(outcome);
    });
  });
}

function toCheckResult(raw: RawCheck, index: number): CheckResult | undefined {
  const meta = raw.meta;
  if (!meta) return undefined; // not a rubric check (a helper test): not graded
  const status = raw.state === "passed" ? "pass" : raw.state === "failed" ? "fail" : "error";
  return {
    name: raw.title,
    status,
    message: status === "pass" ? undefined : raw.errors.join("\n") || "The check did not run.",
    output: raw.output || undefined,
    ...(raw.note && { note: raw.note }),
    task_id: index + 1,
    tier: meta.tier as CheckResult["tier"],
    weight: Number(meta.weight),
    visibility: meta.visibility as CheckResult["visibility"],
    category: String(meta.category),
    hint: String(meta.hint),
    section: String(meta.section),
    duration_ms: Math.round(raw.durationMs),
  };
}

function notRunCheck(title: string, index: number, options: GradeUnitOptions, message: string): CheckResult {
  return {
    name: title,
    status: "error",
    message,
    task_id: index + 1,
    tier: "core",
    weight: 1,
    visibility: "public",
    category: "core",
    hint: "See the message: the grader could not finish this check.",
    section: "objectives",
    duration_ms: 0,
  };
}

export async function gradeUnit(options: GradeUnitOptions): Promise<UnitResult> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const outcome = await runUnitProcess(options, limits);
  const tests = (outcome.done?.checks ?? []).map(toCheckResult).filter((t): t is CheckResult => t !== undefined);
  const base = { lesson: options.lesson, unit: options.unit, title: options.title ?? options.unit, duration_ms: outcome.durationMs };
  const typeErrors = options.typeErrors ? { type_errors: options.typeErrors.split("\n") } : {};

  let problem: string | undefined;
  if (outcome.tampering) {
    problem = `The submission tampered with the grading environment (it ${outcome.tampering}); its results do not count.`;
  } else if (outcome.killedFor) {
    problem = `Grading stopped: ${outcome.killedFor}. Checks after it were not run.`;
  } else if (!outcome.done) {
    const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
    problem = `The grading process ${how} before it reported results${outcome.stderr ? `:\n${outcome.stderr}` : "."}`;
  } else if (outcome.done.moduleErrors.length > 0) {
    problem = `The grader could not run normally: ${outcome.done.moduleErrors.join("\n")}`;
  } else if (tests.length === 0) {
    problem = "No checks ran.";
  } else if (tests.every((t) => t.status !== "pass" && t.message?.startsWith(LOAD_FAILURE))) {
    // The module never loaded: say so once, for the unit, instead of once per check.
    problem = tests[0]!.message!.slice(LOAD_FAILURE.length);
  }

  if (problem) {
    // Killed before results arrived: name every check that started, and fail them all.
    const loadFailed = outcome.done !== undefined && tests.length > 0 && tests.every((t) => t.message?.startsWith(LOAD_FAILURE));
    const kept = outcome.done
      ? loadFailed
        ? tests.map((t) => ({ ...t, status: "error" as const, message: "Not run: your module did not load (the reason is given once, for the unit)." }))
        : tests
      : outcome.started.map((title, index) => notRunCheck(title, index, options, title === outcome.started.at(-1) ? problem! : "Its result was lost: grading stopped at a later check."));
    return { ...base, ...typeErrors, status: "error", message: problem, tier: "needs-improvement", score: weightedScore(kept, "needs-improvement"), tests: kept };
  }
  // Code that passes its checks but does not type-check is capped at adequate (README, "Type errors").
  const tier = options.typeErrors ? capTier(unitTier(tests, true), "adequate") : unitTier(tests, true);
  const status = tests.every((t) => t.status === "pass") && !options.typeErrors ? "pass" : "fail";
  const message = options.typeErrors ? { message: `Your code does not type-check:\n${options.typeErrors}` } : {};
  return { ...base, ...typeErrors, ...message, status, tier, score: weightedScore(tests, tier), tests };
}

export interface GradeLessonOptions {
  lesson: string;
  /** A subset of units; all of the lesson's units when absent. */
  units?: string[];
  /** Where each unit's implementation lives. */
  implementationDir: (unit: string) => string;
  target: LessonReport["target"];
  hidden: boolean;
  seed: number;
  concurrency?: number;
  limits?: Partial<GradeLimits>;
  /** Learner code, and whether the OS sandbox is required (see GradeUnitOptions.sandbox). */
  sandbox?: boolean | SandboxPolicy;
  manifest?: Manifest;
  onUnitDone?: (result: UnitResult) => void;
}

export async function gradeLesson(options: GradeLessonOptions): Promise<LessonReport> {
  const manifest = options.manifest ?? loadManifest();
  const lesson = findLesson(manifest, options.lesson);
  const units = (options.units ?? lesson.units.map((u) => u.id)).map((id) => findUnit(lesson, id));
  const limit = pLimit(Math.max(1, options.concurrency ?? 2));
  // Refuse before anything runs when a required sandbox is missing.
  resolveSandbox(options.sandbox === "require" ? "require" : "auto");
  // Learner code is type-checked first (one compiler run for every unit).
  const typeErrors = options.sandbox
    ? typecheckUnits(new Map(units.map((u) => [u.id, { dir: options.implementationDir(u.id), shownAs: join("exercises", lesson.id, u.id) }])))
    : new Map<string, string>();
  // Longest first (by how long each unit took last time here), so the slowest unit never starts last;
  // results keep the manifest's order.
  const durations = readDurations();
  const byCost = [...units].sort((a, b) => (durations[`${lesson.id}/${b.id}`] ?? 0) - (durations[`${lesson.id}/${a.id}`] ?? 0));
  const graded = new Map<string, Promise<UnitResult>>();
  for (const unit of byCost) {
    graded.set(
      unit.id,
      limit(async () => {
        const result = await gradeUnit({
          lesson: lesson.id,
          unit: unit.id,
          title: unit.title,
          implementationDir: options.implementationDir(unit.id),
          hidden: options.hidden,
          seed: options.seed,
          limits: options.limits,
          sandbox: options.sandbox,
          typeErrors: typeErrors.get(unit.id),
        });
        if (options.target.kind === "submission") {
          const findings = worthALook(options.implementationDir(unit.id), join("exercises", lesson.id, unit.id));
          if (findings.length > 0) result.worth_a_look = findings;
        }
        options.onUnitDone?.(result);
        return result;
      }),
    );
  }
  const results = await Promise.all(units.map((unit) => graded.get(unit.id)!));
  writeDurations(Object.fromEntries(results.map((r) => [`${lesson.id}/${r.unit}`, r.duration_ms])));
  const tests = results.flatMap((u) => u.tests.map((t) => ({ ...t, name: `${u.unit} › ${t.name}` })));
  tests.forEach((t, i) => (t.task_id = i + 1));
  const status = results.some((u) => u.status === "error") ? "error" : results.every((u) => u.status === "pass") ? "pass" : "fail";
  return {
    version: 3,
    status,
    lesson: lesson.id,
    tier: lessonTier(results),
    score: scoreWithinTier(results.reduce((s, u) => s + u.score, 0) / Math.max(1, results.length), lessonTier(results)),
    tests,
    units: results,
    target: options.target,
    hidden_checks: options.hidden,
    seed: options.seed,
    kit_version: KIT_VERSION,
    node_version: process.version,
    generated_at: new Date().toISOString(),
  };
}

const DURATIONS_FILE = join(KIT_ROOT, "node_modules", ".cache", "checkpoint-kit", "unit-durations.json");

/** How long each unit took the last time it was graded on this machine (for scheduling only). */
function readDurations(): Record<string, number> {
  try {
    const parsed = z.record(z.string(), z.number()).safeParse(JSON.parse(readFileSync(DURATIONS_FILE, "utf8")));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

function writeDurations(latest: Record<string, number>): void {
  try {
    mkdirSync(dirname(DURATIONS_FILE), { recursive: true });
    writeFileSync(DURATIONS_FILE, JSON.stringify({ ...readDurations(), ...latest }));
  } catch {
    // a read-only install: scheduling falls back to the manifest's order
  }
}

export const KIT_VERSION: string = (
  JSON.parse(await import("node:fs").then((fs) => fs.readFileSync(`${KIT_ROOT}/package.json`, "utf8"))) as { version: string }
).version;

export function newSeed(): number {
  return randomBytes(4).readUInt32BE(0) >>> 1;
}

/**
 * Stops every unit being graded, at once (the CLI calls it on Ctrl-C). Each unit
 * process leads its own process group (spawned detached), so killing the groups
 * of this process's children takes everything they started with them.
 */
export function abortAll(signal: NodeJS.Signals = "SIGKILL"): number {
  let killed = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return 0; // no /proc: nothing to find
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== process.pid) continue;
      process.kill(Number(fields[2]) === Number(pid) ? -Number(pid) : Number(pid), signal);
      killed++;
    } catch {
      // the process ended while we looked
    }
  }
  return killed;
}
