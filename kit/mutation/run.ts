/**
 * npm run mutation [unit ...] [-- --concurrency N] [--mutate FILE[:LINES]] [--min-score S]
 *
 * Mutation testing of the graders: for each unit (default: every unit of the
 * manifest), Stryker mutates the unit's reference solution
 * (solutions/<lesson>/<unit>/**\/*.ts) and grades every mutant with the unit's
 * grader, hidden checks included. A mutant is killed when the grade drops below
 * excellent (a check fails) or grading errors. See stryker.config.mjs for the
 * Stryker side and kit/mutation/setup.ts for how the mutant reaches the learner
 * processes the reference runs in.
 *
 * Per unit it prints the mutation score, killed / survived / timed out / no
 * coverage, every survivor, every `// Stryker disable` exclusion in the
 * reference, and the wall time; Stryker's HTML and JSON reports go to
 * reports/mutation/<unit>/.
 *
 * Exit status: 0; 1 when --min-score is given and a unit scores below it; 2 when
 * Stryker could not run a unit (e.g. the reference does not grade excellent, so
 * Stryker's initial run fails) or on a usage error.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { findLesson, findUnit, loadManifest, UnknownTargetError, type Manifest } from "../manifest.ts";

const STRYKER = join(KIT_ROOT, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js");
const CONFIG = join(KIT_ROOT, "stryker.config.mjs");

interface Options {
  targets: Array<{ lesson: string; unit: string }>;
  concurrency?: number;
  mutate: string[];
  minScore?: number;
}

class UsageError extends Error {}

const USAGE = `usage: npm run mutation [unit ...] [-- --concurrency N] [--mutate FILE[:LINES]]... [--min-score S]
  unit            a unit id (serde) or lesson/unit (lesson-11/serde); default: every unit
  --concurrency   mutants graded at once (default: the number of cores)
  --mutate        mutate only this file of the unit, or these lines of it (index.ts:40-90); repeatable
  --min-score     exit 1 when a unit's mutation score is below S (0-100)`;

function parseArgs(argv: string[], manifest: Manifest): Options {
  const options: Options = { targets: [], mutate: [] };
  const value = (i: number, name: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new UsageError(`${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === "--concurrency") {
      options.concurrency = Number(value(i++, arg));
      if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new UsageError("--concurrency takes a whole number >= 1");
    } else if (arg === "--mutate") {
      options.mutate.push(value(i++, arg));
    } else if (arg === "--min-score") {
      options.minScore = Number(value(i++, arg));
      if (!(options.minScore >= 0 && options.minScore <= 100)) throw new UsageError("--min-score takes a number from 0 to 100");
    } else if (arg.startsWith("-")) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      const [lessonId, unitId] = arg.includes("/") ? arg.split("/", 2) : [undefined, arg];
      const lessons = lessonId ? [findLesson(manifest, lessonId)] : manifest.lessons.filter((l) => l.units.some((u) => u.id === unitId));
      if (lessons.length === 0) throw new UnknownTargetError(`Unknown unit "${arg}". Units: ${manifest.lessons.flatMap((l) => l.units.map((u) => u.id)).join(", ")}.`);
      if (lessons.length > 1) throw new UsageError(`"${arg}" is a unit of ${lessons.map((l) => l.id).join(" and ")}: write lesson/unit`);
      options.targets.push({ lesson: lessons[0]!.id, unit: findUnit(lessons[0]!, unitId!).id });
    }
  }
  if (options.targets.length === 0) options.targets = manifest.lessons.flatMap((l) => l.units.map((u) => ({ lesson: l.id, unit: u.id })));
  if (options.mutate.length > 0 && options.targets.length !== 1) throw new UsageError("--mutate needs exactly one unit");
  return options;
}

// ---- the JSON report (mutation-testing-report-schema) -------------------------

export type Status = "Killed" | "Survived" | "NoCoverage" | "Timeout" | "CompileError" | "RuntimeError" | "Ignored" | "Pending";
export interface Mutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number } };
  status: Status;
  statusReason?: string;
  coveredBy?: string[];
}
export interface Report {
  files: Record<string, { source: string; mutants: Mutant[] }>;
}

export interface UnitSummary {
  unit: string;
  /** Stryker's mutation score: (killed + timed out) / (killed + timed out + survived + no coverage), in percent. */
  score: number;
  counts: Record<"killed" | "survived" | "timeout" | "noCoverage" | "errors" | "ignored", number>;
  undetected: Array<{ where: string; mutator: string; replacement: string; status: Status }>;
  ignored: Array<{ where: string; mutator: string; reason: string }>;
}

export function summarize(unit: string, report: Report): UnitSummary {
  const counts = { killed: 0, survived: 0, timeout: 0, noCoverage: 0, errors: 0, ignored: 0 };
  const undetected: UnitSummary["undetected"] = [];
  const ignored: UnitSummary["ignored"] = [];
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      const where = `${file}:${m.location.start.line}:${m.location.start.column}`;
      const replacement = (m.replacement ?? "").replace(/\s+/g, " ").slice(0, 80);
      if (m.status === "Killed") counts.killed++;
      else if (m.status === "Timeout") counts.timeout++;
      else if (m.status === "Survived" || m.status === "NoCoverage") {
        counts[m.status === "Survived" ? "survived" : "noCoverage"]++;
        undetected.push({ where, mutator: m.mutatorName, replacement, status: m.status });
      } else if (m.status === "Ignored") {
        counts.ignored++;
        ignored.push({ where, mutator: m.mutatorName, reason: m.statusReason ?? "" });
      } else counts.errors++;
    }
  }
  const detected = counts.killed + counts.timeout;
  const valid = detected + counts.survived + counts.noCoverage;
  return { unit, score: valid === 0 ? 100 : Math.floor((detected / valid) * 10_000) / 100, counts, undetected, ignored };
}

/** Every `// Stryker disable ...` / `restore` comment in the unit's reference, with where it is. */
export function exclusionComments(dir: string, shownFrom: string = KIT_ROOT): string[] {
  const found: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) {
        readFileSync(path, "utf8")
          .split("\n")
          .forEach((line, i) => {
            const comment = /\/\/\s*(Stryker\s+(?:disable|restore)\b.*)$/.exec(line);
            if (comment) found.push(`${relative(shownFrom, path)}:${i + 1}: ${comment[1]!.trim()}`);
          });
      }
    }
  };
  walk(dir);
  return found;
}

// ---- running Stryker ----------------------------------------------------------

function runStryker(lesson: string, unit: string, options: Options): Promise<number> {
  const args = [STRYKER, "run", CONFIG];
  if (options.concurrency) args.push("--concurrency", String(options.concurrency));
  if (options.mutate.length > 0) args.push("--mutate", options.mutate.map((m) => (m.startsWith("solutions/") ? m : `solutions/${lesson}/${unit}/${m}`)).join(","));
  const child = spawn(process.execPath, args, {
    cwd: KIT_ROOT,
    stdio: "inherit",
    env: { ...process.env, CHECKPOINT_KIT_MUTATION_LESSON: lesson, CHECKPOINT_KIT_MUTATION_UNIT: unit },
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.once("SIGINT", forward("SIGINT"));
  process.once("SIGTERM", forward("SIGTERM"));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 130 : 2))));
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function print(summary: UnitSummary, lesson: string, wallMs: number): void {
  const c = summary.counts;
  const lines = [
    "",
    `${lesson}/${summary.unit}: mutation score ${summary.score.toFixed(2)}%  (killed ${c.killed}, survived ${c.survived}, timed out ${c.timeout}, no coverage ${c.noCoverage}${c.errors ? `, errors ${c.errors}` : ""}, excluded ${c.ignored})  in ${formatDuration(wallMs)}`,
    `  reports: reports/mutation/${summary.unit}/index.html, reports/mutation/${summary.unit}/mutation.json`,
  ];
  if (summary.undetected.length > 0) {
    lines.push("  not detected:");
    for (const u of summary.undetected) lines.push(`    ${u.status === "NoCoverage" ? "no coverage" : "survived"}  ${u.where}  ${u.mutator}: ${u.replacement}`);
  }
  const comments = exclusionComments(join(KIT_ROOT, "solutions", lesson, summary.unit));
  lines.push(comments.length > 0 || summary.ignored.length > 0 ? "  exclusions (Stryker disable comments):" : "  exclusions: none");
  for (const comment of comments) lines.push(`    ${comment}`);
  for (const i of summary.ignored) lines.push(`    excluded  ${i.where}  ${i.mutator}${i.reason ? `: ${i.reason}` : ""}`);
  console.log(lines.join("\n"));
}

async function main(): Promise<number> {
  const manifest = loadManifest();
  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2), manifest);
  } catch (error) {
    if (error instanceof UsageError || error instanceof UnknownTargetError) {
      console.error(`${error.message}\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const results: Array<{ lesson: string; unit: string; wallMs: number; summary?: UnitSummary; code: number }> = [];
  for (const { lesson, unit } of options.targets) {
    console.log(`\n== mutation testing ${lesson}/${unit}: mutating solutions/${lesson}/${unit}, graded by graders/${lesson}/${unit}.grader.ts (hidden checks included)`);
    const reportFile = join(KIT_ROOT, "reports", "mutation", unit, "mutation.json");
    rmSync(reportFile, { force: true });
    const started = Date.now();
    const code = await runStryker(lesson, unit, options);
    const wallMs = Date.now() - started;
    if (code !== 0 || !existsSync(reportFile)) {
      console.log(`\n${lesson}/${unit}: Stryker did not finish (exit ${code}) after ${formatDuration(wallMs)}. If its initial run failed, the reference does not grade excellent right now: npx vitest run test/graders.test.ts -t "${unit} reference"`);
      results.push({ lesson, unit, wallMs, code });
      continue;
    }
    const summary = summarize(unit, JSON.parse(readFileSync(reportFile, "utf8")) as Report);
    print(summary, lesson, wallMs);
    results.push({ lesson, unit, wallMs, summary, code });
  }
  if (results.length > 1) {
    console.log("\nunit                     score    killed survived timeout no-cov  wall time");
    for (const r of results) {
      const c = r.summary?.counts;
      const name = `${r.lesson}/${r.unit}`.padEnd(24);
      console.log(
        c ? `${name} ${`${r.summary!.score.toFixed(2)}%`.padStart(7)} ${String(c.killed).padStart(8)} ${String(c.survived).padStart(8)} ${String(c.timeout).padStart(7)} ${String(c.noCoverage).padStart(6)}  ${formatDuration(r.wallMs)}` : `${name} did not run (exit ${r.code})  ${formatDuration(r.wallMs)}`,
      );
    }
  }
  if (results.some((r) => !r.summary)) return 2;
  if (options.minScore !== undefined && results.some((r) => r.summary!.score < options.minScore!)) {
    console.log(`\nbelow --min-score ${options.minScore}: ${results.filter((r) => r.summary!.score < options.minScore!).map((r) => r.unit).join(", ")}`);
    return 1;
  }
  return 0;
}

if (process.argv[1]?.endsWith("kit/mutation/run.ts")) process.exitCode = await main();
