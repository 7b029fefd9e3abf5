/**
 * Reads a unit's rubric from its grader without running any check: Vitest
 * collects the file (registering each check with its metadata) and we read the
 * metadata back. The site and the hint command use this, so what they show is
 * what is graded.
 */
import { relative } from "node:path";
import { createVitest } from "vitest/node";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import type { CheckMeta } from "../../graders/harness/check.ts";
import { unitPaths } from "../manifest.ts";

export interface CollectedCheck extends Omit<CheckMeta, "timeout"> {
  title: string;
}

export async function collectChecks(
  lessonId: string,
  unitId: string,
  options: { includeHidden?: boolean } = {},
): Promise<CollectedCheck[]> {
  return (await collectMany([[lessonId, unitId]], options)).get(`${lessonId}/${unitId}`) ?? [];
}

/** Collects several graders in one Vitest instance (start-up is the expensive part). */
export async function collectMany(
  units: Array<[lessonId: string, unitId: string]>,
  options: { includeHidden?: boolean } = {},
): Promise<Map<string, CollectedCheck[]>> {
  const previousHidden = process.env.CHECKPOINT_KIT_HIDDEN;
  process.env.CHECKPOINT_KIT_HIDDEN = options.includeHidden ? "1" : "0";
  const vitest = await createVitest(
    "test",
    { config: `${KIT_ROOT}/graders/vitest.config.ts`, root: KIT_ROOT, watch: false, reporters: [] },
    { logLevel: "silent" },
  );
  try {
    const files = units.map(([lesson, unit]) => relative(KIT_ROOT, unitPaths(lesson, unit).grader));
    const { testModules } = await vitest.collect(files);
    const byUnit = new Map<string, CollectedCheck[]>();
    for (const module of testModules) {
      const errors = module.errors();
      if (errors.length > 0) {
        throw new Error(`Could not read the checks of ${relative(KIT_ROOT, module.moduleId)}: ${errors.map((e) => e.message).join("; ")}`);
      }
      for (const test of module.children.allTests()) {
        const meta = test.meta().check;
        if (!meta) continue;
        const { timeout: _timeout, ...rubric } = meta;
        const key = `${meta.lesson}/${meta.unit}`;
        byUnit.set(key, [...(byUnit.get(key) ?? []), { title: test.name, ...rubric }]);
      }
    }
    return byUnit;
  } finally {
    await vitest.close();
    if (previousHidden === undefined) delete process.env.CHECKPOINT_KIT_HIDDEN;
    else process.env.CHECKPOINT_KIT_HIDDEN = previousHidden;
  }
}
