/**
 * Where the implementation a grader is pointed at lives. The engine sets
 * CHECKPOINT_KIT_UNIT_DIR (the starter, the reference, a calibration answer or a
 * submission) in the trusted grading process; without it, the learner's own
 * exercises/ are graded. The code itself is loaded only in a learner process
 * (see check.ts), never here.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const KIT_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export class ImplementationLoadError extends Error {
  override name = "ImplementationLoadError";
}

export function implementationDir(lesson: string, unit: string): string {
  return process.env.CHECKPOINT_KIT_UNIT_DIR ?? join(KIT_ROOT, "exercises", lesson, unit);
}
