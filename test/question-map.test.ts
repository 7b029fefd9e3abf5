// The section's questions: each appears in exactly one unit's lesson page and that unit's answers.md.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { loadManifest, unitPaths } from "../kit/manifest.ts";

const lesson = loadManifest().lessons.find((l) => l.id === "lesson-11")!;
const overview = readFileSync(join(KIT_ROOT, "lessons", "lesson-11", "index.md"), "utf8");
const map = [...overview.matchAll(/^\| ([A-Z]\d) \| .+ \| ([a-z-]+) \|$/gm)].map((m) => ({ id: m[1]!, unit: m[2]! }));

test("the overview maps all sixteen questions to units of the lesson", () => {
  expect(map.map((m) => m.id).sort()).toEqual(
    ["A1", "A2", "A3", "B1", "B2", "D1", "F1", "F2", "M1", "M2", "M3", "P1", "P2", "R1", "S1", "S2"].sort(),
  );
  for (const { unit } of map) expect(lesson.units.map((u) => u.id)).toContain(unit);
});

test.each(map)("$id is asked in $unit's lesson only, and answered in its answers.md", ({ id, unit }) => {
  const marker = new RegExp(`\\*\\*${id}\\b`);
  for (const other of lesson.units) {
    const page = readFileSync(unitPaths(lesson.id, other.id).lesson, "utf8");
    const questions = page.slice(page.indexOf("## Interview questions"));
    expect(marker.test(questions), `${id} ${other.id === unit ? "missing from" : "also asked in"} ${other.id}.md`).toBe(other.id === unit);
  }
  expect(readFileSync(unitPaths(lesson.id, unit).answers, "utf8")).toMatch(new RegExp(`\\b${id}\\b`));
});
