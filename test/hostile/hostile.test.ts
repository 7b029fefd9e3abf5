/**
 * Grading survives bad and hostile submissions: each case grades needs
 * improvement for its unit, with a reason, inside the limit, and never touches
 * the kit's files; the other units grade normally.
 */
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync, mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { gradeLesson, gradeUnit } from "../../kit/grading/engine.ts";
import type { UnitResult } from "../../kit/grading/report.ts";
import { unitPaths } from "../../kit/manifest.ts";
import { HOSTILE_CASES, writeHostileSubmission } from "./fixtures.ts";

const UNITS = ["serde", "scan-indexing"] as const;
const LIMITS = { graceMs: 2_000, startupMs: 30_000, groupMemoryMb: 1_024, unitMs: 90_000 };
const created: string[] = [];
afterAll(() => created.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function exportNames(unit: string): Promise<string[]> {
  return Object.keys(await import(join(unitPaths("lesson-11", unit).reference, "index.ts")));
}

const guardedFiles = ["graders/lesson-11/serde.grader.ts", "graders/lesson-11/scan-indexing.grader.ts", "kit/grading/report.ts"].map((f) => join(KIT_ROOT, f));
const fingerprint = () => guardedFiles.map((f) => createHash("sha256").update(readFileSync(f)).digest("hex"));
const before = fingerprint();

function everything(result: UnitResult): string {
  return [result.message ?? "", ...result.tests.map((t) => t.message ?? "")].join("\n");
}

describe.concurrent.each(UNITS.flatMap((unit) => HOSTILE_CASES.map((hostile) => ({ unit, hostile, title: hostile.name }))))(
  "$unit: $title",
  ({ unit, hostile }) => {
    test("grades needs improvement with a reason, inside the limit", async () => {
      const dir = writeHostileSubmission(unit, await exportNames(unit), hostile);
      created.push(dir);
      const started = Date.now();
      const result = await gradeUnit({ lesson: "lesson-11", unit, implementationDir: dir, hidden: true, seed: 1, sandbox: true, limits: LIMITS });
      expect(result.tier, everything(result)).toBe("needs-improvement");
      expect(everything(result)).toMatch(hostile.reason);
      expect(Date.now() - started).toBeLessThan(LIMITS.unitMs);
      expect(fingerprint(), "a submission changed the kit's files").toEqual(before);
    }, 120_000);
  },
);

test("a type error grades needs improvement with the compiler's message, paths relative to the submission", async () => {
  const root = mkdtempSync(join(tmpdir(), "ck-typeerror-"));
  created.push(root);
  const dir = join(root, "serde");
  mkdirSync(dir);
  writeFileSync(join(dir, "index.ts"), 'export const dumpsTyped = (value: unknown): number => "not a number";\n');
  const report = await gradeLesson({
    lesson: "lesson-11",
    units: ["serde"],
    implementationDir: () => dir,
    target: { kind: "directory", path: root },
    hidden: false,
    seed: 1,
    sandbox: true,
    limits: LIMITS,
  });
  const unit = report.units[0]!;
  expect(unit.tier).toBe("needs-improvement");
  expect(unit.message).toMatch(/does not type-check:\nexercises\/lesson-11\/serde\/index\.ts:1:\d+ - error TS2322/);
  expect(unit.message).not.toContain(root);
}, 120_000);

test("one hostile unit does not stop the others from grading normally", async () => {
  const loop = HOSTILE_CASES.find((c) => c.name.startsWith("synchronous infinite loop inside"))!;
  const dir = writeHostileSubmission("serde", await exportNames("serde"), loop);
  created.push(dir);
  const report = await gradeLesson({
    lesson: "lesson-11",
    units: ["serde", "scan-indexing"],
    implementationDir: (unit) => (unit === "serde" ? dir : unitPaths("lesson-11", unit).reference),
    target: { kind: "directory", path: "mixed" },
    hidden: true,
    seed: 1,
    sandbox: true,
    limits: LIMITS,
  });
  expect(report.units.find((u) => u.unit === "serde")!.tier).toBe("needs-improvement");
  expect(report.units.find((u) => u.unit === "scan-indexing")!.tier).toBe("excellent");
}, 180_000);
