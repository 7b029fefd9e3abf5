/**
 * npm run bench: performance figures, reported as ratios against a baseline
 * measured in the same run on the same machine. A benchmark, not a test: it
 * prints figures and goals and never fails on them.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { findLesson, loadManifest } from "../manifest.ts";
import { exitWithError, HelpRequested, parseCommandArgs, UsageError } from "../cli/options.ts";

export interface Figure {
  name: string;
  value: number;
  unit: string;
  goal?: string;
  /** Whether the goal is met, for figures that can tell: printed as a pass/fail mark beside the goal. */
  pass?: boolean;
}

/** Wall time of a command that must exit 0 and print `mustPrint` (so a run that did nothing cannot pass for a fast one). */
function timeCommand(args: string[], mustPrint: RegExp): number {
  const started = process.hrtime.bigint();
  // The command is started by node, not npm: without npm_lifecycle_event the grade CLI does not take
  // `npm run bench`'s own npm variables for its options (nor refuse --json for npm's banner).
  const { npm_lifecycle_event: _, ...env } = process.env;
  const result = spawnSync(process.execPath, args, { cwd: KIT_ROOT, env: { ...env, NO_COLOR: "1" }, stdio: "pipe" });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const output = `${result.stdout.toString()}${result.stderr.toString()}`;
  if (result.status !== 0 || !mustPrint.test(output)) {
    throw new Error(`${args.join(" ")} did not run as expected (exit ${result.status}):\n${output.slice(0, 2000)}`);
  }
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Grading figures (issue "grading fast enough"): the whole lesson with the
 * references, and each unit alone (what watch mode re-grades after a save),
 * as ratios to a bare Vitest run of one trivial test in the same run.
 */
function gradingFigures(rounds: number): Figure[] {
  const vitestBin = join(KIT_ROOT, "node_modules", "vitest", "vitest.mjs");
  const baseline = median(
    Array.from({ length: rounds }, () =>
      timeCommand([vitestBin, "run", "--config", join(KIT_ROOT, "kit", "bench", "baseline.vitest.config.ts")], /1 passed/),
    ),
  );
  const grade = (...targets: string[]) => ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", ...targets, "--solutions", "--json"];
  const lesson = median(Array.from({ length: rounds }, () => timeCommand(grade(), /"tier": "excellent"/)));
  const units = findLesson(loadManifest(), "lesson-11").units.map((u) => u.id);
  const perUnit = units.map((unit) => ({ unit, ms: median(Array.from({ length: rounds }, () => timeCommand(grade(unit), /"tier": "excellent"/))) }));
  const slowest = perUnit.reduce((a, b) => (b.ms > a.ms ? b : a));
  return [
    { name: "bare vitest run of one trivial test", value: baseline / 1000, unit: "s" },
    { name: "npm run grade lesson-11 -- --solutions", value: lesson / 1000, unit: "s" },
    ...perUnit.map(({ unit, ms }) => ({ name: `  ${unit} alone`, value: ms / 1000, unit: "s" })),
    { name: "whole lesson / bare vitest", value: lesson / baseline, unit: "x", goal: "<= 15x", pass: lesson / baseline <= 15 },
    { name: `slowest unit alone (${slowest.unit}) / bare vitest`, value: slowest.ms / baseline, unit: "x", goal: "<= 6x", pass: slowest.ms / baseline <= 6 },
  ];
}

/** Optional figure sets contributed by units and the site, when their modules exist. */
async function optionalFigures(file: string, exportName: string): Promise<Figure[]> {
  const path = join(KIT_ROOT, file);
  if (!existsSync(path)) return [];
  const module = (await import(pathToFileURL(path).href)) as Record<string, () => Promise<Figure[]>>;
  return module[exportName]!();
}

const USAGE = `Usage: npm run bench [-- --only WORD]
       npm run bench -- --load N [--rounds R] [--lesson L]

  --only WORD     only the sections whose title contains WORD (grading, locking, site, sqlite)
  --load N        instead of the figures: grade the lesson's references N at a time, and count the units
                  that stay excellent under that load
  --rounds R      rounds of --load (default 1)
  --lesson L      the lesson --load grades (default lesson-11)
  BENCH_ROUNDS=R  measurements per figure, the median printed (default 3)`;

function parseBenchArgs(argv: string[]) {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: { only: { type: "string" }, load: { type: "string" }, rounds: { type: "string" }, lesson: { type: "string" }, help: { type: "boolean", short: "h", default: false } },
    },
    USAGE,
  );
  if (values.help) throw new HelpRequested(USAGE);
  const whole = (flag: string, text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a whole number of 1 or more; got ${JSON.stringify(text)}.\n\n${USAGE}`);
    return n;
  };
  return {
    only: values.only?.toLowerCase(),
    load: values.load === undefined ? undefined : whole("--load", values.load),
    rounds: values.rounds === undefined ? 1 : whole("--rounds", values.rounds),
    lesson: values.lesson ?? "lesson-11",
  };
}

/** `--load N [--rounds R] [--lesson L]`: reference gradings under load instead of the figures. */
async function loadMode(options: { load: number; rounds: number; lesson: string }): Promise<void> {
  const { runLoad } = await import("./load.ts");
  process.stdout.write(`${options.lesson} references, ${options.load} gradings at once, ${options.rounds} round(s)\n`);
  const outcome = await runLoad({ lesson: options.lesson, concurrent: options.load, rounds: options.rounds, log: (line) => process.stdout.write(`${line}\n`) });
  for (const miss of outcome.misses) process.stdout.write(`  ✗ ${miss}\n`);
  const ok = outcome.excellent === outcome.units;
  process.stdout.write(`units excellent under load: ${outcome.excellent}/${outcome.units}   (goal: all)   ${ok ? "✓ pass" : "✗ fail"}\n`);
}

async function main(): Promise<void> {
  const options = parseBenchArgs(process.argv.slice(2));
  if (options.load !== undefined) return loadMode({ ...options, load: options.load });
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const sections: Array<[string, () => Promise<Figure[]> | Figure[]]> = [
    [`grading (median of ${rounds})`, () => gradingFigures(rounds)],
    ["locking: 20 concurrent writers", () => optionalFigures("kit/bench/locking.ts", "benchLocking")],
    ["site", () => optionalFigures("site/bench.ts", "benchSite")],
    [`SQLite saver, runtime vs LangGraph's official (median of ${rounds})`, () => optionalFigures("kit/bench/sqlite.ts", "benchSqlite")],
  ];
  const { only } = options;
  for (const [title, measure] of sections) {
    if (only !== undefined && !title.toLowerCase().includes(only)) continue;
    const figures = await measure();
    if (figures.length === 0) continue;
    process.stdout.write(`\n${title}\n`);
    const width = Math.max(...figures.map((f) => f.name.length));
    for (const f of figures) {
      const value = f.value >= 100 ? f.value.toFixed(0) : f.value.toFixed(2);
      const mark = f.pass === undefined ? "" : f.pass ? "   ✓ pass" : "   ✗ fail";
      process.stdout.write(`  ${f.name.padEnd(width)}  ${value.padStart(9)} ${f.unit}${f.goal ? `   (goal ${f.goal})` : ""}${mark}\n`);
    }
  }
}

try {
  await main();
} catch (error) {
  // A usage error or --help ends the way every command's does; a failing measurement keeps its stack and exit 1.
  if (error instanceof HelpRequested || error instanceof UsageError) exitWithError(error);
  throw error;
}
