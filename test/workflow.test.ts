/**
 * The interviewer's batch mode and the learner's watch mode, driven as users
 * drive them: a folder of submissions (one solved, one that ships edited
 * graders and configs, one broken), and a watch session that re-grades on save.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tar from "tar";
import { afterAll, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { BatchSummarySchema } from "../kit/cli/batch.ts";
import { unitPaths } from "../kit/manifest.ts";

const work = mkdtempSync(join(tmpdir(), "ck-workflow-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function submissionWithSerde(name: string, serdeFrom: string): string {
  const root = join(work, "in", name);
  mkdirSync(join(root, "exercises", "lesson-11"), { recursive: true });
  cpSync(serdeFrom, join(root, "exercises", "lesson-11", "serde"), { recursive: true, filter: (p) => !p.endsWith(".md") });
  return root;
}

test("--submissions grades a folder of submissions; pristine graders; a broken one does not stop the batch", async () => {
  // alice solved serde (the reference, copied in as a candidate would write it) and returns a .tgz
  const alice = submissionWithSerde("alice-src", unitPaths("lesson-11", "serde").reference);
  await tar.c({ gzip: true, file: join(work, "in", "alice.tgz"), cwd: alice }, ["exercises"]);
  rmSync(alice, { recursive: true });
  // mallory returns the starter, with an always-passing grader, a new vitest config and package.json
  const mallory = submissionWithSerde("mallory", unitPaths("lesson-11", "serde").starter);
  mkdirSync(join(mallory, "graders", "lesson-11"), { recursive: true });
  writeFileSync(join(mallory, "graders", "lesson-11", "serde.grader.ts"), 'import { test } from "vitest";\ntest("ok", () => {});\n');
  writeFileSync(join(mallory, "vitest.config.ts"), "export default { test: { passWithNoTests: true } };\n");
  writeFileSync(join(mallory, "package.json"), '{ "name": "checkpoint-kit", "scripts": { "grade": "echo excellent" } }\n');
  // a folder that is not a submission at all
  mkdirSync(join(work, "in", "broken"), { recursive: true });
  writeFileSync(join(work, "in", "broken", "notes.txt"), "no exercises here\n");

  const out = join(work, "out");
  const run = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "serde", "--submissions", join(work, "in"), "--out", out, "--concurrency", "2"], {
    cwd: KIT_ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 300_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const summary = BatchSummarySchema.parse(JSON.parse(readFileSync(join(out, "summary.json"), "utf8")));
  const row = (name: string) => summary.rows.find((r) => r.candidate === name)!;
  expect(summary.rows.map((r) => r.candidate).sort()).toEqual(["alice", "broken", "mallory"]);
  expect(row("alice").units.serde!.tier).toBe("excellent");
  expect(row("mallory").units.serde!.tier).toBe("needs-improvement");
  expect(row("mallory").units.serde!.failed.length).toBeGreaterThan(0);
  expect(row("broken").status).toBe("error");
  expect(row("broken").error).toContain("no exercises/ folder");
  const csv = readFileSync(join(out, "summary.csv"), "utf8");
  expect(csv.split("\n")[0]).toBe("candidate,status,tier,score,serde tier,serde score,failed checks,error");
  expect(csv).toMatch(/^alice,graded,excellent,100,excellent,100,,$/m);
  expect(run.stdout).toMatch(/mallory\s+needs improvement/);
  expect(JSON.parse(readFileSync(join(out, "alice.json"), "utf8")).units[0].tests.some((t: { visibility: string }) => t.visibility === "hidden")).toBe(true);
}, 300_000);

function waitFor(read: () => string, pattern: RegExp | ((text: string) => boolean), ms: number): Promise<void> {
  const started = Date.now();
  const matches = typeof pattern === "function" ? pattern : (text: string) => pattern.test(text);
  return new Promise((resolve, reject) => {
    const tick = setInterval(() => {
      if (matches(read())) {
        clearInterval(tick);
        resolve();
      } else if (Date.now() - started > ms) {
        clearInterval(tick);
        reject(new Error(`timed out waiting for ${String(pattern)} in:\n${read()}`));
      }
    }, 100);
  });
}

test.each([{ poll: false }, { poll: true }])("--watch re-grades on save, shows hints on h, quits on q (polling: $poll)", async ({ poll }) => {
  const root = mkdtempSync(join(KIT_ROOT, ".grading", "watch-"));
  try {
    cpSync(unitPaths("lesson-11", "serde").starter, join(root, "lesson-11", "serde"), { recursive: true });
    const child = spawn(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "serde", "--watch"], {
      cwd: KIT_ROOT,
      env: { ...process.env, NO_COLOR: "1", CHECKPOINT_KIT_EXERCISES_ROOT: root, CHECKPOINT_KIT_POLL: poll ? "1" : "0" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    await waitFor(() => output, /Progress: \[-+\] 0\/1 units excellent[\s\S]*h: next hint/, 120_000);
    child.stdin.write("h");
    await waitFor(() => output, /hint for “/, 10_000);
    const runsSoFar = (text: string) => text.split("Watching for changes").length - 1;
    appendFileSync(join(root, "lesson-11", "serde", "index.ts"), "\n// saved\n");
    await waitFor(() => output, (text) => runsSoFar(text) >= 2, 120_000);
    child.stdin.write("q");
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(output).toContain("Bye.");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}, 300_000);
