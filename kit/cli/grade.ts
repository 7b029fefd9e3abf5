/**
 * npm run grade <lesson> [unit ...] -- [options]
 * Exit status: 0; 1 when --min-tier is not met; 2 when the kit itself failed
 * (including a usage error: nothing was graded). --help exits 0; Ctrl-C stops
 * every unit process at once and exits 130.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import { findLesson, findUnit, loadManifest, UnknownTargetError } from "../manifest.ts";
import { abortAll, gradeLesson, newSeed, SandboxUnavailableError } from "../grading/engine.ts";
import { tierRank, type LessonReport } from "../grading/report.ts";
import { typescript } from "../grading/typescript.ts";
import { exercisesTarget, solutionsTarget, submissionTarget, SubmissionError, type GradingTarget } from "../grading/targets.ts";
import { cleanMessage, finishReport, finishUnit, unitNumber, type Replay } from "../report/finish.ts";
import { formatSummary, formatUnit, useColor } from "../report/pretty.ts";
import { writeJunit } from "../report/junit.ts";
import { HelpRequested, parseGradeArgs, UsageError, type GradeOptions } from "./options.ts";
import { PristineError } from "./pristine.ts";
import { recordReport } from "./state.ts";

export const EXIT_OK = 0;
export const EXIT_BELOW_MIN_TIER = 1;
export const EXIT_KIT_FAILED = 2;
export const EXIT_INTERRUPTED = 130;

async function chooseTarget(options: GradeOptions): Promise<GradingTarget> {
  if (options.solutions) return solutionsTarget();
  if (options.submission) return submissionTarget(options.submission);
  return exercisesTarget();
}

/** The options that select what was graded, for the replay command printed under a failure. */
export function targetArgs(options: Pick<GradeOptions, "solutions" | "submission" | "hidden">): string[] {
  if (options.solutions) return ["--solutions"];
  if (options.submission) return ["--submission", options.submission];
  return options.hidden ? ["--hidden"] : [];
}

export async function gradeOnce(options: GradeOptions, log: (line: string) => void): Promise<LessonReport> {
  const manifest = loadManifest();
  const lesson = findLesson(manifest, options.lesson);
  options.units.forEach((u) => findUnit(lesson, u));
  const target = await chooseTarget(options);
  const color = useColor();
  const seed = options.seed ?? newSeed();
  const replay: Replay = { lesson: lesson.id, seed, targetArgs: targetArgs(options) };
  // The report quotes each check's code, which takes the TypeScript parser (half a second to load):
  // it loads while the first units run, once they have been started.
  const warm = setTimeout(typescript, 300);
  try {
    const report = await gradeLesson({
      lesson: lesson.id,
      units: options.units.length > 0 ? options.units : undefined,
      implementationDir: (unit) => target.implementationDir(lesson.id, unit),
      target: { kind: target.kind, path: target.path },
      hidden: options.hidden || target.kind === "submission",
      seed,
      concurrency: options.concurrency ?? availableParallelism(),
      limits: options.timeLimit ? { unitMs: options.timeLimit * 1000 } : undefined,
      // A stranger's submission needs the OS sandbox unless the interviewer says otherwise.
      sandbox: target.kind === "submission" ? (options.allowUnsandboxed ? true : "require") : target.kind === "exercises",
      manifest,
      onUnitDone: options.json ? undefined : (unit) => log(`${formatUnit(finishUnit(unit, unitNumber(unit), replay), { color, verbose: options.verbose })}\n`),
    });
    const finished = finishReport(report, replay);
    if (target.kind === "exercises") recordReport(finished);
    return finished;
  } finally {
    clearTimeout(warm);
    target.dispose();
  }
}

export function meetsMinTier(report: LessonReport, options: Pick<GradeOptions, "minTier">): boolean {
  return !options.minTier || report.units.every((u) => tierRank(u.tier) >= tierRank(options.minTier!));
}

/** Reports go to files the kit writes itself: never through stdout, where npm prints its banner. */
export function writeReportFile(report: LessonReport, file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}

async function main(argv: string[]): Promise<number> {
  const options = parseGradeArgs(argv);
  if (options.watch) {
    const { watch } = await import("./watch.ts");
    return watch(options);
  }
  if (options.submissions) {
    const { gradeBatch } = await import("./batch.ts");
    return gradeBatch(options);
  }
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const report = await gradeOnce(options, log);
  // A large report outgrows a pipe's buffer: wait until it is written before the process exits.
  if (options.json) await new Promise<void>((resolve, reject) => process.stdout.write(`${JSON.stringify(report, null, 2)}\n`, (error) => (error ? reject(error) : resolve())));
  else log(formatSummary(report, useColor()));
  for (const file of options.reports) {
    writeReportFile(report, file);
    process.stderr.write(`wrote the JSON report to ${file}\n`);
  }
  if (options.junit) await writeJunit(report, options.junit);
  return meetsMinTier(report, options) ? EXIT_OK : EXIT_BELOW_MIN_TIER;
}

/** Errors that are sentences for the user, not bugs of the kit: no stack trace. */
export function isUserError(error: unknown): boolean {
  return (
    error instanceof UsageError ||
    error instanceof UnknownTargetError ||
    error instanceof SubmissionError ||
    error instanceof PristineError ||
    error instanceof SandboxUnavailableError
  );
}

/** Ctrl-C: every unit's process group goes at once, not one by one as their time limits run out. */
export function stopOnInterrupt(): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const killed = abortAll();
    process.stderr.write(`\ninterrupted: stopped ${killed} grading process${killed === 1 ? "" : "es"}; nothing was graded to the end.\n`);
    process.exit(signal === "SIGINT" ? EXIT_INTERRUPTED : 143);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("kit/cli/grade.ts");
if (isMain) {
  const argv = process.argv.slice(2);
  if (!argv.includes("--watch")) stopOnInterrupt(); // watch mode quits on Ctrl-C itself
  main(argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof HelpRequested) {
        process.stdout.write(`${error.message}\n`);
        process.exit(EXIT_OK);
      }
      const text = isUserError(error) ? cleanMessage((error as Error).message) : `checkpoint-kit failed: ${(error as Error)?.stack ?? error}`;
      process.stderr.write(`${text}\n`);
      process.exit(EXIT_KIT_FAILED);
    },
  );
}
