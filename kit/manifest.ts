/**
 * The one source of truth for lessons and their units. Every path a unit has is
 * derived here, so the mirrored layout is spelled out in a single place.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { KIT_ROOT } from "../graders/harness/implementation.ts";

const slug = z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "use lowercase words joined by '-', e.g. scan-indexing");

export const UnitSchema = z.strictObject({
  id: slug,
  title: z.string().min(1),
  summary: z.string().min(1),
  /** Services the unit's grader also runs against when present (Redis: REDIS_URL). */
  services: z.array(z.enum(["redis"])).default([]),
  /** What the unit's grader needs beyond the sandbox learner code runs in (it starts processes, threads). */
  permissions: z.array(z.enum(["child-process", "worker-threads"])).default([]),
});
export const LessonSchema = z.strictObject({
  id: slug,
  title: z.string().min(1),
  summary: z.string().min(1),
  units: z.array(UnitSchema).min(1),
});
export const ManifestSchema = z.strictObject({ lessons: z.array(LessonSchema).min(1) });

export type Unit = z.infer<typeof UnitSchema>;
export type Lesson = z.infer<typeof LessonSchema>;
export type Manifest = z.infer<typeof ManifestSchema>;

export const MANIFEST_PATH = join(KIT_ROOT, "lessons", "manifest.json");

export function loadManifest(path: string = MANIFEST_PATH): Manifest {
  const parsed = ManifestSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) {
    throw new Error(`${path} is not a valid lesson manifest:\n${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Where each part of a unit lives. Nothing else in the kit builds these paths. */
export function unitPaths(lessonId: string, unitId: string, root: string = KIT_ROOT) {
  return {
    lesson: join(root, "lessons", lessonId, `${unitId}.md`),
    starter: join(root, "exercises", lessonId, unitId),
    reference: join(root, "solutions", lessonId, unitId),
    answers: join(root, "solutions", lessonId, unitId, "answers.md"),
    grader: join(root, "graders", lessonId, `${unitId}.grader.ts`),
    calibration: join(root, "graders", lessonId, unitId, "calibration"),
    diagramsDir: join(root, "diagrams", lessonId),
    diagramPrefix: `${unitId}-`,
  };
}

export class UnknownTargetError extends Error {
  override name = "UnknownTargetError";
}

export function findLesson(manifest: Manifest, lessonId: string): Lesson {
  const lesson = manifest.lessons.find((l) => l.id === lessonId);
  if (!lesson) {
    throw new UnknownTargetError(
      `Unknown lesson "${lessonId}". Lessons in this kit: ${manifest.lessons.map((l) => l.id).join(", ")}.`,
    );
  }
  return lesson;
}

export function findUnit(lesson: Lesson, unitId: string): Unit {
  const unit = lesson.units.find((u) => u.id === unitId);
  if (!unit) {
    throw new UnknownTargetError(
      `Unknown unit "${unitId}" in ${lesson.id}. Units: ${lesson.units.map((u) => u.id).join(", ")}.`,
    );
  }
  return unit;
}

export const CalibrationSchema = z.record(
  z.string().regex(/^[a-z0-9-]+$/, "calibration folder names are lowercase words joined by '-'"),
  z.strictObject({
    tier: z.enum(["needs-improvement", "adequate", "excellent"]),
    mistake: z.string().min(10, "say in a sentence which mistake this answer plants"),
  }),
);
export type Calibration = z.infer<typeof CalibrationSchema>;

/** The calibration answers of a unit and the tier each must grade. */
export function loadCalibration(lessonId: string, unitId: string): Calibration {
  const file = join(unitPaths(lessonId, unitId).calibration, "expected.json");
  const parsed = CalibrationSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new Error(`${file} is not a valid calibration list:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
