// npm run grade as a user meets it: exit codes, readable and JSON reports, JUnit, clear errors.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { parseReport } from "../kit/grading/report.ts";

function grade(...args: string[]) {
  const result = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", ...args], {
    cwd: KIT_ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: undefined },
    timeout: 240_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("usage errors exit 2 and say what exists", () => {
  test.concurrent("an unknown lesson lists the lessons", () => {
    const { code, stderr } = grade("lesson-99");
    expect(code).toBe(2);
    expect(stderr).toContain('Unknown lesson "lesson-99"');
    expect(stderr).toContain("lesson-11");
  });
  test.concurrent("an unknown unit lists the units", () => {
    const { code, stderr } = grade("lesson-11", "sered");
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown unit "sered".*serde, scan-indexing, partial-recovery, locking, hitl/);
  });
  test.concurrent("a bad option value names the option", () => {
    const { code, stderr } = grade("lesson-11", "--min-tier", "great");
    expect(code).toBe(2);
    expect(stderr).toMatch(/minTier|min-tier/);
    expect(stderr).toContain("needs-improvement");
  });
  test.concurrent("two targets at once are refused", () => {
    const { code, stderr } = grade("lesson-11", "--solutions", "--submission", "x");
    expect(code).toBe(2);
    expect(stderr).toContain("choose one of --solutions, --submission and --submissions");
  });
});

test("--solutions --json: a report the kit's schema accepts, recording seed and versions", () => {
  const { code, stdout, stderr } = grade("lesson-11", "serde", "--solutions", "--json", "--seed", "42");
  expect(code, stderr).toBe(0);
  const report = parseReport(stdout);
  expect(report.tier).toBe("excellent");
  expect(report.units.map((u) => u.unit)).toEqual(["serde"]);
  expect(report.seed).toBe(42);
  expect(report.node_version).toBe(process.version);
  expect(report.kit_version).toMatch(/^\d+\.\d+\.\d+/);
  expect(report.status).toBe("pass");
}, 240_000);

test("the starter: plain readable output with hints, --min-tier and JUnit", () => {
  const junit = join(mkdtempSync(join(tmpdir(), "ck-junit-")), "report.xml");
  const { code, stdout } = grade("lesson-11", "serde", "--min-tier", "adequate", "--junit", junit);
  expect(code).toBe(1);
  expect(stdout).not.toMatch(/\u001b\[/); // piped + NO_COLOR: no escape codes
  expect(stdout).toContain("needs improvement");
  expect(stdout).toContain("hint:");
  expect(stdout).toMatch(/read: lessons\/lesson-11\/serde\.md#[a-z0-9-]+/);
  expect(stdout).toMatch(/next: “.+” — /);
  const xml = readFileSync(junit, "utf8");
  expect(xml).toContain('<testsuite name="lesson-11/serde"');
  expect(xml).toContain("<failure");
}, 240_000);
