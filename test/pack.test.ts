/**
 * The candidate bundle: what it holds and leaves out, and that it grades where
 * a candidate unpacks it. With CI=true (or CHECKPOINT_KIT_FULL=1) the bundle is
 * installed with a real `npm ci`, the npm on PATH (npm 10 in .ci/run's first
 * leg), without any skip variable; otherwise the kit's own node_modules is
 * linked in, after checking that every entry of the bundle's lock file is the
 * kit's, so `npm ci` would install the same versions. Then the candidate's
 * commands: interviewer options refused, list, reset, submit, and the
 * interviewer grading the returned file.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import ts from "typescript";
import * as tar from "tar";
import { afterAll, beforeAll, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { parseReport } from "../kit/grading/report.ts";
import { loadManifest, unitPaths } from "../kit/manifest.ts";
import { CANDIDATE_DEPENDENCIES, packLesson } from "../kit/cli/pack.ts";

const fullInstall = process.env.CI === "true" || process.env.CHECKPOINT_KIT_FULL === "1";
const lesson = loadManifest().lessons.find((l) => l.id === "lesson-11")!;
const work = mkdtempSync(join(tmpdir(), "ck-pack-test-"));
let bundle: { file: string; entries: string[] };
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  bundle = await packLesson("lesson-11", join(work, "bundle.tgz"));
  mkdirSync(join(work, "peek"));
  await tar.x({ file: bundle.file, cwd: join(work, "peek") });
}, 120_000);

test("the bundle holds what a candidate needs", () => {
  const files = bundle.entries.map((e) => e.replace(/^checkpoint-kit-lesson-11\//, ""));
  for (const unit of lesson.units) {
    expect(files).toContain(`exercises/lesson-11/${unit.id}/index.ts`);
    expect(files).toContain(`lessons/lesson-11/${unit.id}.md`);
    expect(files).toContain(`graders/lesson-11/${unit.id}.grader.ts`);
  }
  for (const file of ["README.md", "package.json", "package-lock.json", "tsconfig.json", "runtime/index.ts", "kit/cli/grade.ts", "graders/harness/check.ts"]) {
    expect(files).toContain(file);
  }
});

test("the bundle holds no solutions, answers, calibration answers or hidden checks", () => {
  const leaks = bundle.entries.filter((e) => /(^|\/)(solutions|calibration)\/|answers\.md$|\/hidden(\.ts$|\/)|\.test\.ts$/.test(e));
  expect(leaks).toEqual([]);
  const readme = readFileSync(join(KIT_ROOT, "kit", "pack", "candidate-readme.md"), "utf8");
  expect(readme).toContain("Returning your work");
});

test("the bundle's package.json and lock file hold only what grading needs, at the kit's resolved versions", () => {
  const root = "checkpoint-kit-lesson-11/";
  const read = (file: string) => JSON.parse(readFileSync(join(work, "peek", root, file), "utf8"));
  const pkg = read("package.json");
  const lock = read("package-lock.json");
  const kitLock = JSON.parse(readFileSync(join(KIT_ROOT, "package-lock.json"), "utf8"));
  expect(Object.keys(pkg.dependencies).sort()).toEqual([...CANDIDATE_DEPENDENCIES].sort());
  expect(lock.packages[""].dependencies).toEqual(pkg.dependencies);
  const names = Object.keys(lock.packages).filter(Boolean).map((p) => p.slice(p.lastIndexOf("node_modules/") + "node_modules/".length));
  for (const unwanted of ["@mermaid-js/mermaid-cli", "puppeteer", "puppeteer-core", "playwright-core", "shiki", "@shikijs/markdown-it", "markdown-it", "@langchain/langgraph", "@langchain/langgraph-checkpoint-sqlite", "@stryker-mutator/core"]) {
    expect(names).not.toContain(unwanted);
  }
  for (const [path, entry] of Object.entries(lock.packages)) if (path) expect(entry, path).toEqual(kitLock.packages[path]);
  expect(names.length).toBeLessThan(Object.keys(kitLock.packages).length / 2);
  // Every module the bundle's code imports is in the bundle, and every package in that lock file.
  const sources = bundle.entries.filter((e) => /\.(ts|mts|cts|cjs|mjs)$/.test(e));
  const packageOf = (spec: string) => (spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
  const missingPackages = new Set<string>();
  const missingFiles: string[] = [];
  for (const entry of sources) {
    const file = join(work, "peek", entry);
    const text = readFileSync(file, "utf8");
    for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
      if (spec.startsWith("node:") || spec.startsWith("#")) continue;
      // Left out on purpose: types of the reference (erased at run time) and hidden checks (loaded only when enabled).
      const typeOnly = new RegExp(`import type [^;]+ from "${spec.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"`).test(text);
      const hiddenOnly = spec.endsWith("/hidden.ts") && new RegExp(`if \\(hiddenChecksEnabled\\(\\)\\) \\(?await import\\("${spec.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\)`).test(text);
      if (spec.startsWith(".")) {
        if (!existsSync(join(dirname(file), spec)) && !typeOnly && !hiddenOnly) missingFiles.push(`${entry} imports ${spec}`);
      } else if (!lock.packages[`node_modules/${packageOf(spec)}`]) missingPackages.add(`${packageOf(spec)} (${entry})`);
    }
  }
  expect(missingFiles).toEqual([]);
  expect([...missingPackages]).toEqual([]);
});

test("the bundle ships the committed starters, not the working tree's edits, and names what it left out", () => {
  for (const unit of lesson.units) {
    const committed = execFileSync("git", ["show", `HEAD:exercises/lesson-11/${unit.id}/index.ts`], { cwd: KIT_ROOT, encoding: "utf8" });
    expect(readFileSync(join(work, "peek", "checkpoint-kit-lesson-11", "exercises", "lesson-11", unit.id, "index.ts"), "utf8")).toBe(committed);
  }
  // In a clone whose starter was edited, pack still ships the committed one and says so.
  const clone = join(work, "clone");
  execFileSync("git", ["clone", "-q", KIT_ROOT, clone]);
  symlinkSync(join(KIT_ROOT, "node_modules"), join(clone, "node_modules"), "dir");
  const starter = join(clone, "exercises", "lesson-11", "serde", "index.ts");
  const committed = readFileSync(starter, "utf8");
  appendFileSync(starter, "\nexport const interviewersDraftAnswer = 42;\n");
  const packed = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/pack.ts", "lesson-11", "--out", join(work, "from-clone.tgz")], { cwd: clone, encoding: "utf8", env: { ...process.env, INIT_CWD: undefined } });
  expect(packed.status, packed.stderr).toBe(0);
  expect(packed.stderr).toContain("exercises/lesson-11/serde/index.ts");
  expect(packed.stderr).toContain("were not packed");
  const peek = join(work, "peek-clone");
  mkdirSync(peek);
  execFileSync("tar", ["xzf", join(work, "from-clone.tgz"), "-C", peek]);
  expect(readFileSync(join(peek, "checkpoint-kit-lesson-11", "exercises", "lesson-11", "serde", "index.ts"), "utf8")).toBe(committed);
}, 120_000);

/** The candidate's environment: none of the kit's own test run's npm variables. */
function candidateEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && k !== "INIT_CWD" && !k.startsWith("CHECKPOINT_KIT_") && !k.startsWith("PUPPETEER_")));
  return { ...env, NO_COLOR: "1", ...extra };
}

const root = join(work, "checkpoint-kit-lesson-11");
const npm = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync("npm", args, { cwd: root, encoding: "utf8", env: candidateEnv(extra), timeout: 600_000 });

test(
  `unpacked and installed (${fullInstall ? "npm ci" : "kit's node_modules linked"}), it grades needs improvement on public checks only`,
  async () => {
    await tar.x({ file: bundle.file, cwd: work });
    if (fullInstall) {
      // As a candidate installs: no skip variable (the bundle has no puppeteer at all), the npm on PATH.
      const started = Date.now();
      execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, env: candidateEnv(), stdio: "pipe" });
      const packages = readdirSync(join(root, "node_modules"), { recursive: true }).filter((p) => String(p).endsWith("package.json") && String(p).split("node_modules").length <= 3).length;
      console.log(`candidate bundle: npm ${execFileSync("npm", ["--version"], { encoding: "utf8" }).trim()} ci in ${Math.round((Date.now() - started) / 1000)} s, ${Object.keys(JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")).packages).length - 1} packages in the lock (${packages} package.json files)`);
    } else {
      symlinkSync(join(KIT_ROOT, "node_modules"), join(root, "node_modules"), "dir");
    }
    expect(existsSync(join(root, "solutions"))).toBe(false);
    const run = npm(["run", "--silent", "grade", "lesson-11", "--", "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = parseReport(run.stdout);
    expect(report.units.map((u) => u.unit)).toEqual(lesson.units.map((u) => u.id));
    for (const unit of report.units) expect(unit.tier, `${unit.unit}: ${unit.message ?? ""}`).toBe("needs-improvement");
    expect(report.hidden_checks).toBe(false);
    expect(report.tests.every((t) => t.visibility === "public")).toBe(true);
    expect(report.tests.length).toBeGreaterThan(lesson.units.length * 3);
  },
  900_000,
);

test("in the bundle, --solutions and --hidden say plainly they are interviewer options", () => {
  for (const option of ["--solutions", "--hidden"]) {
    const run = npm(["run", "--silent", "grade", "lesson-11", "serde", "--", option]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${option} is an interviewer option`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  }
}, 120_000);

test("in the bundle: list shows the last grading, reset puts a starter back (with --yes when there is no terminal)", () => {
  const list = npm(["run", "--silent", "list"]);
  expect(list.status, list.stderr).toBe(0);
  expect(list.stdout).toMatch(/1\. serde\s+needs improvement/);
  const starter = join(root, "exercises", "lesson-11", "serde", "index.ts");
  const original = readFileSync(starter, "utf8");
  writeFileSync(starter, "export const mine = 1;\n");
  writeFileSync(join(root, "exercises", "lesson-11", "serde", "extra.ts"), "export {};\n");
  const refused = npm(["run", "--silent", "reset", "lesson-11", "serde"]);
  expect(refused.status).toBe(2);
  expect(refused.stderr).toContain("npm run reset lesson-11 serde -- --yes");
  expect(readFileSync(starter, "utf8")).toBe("export const mine = 1;\n");
  const forgot = npm(["run", "reset", "lesson-11", "serde", "--yes"]);
  expect(forgot.status).toBe(2);
  expect(forgot.stderr).toContain("did you mean `-- --yes`?");
  const reset = npm(["run", "--silent", "reset", "lesson-11", "serde", "--", "--yes"]);
  expect(reset.status, reset.stderr).toBe(0);
  expect(readFileSync(starter, "utf8")).toBe(original);
  expect(existsSync(join(root, "exercises", "lesson-11", "serde", "extra.ts"))).toBe(false);
}, 180_000);

test("npm run submit writes the return bundle outside the folder, and the interviewer's --submission grades it as is", () => {
  cpSync(unitPaths("lesson-11", "serde").reference, join(root, "exercises", "lesson-11", "serde"), { recursive: true, filter: (p) => !p.endsWith(".md") });
  const submit = npm(["run", "--silent", "submit"]);
  expect(submit.status, submit.stderr).toBe(0);
  const file = join(work, "checkpoint-kit-lesson-11-submission.tgz");
  expect(submit.stdout).toContain(file);
  const names: string[] = [];
  tar.t({ file, sync: true, onReadEntry: (e) => void names.push(e.path) });
  expect(names).toContain("checkpoint-kit-lesson-11/exercises/lesson-11/serde/index.ts");
  expect(names.filter((n) => /node_modules|\.checkpoint-kit|submission\.tgz/.test(n))).toEqual([]);
  const graded = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "serde", "--submission", file, "--report", join(work, "alice.json")], {
    cwd: KIT_ROOT,
    encoding: "utf8",
    env: candidateEnv(),
    timeout: 300_000,
  });
  expect(graded.status, graded.stderr).toBe(0);
  const report = parseReport(readFileSync(join(work, "alice.json"), "utf8"));
  expect(report.units[0]!.tier).toBe("excellent");
  expect(report.tests.some((t) => t.visibility === "hidden")).toBe(true);
}, 300_000);
