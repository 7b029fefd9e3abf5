/**
 * What the learner's last grading said, per unit, so `npm run list` answers
 * without regrading (Rustlings' list, Exercism's status). Kept in
 * .checkpoint-kit/state.json (git-ignored); CHECKPOINT_KIT_STATE_DIR moves it
 * (the kit's own tests use a temp folder). Only grading of exercises/ is recorded.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { TierSchema, type LessonReport } from "../grading/report.ts";
import { firstFailing } from "../report/pretty.ts";

export function stateDir(): string {
  return process.env.CHECKPOINT_KIT_STATE_DIR ?? join(KIT_ROOT, ".checkpoint-kit");
}

const UnitStateSchema = z.strictObject({
  tier: TierSchema,
  score: z.number(),
  graded_at: z.string(),
  seed: z.number(),
  /** The first failing public check, if any: what to work on next. */
  next: z.string().optional(),
  type_errors: z.number().optional(),
});
const StateSchema = z.strictObject({ version: z.literal(1), units: z.record(z.string(), UnitStateSchema) });
export type GradingState = z.infer<typeof StateSchema>;
export type UnitState = z.infer<typeof UnitStateSchema>;

export function readState(): GradingState {
  const file = join(stateDir(), "state.json");
  if (!existsSync(file)) return { version: 1, units: {} };
  try {
    const parsed = StateSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.data : { version: 1, units: {} };
  } catch {
    return { version: 1, units: {} }; // a damaged state file is only a lost cache
  }
}

export function recordReport(report: LessonReport): void {
  const state = readState();
  for (const unit of report.units) {
    const next = firstFailing(unit)?.name;
    state.units[`${unit.lesson}/${unit.unit}`] = {
      tier: unit.tier,
      score: unit.score,
      graded_at: report.generated_at,
      seed: report.seed,
      ...(next ? { next } : {}),
      ...(unit.type_errors?.length ? { type_errors: unit.type_errors.length } : {}),
    };
  }
  writeState(state);
}

export function forgetUnit(lesson: string, unit: string): void {
  const state = readState();
  delete state.units[`${lesson}/${unit}`];
  writeState(state);
}

function writeState(state: GradingState): void {
  const dir = stateDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "state.json");
  writeFileSync(`${file}.${process.pid}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.${process.pid}.tmp`, file);
}
