/**
 * npm run pack <lesson> [-- --out FILE]: writes the candidate bundle, a .tgz with
 * the pristine starters (git HEAD, never the working tree's edits), lessons,
 * diagrams, the runtime and the grading engine with public checks only. No
 * solutions, answers, calibration answers or hidden checks; a package.json and
 * lock file with only what grading needs.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import * as tar from "tar";
import { glob } from "tinyglobby";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { findLesson, loadManifest, UnknownTargetError, type Lesson } from "../manifest.ts";
import { subsetLockfile } from "../pack/lockfile.ts";
import { changedFiles, pristineFiles, PristineError } from "./pristine.ts";
import { BUNDLE_MARKER, HelpRequested, parseCommandArgs, UsageError, userPath, exitWithError } from "./options.ts";

/**
 * What grading needs at run time (the grader harnesses, the engine, the runtime)
 * and to type-check a submission. The kit's other dependencies (site, diagrams,
 * browser tests, the LangGraph demo, mutation testing) stay out of the bundle.
 */
export const CANDIDATE_DEPENDENCIES = [
  // scan-indexing runs LangGraph's own conformance tests on the learner's saver (kit/langgraph/conformance.ts).
  "@langchain/core",
  "@langchain/langgraph-checkpoint",
  "@langchain/langgraph-checkpoint-validation",
  "@types/better-sqlite3",
  "@types/node",
  "better-sqlite3",
  "chokidar",
  // The grader compiles the learner's code with it (kit/sandbox/compile.ts).
  "esbuild",
  "eventsource-parser",
  "fast-check",
  "ioredis",
  "ioredis-mock",
  "junit-report-builder",
  "p-limit",
  "picocolors",
  "redis-parser",
  "tar",
  "tinyglobby",
  "tsx",
  "typescript",
  "ulid",
  "uuid",
  "vitest",
  "zod",
] as const;

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
      "kit/sandbox/**",
      "kit/report/**",
      "kit/types/**",
      "kit/pack/zip.ts",
      "kit/langgraph/bridge.ts",
      "kit/langgraph/conformance.ts",
      "kit/cli/*.ts",
      "tsconfig.json",
    ],
    exclude: [
      "kit/cli/pack.ts",
      `exercises/${lessonId}/**`, // packed from git HEAD, not from the working tree
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

interface KitPackageJson {
  name: string;
  version: string;
  engines?: Record<string, string>;
  imports?: Record<string, string>;
  dependencies: Record<string, string>;
  allowScripts?: Record<string, boolean>;
}

/** The candidate's package.json: grading's dependencies only (at the kit's ranges), candidate scripts only. */
export function candidatePackage(lesson: Lesson): KitPackageJson & Record<string, unknown> {
  const kit = JSON.parse(readFileSync(join(KIT_ROOT, "package.json"), "utf8")) as KitPackageJson;
  const missing = CANDIDATE_DEPENDENCIES.filter((name) => !kit.dependencies[name]);
  if (missing.length > 0) throw new Error(`The kit's package.json lacks ${missing.join(", ")}, which the candidate bundle needs.`);
  const dependencies = Object.fromEntries(CANDIDATE_DEPENDENCIES.map((name) => [name, kit.dependencies[name]!]));
  const scripts = {
    grade: "tsx kit/cli/grade.ts",
    hint: "tsx kit/cli/hint.ts",
    list: "tsx kit/cli/list.ts",
    reset: "tsx kit/cli/reset.ts",
    submit: "tsx kit/cli/submit.ts",
    typecheck: "tsc --noEmit -p tsconfig.candidate.json",
    test: `tsx kit/cli/grade.ts ${lesson.id}`,
  };
  const allowScripts = Object.fromEntries(Object.entries(kit.allowScripts ?? {}).filter(([name, allowed]) => allowed && name !== "puppeteer"));
  return {
    name: `${kit.name}-${lesson.id}`,
    version: kit.version,
    private: true,
    description: `checkpoint-kit take-home: ${lesson.title}`,
    type: "module",
    ...(kit.engines ? { engines: kit.engines } : {}),
    ...(kit.imports ? { imports: kit.imports } : {}),
    scripts,
    dependencies,
    allowScripts,
  };
}

export function candidateLockfile(pkg: KitPackageJson): string {
  return subsetLockfile(readFileSync(join(KIT_ROOT, "package-lock.json"), "utf8"), pkg);
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

export interface PackResult {
  file: string;
  entries: string[];
  /** Working-tree changes to the lesson's exercises that were left out (the committed starters were packed). */
  notPacked: string[];
}

export async function packLesson(lessonId: string, outFile?: string): Promise<PackResult> {
  const lesson = findLesson(loadManifest(), lessonId);
  const { include, exclude } = bundlePatterns(lesson.id);
  const files = (await glob(include, { cwd: KIT_ROOT, ignore: exclude, dot: false })).sort();
  const folder = `checkpoint-kit-${lesson.id}`;
  const stage = mkdtempSync(join(tmpdir(), "ck-pack-"));
  const write = (file: string, contents: string | Buffer) => {
    mkdirSync(dirname(join(stage, folder, file)), { recursive: true });
    writeFileSync(join(stage, folder, file), contents);
  };
  try {
    for (const file of files) {
      mkdirSync(dirname(join(stage, folder, file)), { recursive: true });
      cpSync(join(KIT_ROOT, file), join(stage, folder, file));
    }
    // Starters as committed, twice: exercises/ to edit, kit/starters/ for `reset` (a bundle has no git).
    const notPacked: string[] = [];
    for (const unit of lesson.units) {
      const dir = `exercises/${lesson.id}/${unit.id}`;
      const starter = pristineFiles(dir);
      if (!starter.has("index.ts")) throw new PristineError(`${dir}/index.ts is not committed: commit the starter before packing, so the bundle ships what the repository holds.`);
      for (const [file, contents] of starter) {
        write(join(dir, file), contents);
        write(join("kit", "starters", lesson.id, unit.id, file), contents);
      }
      notPacked.push(...changedFiles(dir));
    }
    const pkg = candidatePackage(lesson);
    write("package.json", `${JSON.stringify(pkg, null, 2)}\n`);
    write("package-lock.json", candidateLockfile(pkg));
    write(BUNDLE_MARKER, `${JSON.stringify({ kind: "candidate", lesson: lesson.id, kit_version: pkg.version }, null, 2)}\n`);
    write("tsconfig.candidate.json", CANDIDATE_TSCONFIG);
    write("README.md", candidateReadme(lesson));
    write(".gitignore", "node_modules/\n.grading/\n.checkpoint-kit/\n");
    const file = resolve(outFile ?? join(KIT_ROOT, "dist", `${folder}-candidate.tgz`));
    mkdirSync(dirname(file), { recursive: true });
    await tar.c({ gzip: true, file, cwd: stage, portable: true }, [folder]);
    const entries: string[] = [];
    await tar.t({ file, onReadEntry: (entry) => void entries.push(entry.path) });
    return { file, entries, notPacked };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const USAGE = "Usage: npm run pack <lesson> [-- --out FILE]\n  writes the candidate bundle (.tgz): starters, lessons and public checks, no solutions\n  e.g. npm run pack lesson-11";

async function main(): Promise<void> {
  const { values, positionals } = parseCommandArgs({ allowPositionals: true, options: { out: { type: "string" }, help: { type: "boolean", short: "h", default: false } } }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  if (!positionals[0]) throw new UsageError(USAGE);
  const { file, entries, notPacked } = await packLesson(positionals[0], values.out ? userPath(values.out) : undefined);
  if (notPacked.length > 0) {
    process.stderr.write(
      `note: the bundle has the committed starters; your working-tree changes to these files were not packed:\n${notPacked.map((f) => `  ${f}`).join("\n")}\n`,
    );
  }
  process.stdout.write(`wrote ${file} (${entries.filter((e) => !e.endsWith("/")).length} files): exercises, lessons, runtime and public checks; no solutions, answers, calibration or hidden checks\n`);
}

if (process.argv[1]?.endsWith("kit/cli/pack.ts")) {
  main().catch((error: unknown) => exitWithError(error, [UnknownTargetError, PristineError]));
}
