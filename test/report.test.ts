// Tier rules, the score and the signed result channel, as the design defines them.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { expect, test } from "vitest";
import { signLine, verifyLine } from "../kit/grading/channel.ts";
import { lessonTier, unitTier, weightedScore, type CheckResult, type UnitResult } from "../kit/grading/report.ts";

const check = (tier: CheckResult["tier"], status: CheckResult["status"], weight = 1): CheckResult => ({
  name: `${tier} ${status}`,
  status,
  task_id: 1,
  tier,
  weight,
  visibility: "public",
  category: tier,
  hint: "h",
  section: "s",
  duration_ms: 0,
});

const arbitraryCheck = fc
  .record({ tier: fc.constantFrom("core" as const, "excellence" as const), status: fc.constantFrom("pass" as const, "fail" as const, "error" as const), weight: fc.integer({ min: 1, max: 5 }) })
  .map((c) => check(c.tier, c.status, c.weight));

test("a failing core check means needs improvement, whatever else passes", () => {
  fc.assert(
    fc.property(fc.array(arbitraryCheck, { minLength: 1 }), (checks) => {
      const coreFails = checks.some((c) => c.tier === "core" && c.status !== "pass");
      const allPass = checks.every((c) => c.status === "pass");
      const expected = coreFails ? "needs-improvement" : allPass ? "excellent" : "adequate";
      expect(unitTier(checks, true)).toBe(expected);
    }),
  );
});

test("a unit that did not grade normally, or ran no check, needs improvement", () => {
  expect(unitTier([check("core", "pass")], false)).toBe("needs-improvement");
  expect(unitTier([], true)).toBe("needs-improvement");
});

test("the score agrees with the tier: needs improvement 0-49, adequate 50-99, excellent 100", () => {
  expect(weightedScore([check("core", "pass", 3), check("excellence", "fail", 1)])).toBe(50);
  expect(weightedScore([check("core", "pass", 1), check("core", "fail", 1), check("excellence", "pass", 30)])).toBe(24);
  expect(weightedScore([check("core", "pass", 1), check("excellence", "pass", 3), check("excellence", "fail", 1)])).toBe(86);
  expect(weightedScore([check("core", "pass", 1), check("excellence", "pass", 1)], "adequate")).toBe(99);
  expect(weightedScore([])).toBe(0);
  const band = { "needs-improvement": [0, 49], adequate: [50, 99], excellent: [100, 100] } as const;
  fc.assert(
    fc.property(fc.array(arbitraryCheck, { minLength: 1 }), (checks) => {
      const score = weightedScore(checks);
      const [low, high] = band[unitTier(checks, true)];
      expect(score).toBeGreaterThanOrEqual(low);
      expect(score).toBeLessThanOrEqual(high);
    }),
  );
});

test("a lesson's tier is its lowest unit tier", () => {
  const unit = (tier: UnitResult["tier"]) => ({ tier }) as UnitResult;
  expect(lessonTier([unit("excellent"), unit("adequate"), unit("excellent")])).toBe("adequate");
  expect(lessonTier([unit("excellent"), unit("needs-improvement")])).toBe("needs-improvement");
  expect(lessonTier([unit("excellent")])).toBe("excellent");
});

test("only lines signed with the run's key are accepted as results", () => {
  const key = randomBytes(32);
  const message = { kind: "done" as const, checks: [], moduleErrors: [] };
  expect(verifyLine(key, signLine(key, message).trim())).toEqual(message);
  expect(verifyLine(randomBytes(32), signLine(key, message).trim())).toBeUndefined();
  const forged = JSON.stringify({ body: JSON.stringify(message), mac: "00".repeat(32) });
  expect(verifyLine(key, forged)).toBeUndefined();
  expect(verifyLine(key, "✓ all checks passed, tier: excellent")).toBeUndefined();
});

// --- What users get from a report: Exercism v3 fields, no ANSI, replay commands, the readable and JUnit forms.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { capTier, LessonReportSchema, type LessonReport } from "../kit/grading/report.ts";
import { capOutput, cleanMessage, finishReport, graderCheckSources, OUTPUT_CAP, reproduceCommand, stripAnsi } from "../kit/report/finish.ts";
import { writeJunit } from "../kit/report/junit.ts";
import { formatUnit, nextStep } from "../kit/report/pretty.ts";
import { unitPaths } from "../kit/manifest.ts";

const RED = "\u001b[31m";
const RESET = "\u001b[0m";
const serdeChecks = [...graderCheckSources(unitPaths("lesson-11", "serde").grader).keys()];

function unitResult(unit: string, tests: CheckResult[], extra: Partial<UnitResult> = {}): UnitResult {
  return { lesson: "lesson-11", unit, title: unit, status: "fail", tier: unitTier(tests, true), score: weightedScore(tests), tests, duration_ms: 5, ...extra };
}

function lessonReport(units: UnitResult[], status: LessonReport["status"] = "fail"): LessonReport {
  return {
    version: 3,
    status,
    lesson: "lesson-11",
    tier: lessonTier(units),
    score: 0,
    tests: units.flatMap((u) => u.tests),
    units,
    target: { kind: "exercises", path: "exercises/" },
    hidden_checks: false,
    seed: 7,
    kit_version: "0.1.0",
    node_version: process.version,
    generated_at: new Date().toISOString(),
  };
}

const named = (name: string, c: CheckResult, extra: Partial<CheckResult> = {}): CheckResult => ({ ...c, name, ...extra });

test("a type error caps a tier at adequate and never raises one", () => {
  expect(capTier("excellent", "adequate")).toBe("adequate");
  expect(capTier("adequate", "adequate")).toBe("adequate");
  expect(capTier("needs-improvement", "adequate")).toBe("needs-improvement");
});

test("finished reports follow Exercism v3: message on error, task_id = the unit's number, output capped, test_code for public checks", () => {
  const failing = named(serdeChecks[0]!, check("core", "fail"), {
    message: `${RED}expected 1${RESET}\n\nHint: Enable verbose mode in order to have the list of all failing values encountered during the run\n(reproduce with CHECKPOINT_KIT_SEED=7)`,
    output: `${RED}${"x".repeat(2000)}${RESET}`,
  });
  const hidden = named("a hidden check", check("core", "pass"), { visibility: "hidden" });
  const serde = unitResult("serde", [failing, hidden]);
  const locking = unitResult("locking", [named("x", check("core", "error"), { message: "killed" })], { status: "error", message: `${RED}Grading stopped${RESET}: the unit took too long` });
  const report = finishReport(lessonReport([serde, locking], "error"));
  expect(() => LessonReportSchema.parse(report)).not.toThrow();
  expect(report.message).toMatch(/^1 of 2 units could not be graded normally: locking: Grading stopped: the unit took too long/);
  expect(report.units[0]!.tests.map((t) => t.task_id)).toEqual([1, 1]);
  expect(report.units[1]!.tests[0]!.task_id).toBe(4); // locking is the lesson's fourth unit
  const shown = report.units[0]!.tests[0]!;
  expect(shown.output!.length).toBeLessThanOrEqual(OUTPUT_CAP);
  expect(shown.test_code).toMatch(/=>/);
  expect(report.units[0]!.tests[1]!.test_code).toBeUndefined();
  expect(shown.message).not.toContain("Enable verbose mode");
  expect(shown.message).toContain("(reproduce with: npm run grade lesson-11 serde -- --seed 7)");
  expect(JSON.stringify(report)).not.toMatch(/\\u001b|\u001b/);
  expect(report.tests.map((t) => t.name)).toEqual([`serde › ${serdeChecks[0]}`, "serde › a hidden check", "locking › x"]);
  expect(finishReport(report)).toEqual(report); // idempotent
});

test("replay commands name the target and the seed", () => {
  expect(reproduceCommand({ lesson: "lesson-11", seed: 9, targetArgs: [] }, "serde")).toBe("npm run grade lesson-11 serde -- --seed 9");
  expect(reproduceCommand({ lesson: "lesson-11", seed: 9, targetArgs: ["--submission", "/in/my bob.tgz"] }, "hitl")).toBe(
    "npm run grade lesson-11 hitl -- --submission '/in/my bob.tgz' --seed 9",
  );
  expect(cleanMessage("bad (seed 3; reproduce with CHECKPOINT_KIT_SEED=3)", { lesson: "lesson-11", seed: 3, targetArgs: ["--solutions"] }, "serde")).toBe(
    "bad (seed 3; reproduce with: npm run grade lesson-11 serde -- --solutions --seed 3)",
  );
  expect(stripAnsi(`${RED}a${RESET}\u001b]8;;https://x\u0007b\u001b]8;;\u0007`)).toBe("ab");
  expect(capOutput("short")).toBe("short");
});

test("the readable report: the first failing check with its hint, the rest folded unless verbose; a repeated error shown once", () => {
  const frame = "SyntaxError: Unexpected token\n  12 | export const x = (;\n     |                    ^";
  const tests = [
    named("first", check("core", "fail"), { message: frame, hint: "fix the first" }),
    named("second", check("core", "fail"), { message: frame, hint: "fix the second" }),
    named("third", check("excellence", "fail"), { message: frame, hint: "fix the third" }),
  ];
  const unit = unitResult("serde", tests);
  const brief = formatUnit(unit, { color: false });
  expect(brief).toContain("core 0/2 · excellence 0/1"); // core and excellence counted apart, beside the score
  expect(brief).toContain("hint: fix the first");
  expect(brief).not.toContain("fix the second");
  expect(brief).toContain("2 more failing checks: fix the first one, or add --verbose");
  expect(brief.split("Unexpected token").length - 1).toBe(1);
  const verbose = formatUnit(unit, { color: false, verbose: true });
  expect(verbose).toContain("hint: fix the second");
  expect(verbose).toContain("hint: fix the third");
  expect(verbose.split("Unexpected token").length - 1).toBe(1); // the frame once, not once per check
  expect(verbose).toContain("(same error as “first”)");
  // Colour never leaks into uncoloured output, even from a learner's message.
  const coloured = unitResult("serde", [named("first", check("core", "fail"), { message: `${RED}boom${RESET}` })]);
  expect(formatUnit(coloured, { color: false })).not.toMatch(/\u001b/);
});

test("type errors come first, with file:line, and the next step says they are why", () => {
  const typeErrors = ["exercises/lesson-11/serde/index.ts:3:7 - error TS2322: Type 'string' is not assignable to type 'number'."];
  const unit = unitResult("serde", [named("first", check("core", "pass")), named("second", check("excellence", "pass"))], {
    type_errors: typeErrors,
    message: `Your code does not type-check:\n${typeErrors[0]}`,
    tier: "adequate",
  });
  const text = formatUnit(unit, { color: false });
  const lines = text.split("\n");
  expect(lines[1]).toContain("type errors");
  expect(lines[2]).toContain("exercises/lesson-11/serde/index.ts:3:7");
  expect(text.split("TS2322").length - 1).toBe(1);
  expect(nextStep(unit)).toMatch(/^fix the type errors above: they are why this unit is adequate/);
});

test("the reference's path shows only once the unit is excellent", () => {
  const passing = unitResult("serde", [named("first", check("core", "pass")), named("second", check("excellence", "pass"))], { status: "pass" });
  expect(nextStep(passing)).toContain("solutions/lesson-11/serde/");
  const adequate = unitResult("serde", [named("first", check("core", "pass")), named("second", check("excellence", "fail"))]);
  expect(nextStep(adequate)).not.toContain("solutions/");
  expect(formatUnit(adequate, { color: false, verbose: true })).not.toContain("solutions/");
});

test("JUnit failures carry a type and a body (message, hint, section, output), without ANSI", async () => {
  const tests = [
    named("first", check("core", "fail"), { message: `${RED}expected 2${RESET}\nsecond line`, output: `${RED}printed${RESET}` }),
    named("second", check("core", "error"), { message: "timed out after 15 s" }),
  ];
  const file = join(mkdtempSync(join(tmpdir(), "ck-junit-unit-")), "r.xml");
  await writeJunit(finishReport(lessonReport([unitResult("serde", tests)])), file);
  const xml = readFileSync(file, "utf8");
  expect(xml).toMatch(/<failure message="expected 2" type="core-check-failed"><!\[CDATA\[expected 2\nsecond line\n\nhint: h\nread: lessons\/lesson-11\/serde\.md#s\n\nyour output:\nprinted\]\]><\/failure>/);
  expect(xml).toMatch(/<error message="timed out after 15 s" type="grading-error"><!\[CDATA\[timed out after 15 s/);
  expect(xml).not.toMatch(/\u001b/);
});
