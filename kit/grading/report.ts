/**
 * The grading report: its zod schema (the contract of `--json`) and the tier
 * rules. The shape follows Exercism's results.json v3 (status, tests with name,
 * status, message, output, task_id) and adds tier and score per unit and lesson.
 */
import { z } from "zod";

export const TIERS = ["needs-improvement", "adequate", "excellent"] as const;
export const TierSchema = z.enum(TIERS);
export type UnitTier = z.infer<typeof TierSchema>;

export const TIER_LABEL: Record<UnitTier, string> = {
  excellent: "excellent",
  adequate: "adequate",
  "needs-improvement": "needs improvement",
};

export const CheckResultSchema = z.strictObject({
  name: z.string(),
  status: z.enum(["pass", "fail", "error"]),
  message: z.string().optional(),
  /** The learner's own console output during this check, capped at 500 characters. */
  output: z.string().max(500).optional(),
  /** The check's source (Exercism's test_code); public checks only. */
  test_code: z.string().optional(),
  task_id: z.number().int().positive(),
  tier: z.enum(["core", "excellence"]),
  weight: z.number().positive(),
  visibility: z.enum(["public", "hidden"]),
  category: z.string(),
  hint: z.string(),
  section: z.string(),
  duration_ms: z.number().nonnegative(),
});
export type CheckResult = z.infer<typeof CheckResultSchema>;

export const UnitResultSchema = z.strictObject({
  lesson: z.string(),
  unit: z.string(),
  title: z.string(),
  status: z.enum(["pass", "fail", "error"]),
  /** Why the unit could not be graded normally (load failure, time limit, tampering...). */
  message: z.string().optional(),
  /** Compiler errors, "file:line:col - error TSxxxx: text"; they cap the unit at adequate. */
  type_errors: z.array(z.string()).optional(),
  tier: TierSchema,
  score: z.number().int().min(0).max(100),
  tests: z.array(CheckResultSchema),
  duration_ms: z.number().nonnegative(),
});
export type UnitResult = z.infer<typeof UnitResultSchema>;

export const LessonReportSchema = z.strictObject({
  version: z.literal(3),
  status: z.enum(["pass", "fail", "error"]),
  message: z.string().optional(),
  lesson: z.string(),
  tier: TierSchema,
  score: z.number().int().min(0).max(100),
  /** Every check of every unit, flattened, named "unit › check" (Exercism's tests list); task_id is the unit's number in the lesson. */
  tests: z.array(CheckResultSchema),
  units: z.array(UnitResultSchema),
  target: z.strictObject({ kind: z.enum(["exercises", "solutions", "submission", "directory"]), path: z.string() }),
  hidden_checks: z.boolean(),
  seed: z.number().int(),
  kit_version: z.string(),
  node_version: z.string(),
  generated_at: z.string(),
});
export type LessonReport = z.infer<typeof LessonReportSchema>;

export function tierRank(tier: UnitTier): number {
  return TIERS.indexOf(tier);
}

/** needs improvement: any core check fails (or nothing ran); adequate: every core passes; excellent: every check passes. */
export function unitTier(tests: readonly CheckResult[], gradedNormally: boolean): UnitTier {
  if (!gradedNormally || tests.length === 0) return "needs-improvement";
  if (tests.some((t) => t.tier === "core" && t.status !== "pass")) return "needs-improvement";
  return tests.every((t) => t.status === "pass") ? "excellent" : "adequate";
}

/** The lower of a tier and a cap (type errors cap a unit at adequate). */
export function capTier(tier: UnitTier, cap: UnitTier): UnitTier {
  return tierRank(tier) > tierRank(cap) ? cap : tier;
}

/** Passing weight over total weight, 0-100. */
export function weightedScore(tests: readonly CheckResult[]): number {
  const total = tests.reduce((sum, t) => sum + t.weight, 0);
  if (total === 0) return 0;
  const passing = tests.reduce((sum, t) => sum + (t.status === "pass" ? t.weight : 0), 0);
  return Math.round((100 * passing) / total);
}

/** A lesson is only as good as its weakest unit. */
export function lessonTier(units: readonly UnitResult[]): UnitTier {
  return units.reduce<UnitTier>((lowest, u) => (tierRank(u.tier) < tierRank(lowest) ? u.tier : lowest), "excellent");
}

export function parseReport(json: string): LessonReport {
  const parsed = LessonReportSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`Not a checkpoint-kit report:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
