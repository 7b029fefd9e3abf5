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

test("the score is passing weight over total weight", () => {
  expect(weightedScore([check("core", "pass", 3), check("excellence", "fail", 1)])).toBe(75);
  expect(weightedScore([])).toBe(0);
  fc.assert(
    fc.property(fc.array(arbitraryCheck, { minLength: 1 }), (checks) => {
      const score = weightedScore(checks);
      expect(score).toBeGreaterThanOrEqual(0);
      expect(score).toBeLessThanOrEqual(100);
      if (checks.every((c) => c.status === "pass")) expect(score).toBe(100);
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
