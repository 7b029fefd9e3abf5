/**
 * Each unit's rubric, read from its grader by kit/grading/collect.ts (Vitest
 * collects the checks and their metadata; none runs). Starting Vitest costs
 * seconds, so rubrics are cached under the build's output folder, keyed by a
 * hash of every file that declares checks: the grader, its hidden checks and
 * helpers, and the check API. Any edit there re-collects; nothing else does.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { z } from "zod";
import { globSync } from "tinyglobby";
import type { CollectedCheck } from "../kit/grading/collect.ts";
import { unitPaths } from "../kit/manifest.ts";

export type { CollectedCheck };

/** Collects the checks (public and hidden) of several units; keys are `<lesson>/<unit>`. */
export type CollectRubrics = (units: Array<[lessonId: string, unitId: string]>) => Promise<Map<string, CollectedCheck[]>>;

const CollectedCheckSchema = z.object({
  title: z.string().min(1),
  lesson: z.string(),
  unit: z.string(),
  tier: z.enum(["core", "excellence"]),
  weight: z.number().positive(),
  hint: z.string(),
  section: z.string(),
  visibility: z.enum(["public", "hidden"]),
  category: z.string(),
});
const CacheSchema = z.record(z.string(), z.object({ key: z.string(), checks: z.array(CollectedCheckSchema) }));

export class RubricError extends Error {
  override name = "RubricError";
}

/** The real collector: one Vitest instance for every unit that missed the cache. */
export const collectFromGraders: CollectRubrics = async (units) => {
  const { collectMany } = await import("../kit/grading/collect.ts");
  return collectMany(units, { includeHidden: true });
};

/** Files whose content decides a unit's checks. Calibration answers are code under test, not checks. */
function graderFiles(root: string, lessonId: string, unitId: string): string[] {
  const paths = unitPaths(lessonId, unitId, root);
  const unitDir = join(root, "graders", lessonId, unitId);
  const helpers = existsSync(unitDir)
    ? globSync(["**/*.ts"], { cwd: unitDir, ignore: ["calibration/**"] }).sort().map((file) => join(unitDir, file))
    : [];
  return [paths.grader, ...helpers, join(root, "graders", "harness", "check.ts")];
}

function cacheKey(root: string, files: string[]): string {
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(relative(root, file)).update("\0");
    hash.update(existsSync(file) ? readFileSync(file) : "(absent)").update("\0");
  }
  return hash.digest("hex");
}

export interface LoadRubricsOptions {
  root: string;
  units: Array<[lessonId: string, unitId: string]>;
  collect: CollectRubrics;
  /** Cache file; omit to always collect. */
  cacheFile?: string;
}

export async function loadRubrics({ root, units, collect, cacheFile }: LoadRubricsOptions): Promise<Map<string, CollectedCheck[]>> {
  for (const [lessonId, unitId] of units) {
    const grader = unitPaths(lessonId, unitId, root).grader;
    if (!existsSync(grader)) {
      throw new RubricError(`${relative(root, grader)} is missing: every unit in lessons/manifest.json needs a grader, and its rubric is read from it.`);
    }
  }
  const cached = cacheFile && existsSync(cacheFile) ? CacheSchema.safeParse(JSON.parse(readFileSync(cacheFile, "utf8"))) : undefined;
  const stored = cached?.success ? cached.data : {};
  const keys = new Map(units.map(([lessonId, unitId]) => [`${lessonId}/${unitId}`, cacheKey(root, graderFiles(root, lessonId, unitId))]));

  const result = new Map<string, CollectedCheck[]>();
  const missing: Array<[string, string]> = [];
  for (const [lessonId, unitId] of units) {
    const id = `${lessonId}/${unitId}`;
    const entry = stored[id];
    if (entry && entry.key === keys.get(id)) result.set(id, entry.checks);
    else missing.push([lessonId, unitId]);
  }

  if (missing.length > 0) {
    const collected = await collect(missing);
    for (const [lessonId, unitId] of missing) {
      const id = `${lessonId}/${unitId}`;
      const checks = z.array(CollectedCheckSchema).parse(collected.get(id) ?? []);
      if (checks.length === 0) {
        throw new RubricError(`${relative(root, unitPaths(lessonId, unitId, root).grader)} declares no checks; a unit's rubric cannot be empty.`);
      }
      result.set(id, checks);
    }
  }

  if (cacheFile) {
    mkdirSync(dirname(cacheFile), { recursive: true });
    const entries = units.map(([lessonId, unitId]) => {
      const id = `${lessonId}/${unitId}`;
      return [id, { key: keys.get(id)!, checks: result.get(id)! }] as const;
    });
    writeFileSync(cacheFile, JSON.stringify(Object.fromEntries(entries)));
  }
  return result;
}
