/**
 * --watch: Rustlings-style. Works on one unit at a time, the first that is not
 * yet excellent by the last grading, and re-grades only the unit whose files
 * were saved. Shows a progress line (each unit's last tier) and the current
 * unit's first failing check with its hint; `h` reveals the next hint, `r`
 * re-runs, `n` moves on once the unit is adequate, `q` or Ctrl-C quits. The
 * reference's path is shown only once a unit is excellent. Uses file-system
 * events, and polling where those are not available or when CHECKPOINT_KIT_POLL=1.
 */
import { sep } from "node:path";
import { watch as chokidarWatch } from "chokidar";
import { findLesson, loadManifest } from "../manifest.ts";
import { abortAll } from "../grading/engine.ts";
import { exercisesTarget } from "../grading/targets.ts";
import { TIER_LABEL, tierRank, type UnitResult, type UnitTier } from "../grading/report.ts";
import { firstFailing, formatUnit, referencePath, sectionLink, useColor } from "../report/pretty.ts";
import { gradeOnce, EXIT_OK } from "./grade.ts";
import type { GradeOptions } from "./options.ts";
import { readState } from "./state.ts";

const DEBOUNCE_MS = 300;

/** One line: how many units are excellent, and each unit's last tier ("-" when never graded). */
export function progressLine(lessonId: string, unitIds: string[], tiers: Record<string, UnitTier | undefined>): string {
  const done = unitIds.filter((u) => tiers[u] === "excellent").length;
  const width = 20;
  const filled = Math.round((width * done) / unitIds.length);
  return `Progress: [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${unitIds.length} units excellent · ${unitIds
    .map((u) => `${u}: ${tiers[u] ? TIER_LABEL[tiers[u]!] : "not graded"}`)
    .join(" · ")}`;
}

function lastTiers(lessonId: string, unitIds: string[]): Record<string, UnitTier | undefined> {
  const state = readState();
  return Object.fromEntries(unitIds.map((u) => [u, state.units[`${lessonId}/${u}`]?.tier]));
}

/** The hints of the unit's failing public checks, after the first (the report already shows that one). */
export function laterHints(unit: UnitResult): string[] {
  const first = firstFailing(unit);
  return unit.tests
    .filter((t) => t.status !== "pass" && t.visibility === "public" && t !== first)
    .map((t) => `hint for “${t.name}”: ${t.hint}\n  read: ${sectionLink(unit, t.section)}`);
}

export async function watch(options: GradeOptions): Promise<number> {
  const lesson = findLesson(loadManifest(), options.lesson);
  const unitIds = options.units.length > 0 ? options.units : lesson.units.map((u) => u.id);
  const target = exercisesTarget();
  const dirOf = new Map(unitIds.map((u) => [u, target.implementationDir(lesson.id, u)]));
  const out = (text: string) => process.stdout.write(text);
  const color = useColor();
  const initial = lastTiers(lesson.id, unitIds);
  let current = unitIds.find((u) => initial[u] !== "excellent") ?? unitIds[0]!;
  let lastResult: UnitResult | undefined;
  let hintQueue: string[] = [];
  let running = false;
  let again = false;

  const nextUnit = (from: string) => {
    const tiers = lastTiers(lesson.id, unitIds);
    const after = unitIds.slice(unitIds.indexOf(from) + 1);
    return after.find((u) => tiers[u] !== "excellent") ?? unitIds.find((u) => u !== from && tiers[u] !== "excellent");
  };

  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    do {
      again = false;
      if (process.stdout.isTTY) out("\x1Bc");
      out(`Grading ${current} …\n`);
      const report = await gradeOnce({ ...options, units: [current], json: true }, () => {});
      const unit = report.units[0]!;
      lastResult = unit;
      out(`${progressLine(lesson.id, unitIds, lastTiers(lesson.id, unitIds))}\n\n`);
      out(`${formatUnit(unit, { color, verbose: options.verbose })}\n\n`);
      hintQueue = laterHints(unit);
      const following = nextUnit(current);
      if (unit.tier === "excellent") {
        const reference = referencePath(unit);
        out(`${current} is excellent.${reference ? ` The reference is in ${reference}.` : ""}\n`);
        if (following) {
          out(`Next: ${following} (exercises/${lesson.id}/${following}/index.ts); save it to grade it, or press n.\n`);
          current = following;
        } else {
          out("Every unit is excellent. Read the lessons' interview questions next.\n");
        }
      } else if (tierRank(unit.tier) >= tierRank("adequate") && following) {
        out(`${current} is adequate: keep going for excellent, or press n to move on to ${following}.\n`);
      }
      out("\nWatching for changes · h: next hint · r: re-run · n: next unit · q: quit\n");
    } while (again);
    running = false;
  };

  const usePolling = process.env.CHECKPOINT_KIT_POLL === "1";
  const watcher = chokidarWatch([...dirOf.values()], { ignoreInitial: true, usePolling, interval: 500 });
  let timer: NodeJS.Timeout | undefined;
  watcher.on("all", (_event, path) => {
    // Grade the unit that was edited, and make it the current one.
    const edited = [...dirOf].find(([, dir]) => path === dir || path.startsWith(`${dir}${sep}`))?.[0];
    if (edited) current = edited;
    clearTimeout(timer);
    timer = setTimeout(() => void run(), DEBOUNCE_MS);
  });
  watcher.on("error", (error) => out(`file watching failed (${(error as Error).message}); set CHECKPOINT_KIT_POLL=1 to poll, or press r to re-run by hand\n`));

  return new Promise<number>((resolve) => {
    let quitting = false;
    const quit = async () => {
      if (quitting) return;
      quitting = true;
      abortAll(); // a grading in progress stops with the session
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      await watcher.close();
      out("\nBye.\n");
      resolve(EXIT_OK);
    };
    process.on("SIGINT", () => void quit());
    process.on("SIGTERM", () => void quit());
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (key: string) => {
      if (key === "q" || key === "\u0003") void quit();
      else if (key === "r") void run();
      else if (key === "h") {
        const hint = hintQueue.shift();
        out(`${hint ?? (lastResult && firstFailing(lastResult) ? "No more hints for this run: fix the first check and save." : "No failing public check: nothing to hint.")}\n`);
      } else if (key === "n") {
        const following = nextUnit(current);
        if (!lastResult || tierRank(lastResult.tier) < tierRank("adequate")) out(`${current} is not adequate yet: its core checks come first.\n`);
        else if (!following) out("There is no other unit left to do.\n");
        else {
          current = following;
          void run();
        }
      }
    });
    process.stdin.on("end", () => {
      // No terminal (CI, a pipe that closed): keep watching; q is unavailable, Ctrl-C still quits.
    });
    void run();
  });
}
