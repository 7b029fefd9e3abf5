/**
 * npm run bench -- --load N [--rounds R]: grades the reference solutions of a
 * lesson N times at once, R rounds in a row, as `--submissions` or a shared CI
 * runner does, and reports how many units stayed excellent. A correct answer
 * must never be graded down because the machine is busy: the goal is all of them.
 */
import { loadManifest, unitPaths } from "../manifest.ts";
import { gradeLesson, newSeed } from "../grading/engine.ts";
import type { LessonReport } from "../grading/report.ts";

export interface LoadOutcome {
  gradings: number;
  units: number;
  excellent: number;
  misses: string[];
}

export async function runLoad(options: { lesson: string; concurrent: number; rounds: number; log?: (line: string) => void }): Promise<LoadOutcome> {
  const lesson = loadManifest().lessons.find((l) => l.id === options.lesson);
  if (!lesson) throw new Error(`Unknown lesson "${options.lesson}".`);
  const outcome: LoadOutcome = { gradings: 0, units: 0, excellent: 0, misses: [] };
  for (let round = 1; round <= options.rounds; round++) {
    const started = Date.now();
    const reports: LessonReport[] = await Promise.all(
      Array.from({ length: options.concurrent }, () =>
        gradeLesson({
          lesson: lesson.id,
          implementationDir: (unit) => unitPaths(lesson.id, unit).reference,
          target: { kind: "solutions", path: "solutions" },
          hidden: true,
          seed: newSeed(),
          concurrency: 2,
        }),
      ),
    );
    let excellentThisRound = 0;
    for (const report of reports) {
      outcome.gradings++;
      for (const unit of report.units) {
        outcome.units++;
        if (unit.tier === "excellent") {
          outcome.excellent++;
          excellentThisRound++;
        } else {
          const failing = unit.tests.find((t) => t.status !== "pass");
          const first = unit.message ?? failing?.message ?? "";
          const where = failing && !unit.message ? ` (“${failing.name}”)` : "";
          outcome.misses.push(`round ${round}, seed ${report.seed}: ${unit.unit} graded ${unit.tier}${where}: ${first.split("\n")[0]}`);
        }
      }
    }
    const total = reports.reduce((n, r) => n + r.units.length, 0);
    options.log?.(`  round ${round}: ${excellentThisRound}/${total} units excellent (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  return outcome;
}
