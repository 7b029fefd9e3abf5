/**
 * Grading survives bad and hostile submissions: each case grades needs
 * improvement for its unit, with a reason, inside the limit; it changes no file
 * of the kit, no process it starts outlives grading, and a unit graded beside
 * it grades normally. Hostile code is only ever run in the OS sandbox: without
 * bubblewrap these tests skip (with CI=true they are mandatory).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { gradeLesson, gradeUnit } from "../../kit/grading/engine.ts";
import type { UnitResult } from "../../kit/grading/report.ts";
import { detectSandbox } from "../../kit/sandbox/learner.ts";
import { loadManifest, unitPaths } from "../../kit/manifest.ts";
import { ESCAPE_CASES, HOSTILE_CASES, MARKER, writeHostileSubmission } from "./fixtures.ts";

const sandboxed = detectSandbox().mode === "bwrap";
if (process.env.CI === "true" && !sandboxed) throw new Error("CI=true but bubblewrap is not usable: .ci/run must install it");
const suite = sandboxed ? describe : describe.skip;

const ALL_UNITS = loadManifest().lessons.find((l) => l.id === "lesson-11")!.units.map((u) => u.id);
const TWO_UNITS = ["serde", "scan-indexing"];
const LIMITS = { graceMs: 2_000, startupMs: 60_000, groupMemoryMb: 1_024, unitMs: 180_000 };
const created: string[] = [];
afterAll(() => created.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function exportNames(unit: string): Promise<string[]> {
  return Object.keys(await import(join(unitPaths("lesson-11", unit).reference, "index.ts")));
}

const gitStatus = () => execFileSync("git", ["status", "--porcelain", "--untracked-files=all", "--", "graders", "solutions", "kit", "runtime", "lessons", "exercises", "package.json"], { cwd: KIT_ROOT, encoding: "utf8" });
const statusBefore = gitStatus();

/** Processes still running whose command line carries the fixtures' marker. */
function survivors(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmdline.includes(MARKER)) found.push(`${pid}: ${cmdline.slice(0, 80)}`);
    } catch {
      // ended while we looked
    }
  }
  return found;
}

function everything(result: UnitResult): string {
  return [result.message ?? "", ...result.tests.map((t) => t.message ?? "")].join("\n");
}

async function gradeHostile(unit: string, hostile: (typeof HOSTILE_CASES)[number]): Promise<UnitResult> {
  const dir = writeHostileSubmission(unit, await exportNames(unit), hostile);
  created.push(dir);
  return gradeUnit({ lesson: "lesson-11", unit, implementationDir: dir, hidden: true, seed: 1, sandbox: "require", limits: LIMITS });
}

const matrix = [
  ...ESCAPE_CASES.flatMap((hostile) => ALL_UNITS.map((unit) => ({ unit, hostile }))),
  ...HOSTILE_CASES.flatMap((hostile) => TWO_UNITS.map((unit) => ({ unit, hostile }))),
];

suite("hostile submissions", () => {
  describe.concurrent.each(matrix.map((c) => ({ ...c, title: c.hostile.name })))("$unit: $title", ({ unit, hostile }) => {
    test("grades needs improvement with a reason, changes nothing and leaves nothing running", async () => {
      const started = Date.now();
      const result = await gradeHostile(unit, hostile);
      expect(result.tier, everything(result)).toBe("needs-improvement");
      expect(everything(result)).toMatch(hostile.reason);
      expect(Date.now() - started).toBeLessThan(LIMITS.unitMs);
    }, 240_000);
  });

  test("afterwards: no file of the kit changed and no process a submission started is still running", () => {
    expect(gitStatus(), "a submission changed the kit's files").toBe(statusBefore);
    expect(survivors(), "processes started by submissions outlived grading").toEqual([]);
  });

  test("one hostile unit that kills what it can does not stop the unit beside it from grading normally", async () => {
    const killer = ESCAPE_CASES.find((c) => c.name.startsWith("killing every process"))!;
    const dir = writeHostileSubmission("serde", await exportNames("serde"), killer);
    created.push(dir);
    const report = await gradeLesson({
      lesson: "lesson-11",
      units: ["serde", "scan-indexing"],
      implementationDir: (unit) => (unit === "serde" ? dir : unitPaths("lesson-11", unit).reference),
      target: { kind: "directory", path: "mixed" },
      hidden: true,
      seed: 1,
      concurrency: 2,
      limits: LIMITS,
    });
    expect(report.units.find((u) => u.unit === "serde")!.tier).toBe("needs-improvement");
    expect(report.units.find((u) => u.unit === "scan-indexing")!.tier).toBe("excellent");
  }, 180_000);
});

test("a unit whose checks pass but whose code does not type-check is capped at adequate, with the compiler's message", async () => {
  const staging = join(KIT_ROOT, "node_modules", ".cache", "hostile");
  const { cpSync, mkdirSync, mkdtempSync, appendFileSync } = await import("node:fs");
  mkdirSync(staging, { recursive: true });
  const root = mkdtempSync(join(staging, "typeerror-"));
  created.push(root);
  const dir = join(root, "serde");
  cpSync(unitPaths("lesson-11", "serde").reference, dir, { recursive: true });
  appendFileSync(join(dir, "index.ts"), '\nexport const stray: number = "not a number";\n');
  const report = await gradeLesson({ lesson: "lesson-11", units: ["serde"], implementationDir: () => dir, target: { kind: "directory", path: root }, hidden: false, seed: 1, sandbox: true, limits: LIMITS });
  const unit = report.units[0]!;
  expect(unit.tier).toBe("adequate");
  expect((unit.type_errors ?? []).join("\n")).toMatch(/exercises\/lesson-11\/serde\/index\.ts:\d+:\d+ - error TS2322/);
  expect(JSON.stringify(unit)).not.toContain(root);
}, 240_000);
