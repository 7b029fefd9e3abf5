/**
 * npm run pack <lesson> [-- --out FILE]: writes the candidate bundle, a .tgz with
 * exercises, lessons, diagrams, the runtime and the grading engine with public
 * checks only. No solutions, answers, calibration answers or hidden checks.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as tar from "tar";
import { glob } from "tinyglobby";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { findLesson, loadManifest, UnknownTargetError, type Lesson } from "../manifest.ts";

/** What goes into a bundle, relative to the kit root. Everything else stays out. */
export function bundlePatterns(lessonId: string): { include: string[]; exclude: string[] } {
  return {
    include: [
      `exercises/${lessonId}/**`,
      `lessons/${lessonId}/**`,
      "lessons/manifest.json",
      `diagrams/${lessonId}/*.svg`,
      "runtime/**",
      "graders/harness/**",
      "graders/vitest.config.ts",
      `graders/${lessonId}/*.grader.ts`,
      `graders/${lessonId}/*/**`,
      "kit/manifest.ts",
      "kit/hints.ts",
      "kit/grading/**",
      "kit/report/**",
      "kit/types/**",
      "kit/cli/grade.ts",
      "kit/cli/options.ts",
      "kit/cli/batch.ts",
      "kit/cli/watch.ts",
      "kit/cli/hint.ts",
      "tsconfig.json",
      "package-lock.json",
    ],
    exclude: [
      "**/node_modules/**",
      "**/*.test.ts",
      `graders/${lessonId}/*/hidden.ts`,
      `graders/${lessonId}/*/hidden/**`,
      `graders/${lessonId}/*/calibration/**`,
      "**/*.sqlite*",
      "**/*.db",
    ],
  };
}

/** The candidate's package.json: the kit's dependencies (so the lock file still matches), candidate scripts only. */
function candidatePackageJson(lesson: Lesson): string {
  const kit = JSON.parse(readFileSync(join(KIT_ROOT, "package.json"), "utf8")) as Record<string, unknown>;
  const scripts = {
    grade: "tsx kit/cli/grade.ts",
    hint: "tsx kit/cli/hint.ts",
    typecheck: "tsc --noEmit -p tsconfig.candidate.json",
    test: `tsx kit/cli/grade.ts ${lesson.id}`,
  };
  return `${JSON.stringify({ ...kit, description: `checkpoint-kit take-home: ${lesson.title}`, scripts }, null, 2)}\n`;
}

const CANDIDATE_TSCONFIG = `${JSON.stringify({ extends: "./tsconfig.json", include: ["exercises", "runtime"] }, null, 2)}\n`;

function candidateReadme(lesson: Lesson): string {
  const template = readFileSync(join(KIT_ROOT, "kit", "pack", "candidate-readme.md"), "utf8");
  const units = lesson.units.map((u) => `- **${u.id}**: ${u.title}. ${u.summary}`).join("\n");
  return template
    .replaceAll("{{LESSON}}", lesson.id)
    .replaceAll("{{LESSON_TITLE}}", lesson.title)
    .replaceAll("{{UNIT_COUNT}}", String(lesson.units.length))
    .replaceAll("{{UNIT_LIST}}", units);
}

export async function packLesson(lessonId: string, outFile?: string): Promise<{ file: string; entries: string[] }> {
  const lesson = findLesson(loadManifest(), lessonId);
  const { include, exclude } = bundlePatterns(lesson.id);
  const files = (await glob(include, { cwd: KIT_ROOT, ignore: exclude, dot: false })).sort();
  const folder = `checkpoint-kit-${lesson.id}`;
  const stage = mkdtempSync(join(tmpdir(), "ck-pack-"));
  try {
    for (const file of files) {
      mkdirSync(dirname(join(stage, folder, file)), { recursive: true });
      cpSync(join(KIT_ROOT, file), join(stage, folder, file));
    }
    writeFileSync(join(stage, folder, "package.json"), candidatePackageJson(lesson));
    writeFileSync(join(stage, folder, "tsconfig.candidate.json"), CANDIDATE_TSCONFIG);
    writeFileSync(join(stage, folder, "README.md"), candidateReadme(lesson));
    writeFileSync(join(stage, folder, ".gitignore"), "node_modules/\n.grading/\n.kit-state/\n");
    const file = resolve(outFile ?? join(KIT_ROOT, "dist", `${folder}-candidate.tgz`));
    mkdirSync(dirname(file), { recursive: true });
    await tar.c({ gzip: true, file, cwd: stage, portable: true }, [folder]);
    const entries: string[] = [];
    await tar.t({ file, onReadEntry: (entry) => void entries.push(entry.path) });
    return { file, entries };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: "string" } } });
  if (!positionals[0]) throw new UnknownTargetError("Usage: npm run pack <lesson> [-- --out FILE]\n  e.g. npm run pack lesson-11");
  const { file, entries } = await packLesson(positionals[0], values.out);
  process.stdout.write(`wrote ${file} (${entries.filter((e) => !e.endsWith("/")).length} files): exercises, lessons, runtime and public checks; no solutions, answers, calibration or hidden checks\n`);
}

if (process.argv[1]?.endsWith("kit/cli/pack.ts")) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof UnknownTargetError ? error.message : (error as Error).stack}\n`);
    process.exit(2);
  });
}
