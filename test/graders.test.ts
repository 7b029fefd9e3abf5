/**
 * The graders are graded (Rustlings' "dev check"): for every unit, the reference
 * grades excellent, the starter needs improvement, and every calibration answer
 * exactly its expected tier. Units that use Redis are also graded against a real
 * server when REDIS_URL is set; with CI=true that server is mandatory.
 */
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { gradeUnit, newSeed } from "../kit/grading/engine.ts";
import type { UnitResult, UnitTier } from "../kit/grading/report.ts";
import { loadCalibration, loadManifest, unitPaths } from "../kit/manifest.ts";

const SEED = Number(process.env.CHECKPOINT_KIT_SEED ?? newSeed());
const manifest = loadManifest();

interface Case {
  name: string;
  lesson: string;
  unit: string;
  dir: string;
  expected: UnitTier;
  backend: "default" | "redis-server";
}

function backendsOf(services: string[]): Array<Case["backend"]> {
  if (!services.includes("redis")) return ["default"];
  if (process.env.REDIS_URL) return ["default", "redis-server"];
  if (process.env.CI === "true") throw new Error("CI=true but REDIS_URL is unset: .ci/run must start redis-server");
  return ["default"];
}

const cases: Case[] = manifest.lessons.flatMap((lesson) =>
  lesson.units.flatMap((unit) => {
    const paths = unitPaths(lesson.id, unit.id);
    const answers: Array<Omit<Case, "backend">> = [
      { name: "reference", lesson: lesson.id, unit: unit.id, dir: paths.reference, expected: "excellent" },
      { name: "starter", lesson: lesson.id, unit: unit.id, dir: paths.starter, expected: "needs-improvement" },
      ...Object.entries(loadCalibration(lesson.id, unit.id)).map(([name, c]) => ({
        name: `calibration ${name}`,
        lesson: lesson.id,
        unit: unit.id,
        dir: join(paths.calibration, name),
        expected: c.tier,
      })),
    ];
    return backendsOf(unit.services).flatMap((backend) => answers.map((a) => ({ ...a, backend })));
  }),
);

function explain(result: UnitResult): string {
  const failing = result.tests.filter((t) => t.status !== "pass").map((t) => `  ✗ [${t.tier}] ${t.name}: ${t.message?.split("\n")[0]}`);
  return [`tier ${result.tier} (score ${result.score}), seed ${SEED}`, result.message ?? "", ...failing].filter(Boolean).join("\n");
}

// A loop, not describe.each: Vitest quotes each.$field values in names ('lesson-11'/'serde'), and the names
// must stay plain for `-t "lesson-11/serde "`.
for (const { lesson, unit, name, dir, expected, backend } of cases) describe.concurrent(`${lesson}/${unit} ${name} (${backend})`, () => {
  test(`grades ${expected}`, async () => {
    const result = await gradeUnit({
      lesson,
      unit,
      implementationDir: dir,
      hidden: true,
      seed: SEED,
      env: { REDIS_URL: backend === "redis-server" ? process.env.REDIS_URL : undefined },
    });
    expect(result.tier, explain(result)).toBe(expected);
    if (expected === "needs-improvement" && dir.includes("calibration")) {
      // A planted mistake must cost a core check, not merely fail to load.
      expect(result.status, `the answer should load and run: ${explain(result)}`).not.toBe("error");
    }
  }, 300_000);
});
