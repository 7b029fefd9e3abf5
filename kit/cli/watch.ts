/**
 * --watch: re-grades on save, Rustlings-style. Shows a progress line and the
 * current unit's failing checks; `h` shows the next hint, `r` re-runs, `q` or
 * Ctrl-C quits. Uses file-system events, and polling where those are not
 * available (network and container file systems) or when CHECKPOINT_KIT_POLL=1.
 */
import { watch as chokidarWatch } from "chokidar";
import { findLesson, loadManifest } from "../manifest.ts";
import { exercisesTarget } from "../grading/targets.ts";
import { TIER_LABEL, type LessonReport } from "../grading/report.ts";
import { formatUnit, useColor } from "../report/pretty.ts";
import { gradeOnce, EXIT_OK } from "./grade.ts";
import type { GradeOptions } from "./options.ts";

const DEBOUNCE_MS = 300;

export function progressLine(report: LessonReport): string {
  const done = report.units.filter((u) => u.tier === "excellent").length;
  const width = 20;
  const filled = Math.round((width * done) / report.units.length);
  return `Progress: [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${report.units.length} units excellent · ${report.units
    .map((u) => `${u.unit}: ${TIER_LABEL[u.tier]}`)
    .join(" · ")}`;
}

export async function watch(options: GradeOptions): Promise<number> {
  const lesson = findLesson(loadManifest(), options.lesson);
  const unitIds = options.units.length > 0 ? options.units : lesson.units.map((u) => u.id);
  const target = exercisesTarget();
  const dirs = unitIds.map((u) => target.implementationDir(lesson.id, u));
  const out = (text: string) => process.stdout.write(text);
  const color = useColor();
  let hintQueue: string[] = [];
  let running = false;
  let again = false;

  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    do {
      again = false;
      if (process.stdout.isTTY) out("\x1Bc");
      out(`Grading ${unitIds.join(", ")} …\n`);
      const report = await gradeOnce({ ...options, json: true }, () => {});
      const current = report.units.find((u) => u.tier !== "excellent");
      out(`${progressLine(report)}\n\n`);
      if (current) {
        out(`${formatUnit(current, color)}\n\n`);
        hintQueue = current.tests.filter((t) => t.status !== "pass" && t.visibility === "public").map((t) => `hint for “${t.name}”: ${t.hint}`);
      } else {
        out("Every unit is excellent. Compare with the reference, then read the interview questions.\n\n");
        hintQueue = [];
      }
      out("Watching for changes · h: next hint · r: re-run · q: quit\n");
    } while (again);
    running = false;
  };

  const usePolling = process.env.CHECKPOINT_KIT_POLL === "1";
  const watcher = chokidarWatch(dirs, { ignoreInitial: true, usePolling, interval: 500 });
  let timer: NodeJS.Timeout | undefined;
  watcher.on("all", () => {
    clearTimeout(timer);
    timer = setTimeout(() => void run(), DEBOUNCE_MS);
  });
  watcher.on("error", (error) => out(`file watching failed (${(error as Error).message}); set CHECKPOINT_KIT_POLL=1 to poll, or press r to re-run by hand\n`));

  return new Promise<number>((resolve) => {
    const quit = async () => {
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      await watcher.close();
      out("\nBye.\n");
      resolve(EXIT_OK);
    };
    process.on("SIGINT", () => void quit());
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (key: string) => {
      if (key === "q" || key === "\u0003") void quit();
      else if (key === "r") void run();
      else if (key === "h") out(`${hintQueue.shift() ?? "No more hints for this run: fix a check and save."}\n`);
    });
    void run();
  });
}
