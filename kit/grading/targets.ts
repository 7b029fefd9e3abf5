/**
 * What is graded: the learner's exercises/, the reference, or a returned
 * submission (a folder, or a .tgz or .zip bundle file). A submission contributes only its
 * exercise sources: they are copied into a private staging folder inside the
 * kit, so the kit's own graders, engine, configs and dependencies are used and
 * anything else the submission ships (edited graders, package.json, vitest
 * config) is never read.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import * as tar from "tar";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { unitPaths } from "../manifest.ts";
import { extractZip, ZipError } from "../pack/zip.ts";
import type { LessonReport } from "./report.ts";

export interface GradingTarget {
  kind: LessonReport["target"]["kind"];
  /** As given by the user, for the report. */
  path: string;
  implementationDir(lessonId: string, unitId: string): string;
  /** Removes staging folders. */
  dispose(): void;
}

/**
 * The learner's exercises. CHECKPOINT_KIT_EXERCISES_ROOT points at another
 * exercises tree inside the kit (the kit's own tests of watch mode use it).
 */
export function exercisesTarget(): GradingTarget {
  const root = process.env.CHECKPOINT_KIT_EXERCISES_ROOT;
  return {
    kind: "exercises",
    path: root ?? "exercises/",
    implementationDir: (l, u) => (root ? join(root, l, u) : unitPaths(l, u).starter),
    dispose() {},
  };
}

export function solutionsTarget(): GradingTarget {
  return { kind: "solutions", path: "solutions/", implementationDir: (l, u) => unitPaths(l, u).reference, dispose() {} };
}

export class SubmissionError extends Error {
  override name = "SubmissionError";
}

const SOURCE_FILE = /\.(ts|mts|json)$/;

/** Finds the folder that holds `exercises/` in an unpacked submission (the bundle may wrap it in one folder). */
function findSubmissionRoot(dir: string): string {
  if (existsSync(join(dir, "exercises"))) return dir;
  const children = readdirSync(dir).filter((name) => statSync(join(dir, name)).isDirectory());
  for (const child of children) {
    if (existsSync(join(dir, child, "exercises"))) return join(dir, child);
  }
  throw new SubmissionError(`${dir} has no exercises/ folder: point --submission at the returned kit folder or its .tgz or .zip bundle.`);
}

export async function submissionTarget(path: string): Promise<GradingTarget> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new SubmissionError(`No such submission: ${path}`);
  const stagingRoot = join(KIT_ROOT, ".grading");
  mkdirSync(stagingRoot, { recursive: true });
  const staging = mkdtempSync(join(stagingRoot, `${basename(absolute).replace(/[^\w.-]/g, "_")}-`));
  let unpacked: string | undefined;
  let root: string;
  try {
    if (statSync(absolute).isDirectory()) {
      root = findSubmissionRoot(absolute);
    } else if (/\.(tgz|tar\.gz|tar)$/.test(absolute)) {
      unpacked = mkdtempSync(join(tmpdir(), "ck-bundle-"));
      await tar.x({ file: absolute, cwd: unpacked, strict: true, filter: (p) => !p.split("/").includes("node_modules") });
      root = findSubmissionRoot(unpacked);
    } else if (/\.zip$/i.test(absolute)) {
      unpacked = mkdtempSync(join(tmpdir(), "ck-bundle-"));
      try {
        extractZip(absolute, unpacked);
      } catch (error) {
        throw error instanceof ZipError ? new SubmissionError(error.message) : error;
      }
      root = findSubmissionRoot(unpacked);
    } else {
      throw new SubmissionError(`${path} is neither a folder nor a .tgz or .zip bundle.`);
    }
    // Copy only exercise sources; nothing else from the submission is used.
    cpSync(join(root, "exercises"), join(staging, "exercises"), {
      recursive: true,
      filter: (source) => statSync(source).isDirectory() ? basename(source) !== "node_modules" : SOURCE_FILE.test(source),
    });
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  } finally {
    if (unpacked) rmSync(unpacked, { recursive: true, force: true });
  }
  return {
    kind: "submission",
    path,
    implementationDir: (l, u) => join(staging, "exercises", l, u),
    dispose: () => rmSync(staging, { recursive: true, force: true }),
  };
}

/** Any folder holding `<unit>/index.ts` per unit (used for calibration answers). */
export function directoryTarget(dirForUnit: (lessonId: string, unitId: string) => string, label: string): GradingTarget {
  return { kind: "directory", path: label, implementationDir: dirForUnit, dispose() {} };
}
