/**
 * The candidate bundle: what it holds and leaves out, and that it grades where
 * a candidate unpacks it. With CI=true (or CHECKPOINT_KIT_FULL=1) the bundle is
 * installed with a real `npm ci` (about two minutes: better-sqlite3 compiles);
 * otherwise the kit's own node_modules is linked in, after checking that the
 * bundle's lock file is the kit's, so `npm ci` would install the same tree.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tar from "tar";
import { afterAll, beforeAll, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { parseReport } from "../kit/grading/report.ts";
import { loadManifest } from "../kit/manifest.ts";
import { packLesson } from "../kit/cli/pack.ts";

const fullInstall = process.env.CI === "true" || process.env.CHECKPOINT_KIT_FULL === "1";
const lesson = loadManifest().lessons.find((l) => l.id === "lesson-11")!;
const work = mkdtempSync(join(tmpdir(), "ck-pack-test-"));
let bundle: { file: string; entries: string[] };
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  bundle = await packLesson("lesson-11", join(work, "bundle.tgz"));
});

test("the bundle holds what a candidate needs", () => {
  const files = bundle.entries.map((e) => e.replace(/^checkpoint-kit-lesson-11\//, ""));
  for (const unit of lesson.units) {
    expect(files).toContain(`exercises/lesson-11/${unit.id}/index.ts`);
    expect(files).toContain(`lessons/lesson-11/${unit.id}.md`);
    expect(files).toContain(`graders/lesson-11/${unit.id}.grader.ts`);
  }
  for (const file of ["README.md", "package.json", "package-lock.json", "tsconfig.json", "runtime/index.ts", "kit/cli/grade.ts", "graders/harness/check.ts"]) {
    expect(files).toContain(file);
  }
});

test("the bundle holds no solutions, answers, calibration answers or hidden checks", () => {
  const leaks = bundle.entries.filter((e) => /(^|\/)(solutions|calibration)\/|answers\.md$|\/hidden(\.ts$|\/)|\.test\.ts$/.test(e));
  expect(leaks).toEqual([]);
  const readme = readFileSync(join(KIT_ROOT, "kit", "pack", "candidate-readme.md"), "utf8");
  expect(readme).toContain("Returning your work");
});

test(
  `unpacked and installed (${fullInstall ? "npm ci" : "kit's node_modules linked"}), it grades needs improvement on public checks only`,
  async () => {
    await tar.x({ file: bundle.file, cwd: work });
    const root = join(work, "checkpoint-kit-lesson-11");
    expect(readFileSync(join(root, "package-lock.json"), "utf8")).toBe(readFileSync(join(KIT_ROOT, "package-lock.json"), "utf8"));
    if (fullInstall) {
      execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline"], {
        cwd: root,
        env: { ...process.env, PUPPETEER_SKIP_DOWNLOAD: "1" },
        stdio: "pipe",
      });
    } else {
      symlinkSync(join(KIT_ROOT, "node_modules"), join(root, "node_modules"), "dir");
    }
    expect(existsSync(join(root, "solutions"))).toBe(false);
    const run = spawnSync("npm", ["run", "--silent", "grade", "lesson-11", "--", "--json"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" },
      timeout: 600_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const report = parseReport(run.stdout);
    expect(report.units.map((u) => u.unit)).toEqual(lesson.units.map((u) => u.id));
    for (const unit of report.units) expect(unit.tier, `${unit.unit}: ${unit.message ?? ""}`).toBe("needs-improvement");
    expect(report.hidden_checks).toBe(false);
    expect(report.tests.every((t) => t.visibility === "public")).toBe(true);
    expect(report.tests.length).toBeGreaterThan(lesson.units.length * 3);
  },
  900_000,
);
