// npm run mutation's summary (kit/mutation/run.ts): the score as Stryker computes it, and every exclusion listed.
// The mutation run itself is long; .ci/run runs it for one unit.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { exclusionComments, summarize, type Mutant, type Status } from "../kit/mutation/run.ts";

const mutant = (id: number, status: Status, statusReason?: string): Mutant => ({
  id: String(id),
  mutatorName: "ConditionalExpression",
  replacement: "false",
  location: { start: { line: id, column: 3 } },
  status,
  ...(statusReason ? { statusReason } : {}),
});

test("the score is (killed + timed out) / (killed + timed out + survived + no coverage); errors and exclusions are left out", () => {
  const statuses: Status[] = ["Killed", "Killed", "Killed", "Timeout", "Survived", "NoCoverage", "RuntimeError", "Ignored"];
  const summary = summarize("serde", { files: { "solutions/lesson-11/serde/index.ts": { source: "", mutants: statuses.map((s, i) => mutant(i + 1, s, s === "Ignored" ? "equivalent: never shown" : undefined)) } } });
  expect(summary.score).toBeCloseTo((4 / 6) * 100, 1);
  expect(summary.counts).toEqual({ killed: 3, timeout: 1, survived: 1, noCoverage: 1, errors: 1, ignored: 1 });
  expect(summary.undetected.map((u) => [u.where, u.status])).toEqual([
    ["solutions/lesson-11/serde/index.ts:5:3", "Survived"],
    ["solutions/lesson-11/serde/index.ts:6:3", "NoCoverage"],
  ]);
  expect(summary.ignored).toEqual([{ where: "solutions/lesson-11/serde/index.ts:8:3", mutator: "ConditionalExpression", reason: "equivalent: never shown" }]);
});

test("every Stryker disable comment in the reference is listed with its file and line", () => {
  const dir = mkdtempSync(join(tmpdir(), "mutation-"));
  try {
    mkdirSync(join(dir, "lib"));
    writeFileSync(join(dir, "index.ts"), "const a = 1;\n  // Stryker disable next-line StringLiteral: the message is never shown\nthrow new Error('x');\n");
    writeFileSync(join(dir, "lib", "b.ts"), "// Stryker disable all\n// stryker is not a directive here\n// Stryker restore all\n");
    writeFileSync(join(dir, "notes.md"), "// Stryker disable all\n");
    expect(exclusionComments(dir, dir)).toEqual([
      "index.ts:2: Stryker disable next-line StringLiteral: the message is never shown",
      "lib/b.ts:1: Stryker disable all",
      "lib/b.ts:3: Stryker restore all",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
