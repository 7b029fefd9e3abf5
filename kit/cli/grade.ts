/**
 * npm run grade <lesson> [unit ...] -- [options]
 * Exit status: 0; 1 when --min-tier is not met; 2 when the kit itself failed
 * (including a usage error: nothing was graded).
 */
import { availableParallelism } from "node:os";
import { findLesson, findUnit, loadManifest, UnknownTargetError } from "../manifest.ts";
import { gradeLesson, newSeed } from "../grading/engine.ts";
import { tierRank, type LessonReport } from "../grading/report.ts";
import { exercisesTarget, solutionsTarget, submissionTarget, SubmissionError, type GradingTarget } from "../grading/targets.ts";
import { formatSummary, formatUnit, useColor } from "../report/pretty.ts";
import { writeJunit } from "../report/junit.ts";
import { parseGradeArgs, UsageError, type GradeOptions } from "./options.ts";

export const EXIT_OK = 0;
export const EXIT_BELOW_MIN_TIER = 1;
export const EXIT_KIT_FAILED = 2;

async function chooseTarget(options: GradeOptions): Promise<GradingTarget> {
  if (options.solutions) return solutionsTarget();
  if (options.submission) return submissionTarget(options.submission);
  return exercisesTarget();
}

export async function gradeOnce(options: GradeOptions, log: (line: string) => void): Promise<LessonReport> {
  const manifest = loadManifest();
  const lesson = findLesson(manifest, options.lesson);
  options.units.forEach((u) => findUnit(lesson, u));
  const target = await chooseTarget(options);
  const color = useColor();
  try {
    return await gradeLesson({
      lesson: lesson.id,
      units: options.units.length > 0 ? options.units : undefined,
      implementationDir: (unit) => target.implementationDir(lesson.id, unit),
      target: { kind: target.kind, path: target.path },
      hidden: options.hidden || target.kind === "submission",
      seed: options.seed ?? newSeed(),
      concurrency: options.concurrency ?? availableParallelism(),
      limits: options.timeLimit ? { unitMs: options.timeLimit * 1000 } : undefined,
      sandbox: target.kind === "exercises" || target.kind === "submission",
      manifest,
      onUnitDone: options.json ? undefined : (unit) => log(`${formatUnit(unit, color)}\n`),
    });
  } finally {
    target.dispose();
  }
}

export function meetsMinTier(report: LessonReport, options: GradeOptions): boolean {
  return !options.minTier || report.units.every((u) => tierRank(u.tier) >= tierRank(options.minTier!));
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
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else log(formatSummary(report, useColor()));
  if (options.junit) writeJunit(report, options.junit);
  return meetsMinTier(report, options) ? EXIT_OK : EXIT_BELOW_MIN_TIER;
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("kit/cli/grade.ts");
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      const expected = error instanceof UsageError || error instanceof UnknownTargetError || error instanceof SubmissionError;
      process.stderr.write(`${expected ? (error as Error).message : `checkpoint-kit failed: ${(error as Error)?.stack ?? error}`}\n`);
      process.exit(EXIT_KIT_FAILED);
    },
  );
}
