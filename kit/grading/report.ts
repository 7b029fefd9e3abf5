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
  /** A figure the check reports whatever its result ("716 of 716 LangGraph conformance tests pass"). */
  note: z.string().max(200).optional(),
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
  /** For the interviewer: constructs in the submission a reviewer would read twice. Information, not a verdict. */
  worth_a_look: z.array(z.strictObject({ file: z.string(), line: z.number().int().positive(), what: z.string(), text: z.string() })).optional(),
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

/** The share of a tier's check weight that passes (1 when the unit has no check of that tier). */
function passingShare(tests: readonly CheckResult[], tier: CheckResult["tier"]): number {
  const of = tests.filter((t) => t.tier === tier);
  const total = of.reduce((sum, t) => sum + t.weight, 0);
  if (total === 0) return 1;
  return of.reduce((sum, t) => sum + (t.status === "pass" ? t.weight : 0), 0) / total;
}

const BAND: Record<UnitTier, [number, number]> = { "needs-improvement": [0, 49], adequate: [50, 99], excellent: [100, 100] };

/**
 * A 0-100 score that agrees with the tier, so that no weighting can rank a unit
 * that fails a core check above one that passes them all: needs improvement
 * scores 0-49 (the share of core weight that passes), adequate 50-99 (50 plus
 * the share of excellence weight that passes), excellent 100. `tier`, when the
 * unit's tier was lowered for another reason (a load error, type errors), keeps
 * the score inside that tier's band.
 */
export function weightedScore(tests: readonly CheckResult[], tier?: UnitTier): number {
  if (tests.length === 0) return 0;
  const core = passingShare(tests, "core");
  const excellence = passingShare(tests, "excellence");
  const score = core < 1 ? Math.floor(49 * core) : excellence < 1 ? 50 + Math.floor(49 * excellence) : 100;
  if (!tier) return score;
  const [low, high] = BAND[tier];
  return Math.min(high, Math.max(low, score));
}

/** Keeps a score (e.g. a lesson's mean) inside the band of the tier it is shown beside. */
export function scoreWithinTier(score: number, tier: UnitTier): number {
  const [low, high] = BAND[tier];
  return Math.min(high, Math.max(low, Math.round(score)));
}

/** "core 6/7 · excellence 9/9": the checks passed of each tier, beside the score. */
export function checkCounts(tests: readonly CheckResult[]): string {
  const count = (tier: CheckResult["tier"]) => `${tests.filter((t) => t.tier === tier && t.status === "pass").length}/${tests.filter((t) => t.tier === tier).length}`;
  return `core ${count("core")} · excellence ${count("excellence")}`;
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
