// Every unit listed in the manifest has all of its parts, and its rubric points at real lesson sections.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { collectMany } from "../kit/grading/collect.ts";
import { loadCalibration, loadManifest, unitPaths } from "../kit/manifest.ts";
import { headingSlugs } from "../site/slug.ts";

const manifest = loadManifest();
const units = manifest.lessons.flatMap((lesson) => lesson.units.map((unit) => ({ lesson: lesson.id, unit: unit.id })));
const REQUIRED_SECTIONS = ["objectives", "out-of-scope", "interview-questions", "common-mistakes", "references"];

const rel = (path: string) => relative(KIT_ROOT, path);

describe.each(units)("$lesson/$unit has every part", ({ lesson, unit }) => {
  const paths = unitPaths(lesson, unit);

  test("lesson page with the required sections", () => {
    expect(existsSync(paths.lesson), `missing ${rel(paths.lesson)}`).toBe(true);
    const slugs = headingSlugs(readFileSync(paths.lesson, "utf8"));
    for (const section of REQUIRED_SECTIONS) expect(slugs, `${rel(paths.lesson)} needs a "## ${section}" section`).toContain(section);
  });

  test("at least one diagram, rendered", () => {
    const sources = existsSync(paths.diagramsDir)
      ? readdirSync(paths.diagramsDir).filter((f) => f.startsWith(paths.diagramPrefix) && f.endsWith(".mmd"))
      : [];
    expect(sources.length, `no ${rel(paths.diagramsDir)}/${paths.diagramPrefix}*.mmd`).toBeGreaterThan(0);
    for (const source of sources) {
      const svg = join(paths.diagramsDir, source.replace(/\.mmd$/, ".svg"));
      expect(existsSync(svg), `${rel(svg)} is not rendered: run npm run diagrams`).toBe(true);
    }
  });

  test("starter, reference and model answers", () => {
    for (const file of [join(paths.starter, "index.ts"), join(paths.reference, "index.ts"), paths.answers]) {
      expect(existsSync(file), `missing ${rel(file)}`).toBe(true);
    }
  });

  test("grader and calibration answers (at least four, with both lower tiers)", () => {
    expect(existsSync(paths.grader), `missing ${rel(paths.grader)}`).toBe(true);
    const calibration = loadCalibration(lesson, unit);
    const names = Object.keys(calibration);
    expect(names.length).toBeGreaterThanOrEqual(4);
    for (const name of names) {
      expect(existsSync(join(paths.calibration, name, "index.ts")), `missing calibration answer ${name}/index.ts`).toBe(true);
    }
    const tiers = new Set(Object.values(calibration).map((c) => c.tier));
    expect(tiers).toContain("needs-improvement");
    expect(tiers).toContain("adequate");
  });
});

test("every check's hint points at a section of its lesson page", async () => {
  const rubric = await collectMany(units.map((u) => [u.lesson, u.unit]), { includeHidden: true });
  for (const { lesson, unit } of units) {
    const checks = rubric.get(`${lesson}/${unit}`) ?? [];
    expect(checks.length, `${lesson}/${unit} has no checks`).toBeGreaterThan(0);
    expect(checks.some((c) => c.visibility === "hidden"), `${lesson}/${unit} has no hidden checks`).toBe(true);
    expect(checks.some((c) => c.tier === "excellence"), `${lesson}/${unit} has no excellence checks`).toBe(true);
    const slugs = new Set(headingSlugs(readFileSync(unitPaths(lesson, unit).lesson, "utf8")));
    for (const check of checks) {
      expect(slugs.has(check.section), `“${check.title}” points at #${check.section}, which ${lesson}/${unit}.md does not have`).toBe(true);
      expect(check.hint.length, `“${check.title}” needs a hint`).toBeGreaterThan(15);
    }
  }
}, 60_000);
