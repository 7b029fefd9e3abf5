// npm run hint: one more hint per call, remembered between calls; --all shows every hint; bad names are clear errors.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";

const stateDir = mkdtempSync(join(tmpdir(), "ck-hints-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

function hint(...args: string[]) {
  const run = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/hint.ts", ...args], {
    cwd: KIT_ROOT,
    encoding: "utf8",
    env: { ...process.env, CHECKPOINT_KIT_STATE_DIR: stateDir },
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const numbered = (text: string) => text.split("\n").filter((line) => /^\d+\. /.test(line)).length;

test("hints come one more at a time, each with the lesson section to read, and --all shows them all", () => {
  const first = hint("lesson-11", "serde");
  expect(first.code, first.stderr).toBe(0);
  expect(numbered(first.stdout)).toBe(1);
  expect(first.stdout).toMatch(/read lessons\/lesson-11\/serde\.md#[a-z0-9-]+/);
  expect(first.stdout).toMatch(/more hints?: run the same command again/);
  const second = hint("lesson-11", "serde");
  expect(numbered(second.stdout)).toBe(2);
  const all = hint("lesson-11", "serde", "--all");
  expect(numbered(all.stdout)).toBeGreaterThan(2);
  expect(all.stdout).not.toMatch(/hidden/i);
}, 120_000);

test("an unknown unit is a clear error listing the units", () => {
  const run = hint("lesson-11", "nope");
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(/Unknown unit "nope".*serde/);
});
