/**
 * The interviewer's batch mode and the learner's watch mode, driven as users
 * drive them: a folder of submissions (one solved, one that ships edited
 * graders and configs, one broken), and a watch session that re-grades on save.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateRawSync } from "node:zlib";
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
  // bob zipped his folder (as Windows and macOS users do), wrapped in one folder
  const bob = submissionWithSerde("bob-src", unitPaths("lesson-11", "serde").reference);
  writeZip(join(work, "in", "bob.zip"), bob, "checkpoint-kit-lesson-11");
  rmSync(bob, { recursive: true });
  // an earlier run's output, in the default place: never a candidate
  mkdirSync(join(work, "in", "grading-report"), { recursive: true });
  writeFileSync(join(work, "in", "grading-report", "summary.json"), "{}\n");

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
  expect(summary.rows.map((r) => r.candidate).sort()).toEqual(["alice", "bob", "broken", "mallory"]);
  expect(row("bob").units.serde!.tier).toBe("excellent");
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

test("--submissions on an empty folder says what to put in it, without a stack trace", () => {
  const empty = mkdtempSync(join(tmpdir(), "ck-empty-"));
  const run = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "--submissions", empty], { cwd: KIT_ROOT, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000 });
  expect(run.status).toBe(2);
  expect(run.stderr).toContain(`No submissions in ${empty}: put each candidate's returned folder, .tgz or .zip bundle in it`);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(join(empty, "grading-report"))).toBe(false);
  rmSync(empty, { recursive: true, force: true });
}, 120_000);

/** A .zip of `dir` under `prefix/`, as zip tools write it: deflated entries, with a central directory. */
function writeZip(file: string, dir: string, prefix: string): void {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const files = (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile());
  for (const path of files) {
    const data = readFileSync(join(dir, path));
    const packed = deflateRawSync(data);
    const name = Buffer.from(`${prefix}/${path}`);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x800, 8);
    entry.writeUInt16LE(8, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    central.push(entry, name);
    offset += local.length + name.length + packed.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  writeFileSync(file, Buffer.concat([...locals, directory, end]));
}

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

test("--watch works one unit at a time: moves on at adequate with n, grades only the edited unit, hints one at a time, the reference only at excellent", async () => {
  mkdirSync(join(KIT_ROOT, ".grading"), { recursive: true });
  const root = mkdtempSync(join(KIT_ROOT, ".grading", "watch-units-"));
  const stateDir = mkdtempSync(join(tmpdir(), "ck-watch-state-"));
  try {
    cpSync(join(unitPaths("lesson-11", "serde").calibration, "adequate-no-limits"), join(root, "lesson-11", "serde"), { recursive: true });
    cpSync(unitPaths("lesson-11", "scan-indexing").starter, join(root, "lesson-11", "scan-indexing"), { recursive: true });
    const child = spawn(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "serde", "scan-indexing", "--watch"], {
      cwd: KIT_ROOT,
      env: { ...process.env, NO_COLOR: "1", CHECKPOINT_KIT_EXERCISES_ROOT: root, CHECKPOINT_KIT_STATE_DIR: stateDir, CHECKPOINT_KIT_POLL: "0" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const since = (mark: number) => output.slice(mark);
    await waitFor(() => output, /serde is adequate: keep going for excellent, or press n to move on to scan-indexing/, 180_000);
    expect(output).toContain("Grading serde …");
    expect(output).not.toContain("Grading scan-indexing");
    expect(output).not.toContain("solutions/lesson-11/serde");

    let mark = output.length;
    child.stdin.write("n");
    await waitFor(() => since(mark), /Watching for changes/, 180_000);
    expect(since(mark)).toContain("Grading scan-indexing …");
    expect(since(mark)).not.toContain("Grading serde");
    const shownFirst = /next: “([^”]+)”/.exec(since(mark))?.[1];
    mark = output.length;
    child.stdin.write("h");
    await waitFor(() => since(mark), /hint for “/, 10_000);
    child.stdin.write("h");
    await waitFor(() => since(mark), (text) => text.split("hint for “").length >= 3, 10_000);
    const revealed = [...since(mark).matchAll(/hint for “([^”]+)”/g)].map((m) => m[1]);
    expect(revealed.length).toBe(2); // one per key press
    expect(new Set(revealed).size).toBe(2);
    expect(revealed).not.toContain(shownFirst); // the report already showed that one

    // Saving serde grades serde alone, and at excellent the reference is named.
    mark = output.length;
    cpSync(unitPaths("lesson-11", "serde").reference, join(root, "lesson-11", "serde"), { recursive: true, filter: (p) => !p.endsWith(".md") });
    await waitFor(() => since(mark), /serde is excellent\. The reference is in solutions\/lesson-11\/serde\//, 180_000);
    expect(since(mark)).not.toContain("Grading scan-indexing");
    child.stdin.write("q");
    expect(await new Promise<number | null>((resolve) => child.on("close", resolve))).toBe(0);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 600_000);
