/**
 * A learner's first hour, end to end through `npm run grade`: a syntax error
 * and coloured console output (no ANSI anywhere with NO_COLOR, the code frame
 * once, the learner's output under the check it came from, capped), code that
 * passes its checks but does not type-check (capped at adequate), `list`
 * answering from the last grading, and Ctrl-C stopping every unit at once.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { parseReport } from "../kit/grading/report.ts";
import { unitPaths } from "../kit/manifest.ts";

mkdirSync(join(KIT_ROOT, ".grading"), { recursive: true });
const root = mkdtempSync(join(KIT_ROOT, ".grading", "first-hour-")); // an exercises tree inside the kit
const stateDir = mkdtempSync(join(tmpdir(), "ck-first-hour-state-"));
const out = mkdtempSync(join(tmpdir(), "ck-first-hour-"));
afterAll(() => [root, stateDir, out].forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const ESC = /\u001b/;

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && k !== "INIT_CWD" && k !== "CHECKPOINT_KIT_SEED"));
  return { ...clean, NO_COLOR: "1", FORCE_COLOR: undefined, CHECKPOINT_KIT_EXERCISES_ROOT: root, CHECKPOINT_KIT_STATE_DIR: stateDir, ...extra };
}

function cli(script: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const run = spawnSync(process.execPath, ["--import", "tsx", `kit/cli/${script}.ts`, ...args], { cwd: KIT_ROOT, encoding: "utf8", env: env(extra), timeout: 300_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function exercise(unit: string, from: string): string {
  const dir = join(root, "lesson-11", unit);
  rmSync(dir, { recursive: true, force: true });
  cpSync(from, dir, { recursive: true, filter: (p) => !p.endsWith(".md") });
  return join(dir, "index.ts");
}

test("a syntax error and coloured console output: no ANSI in the output or the reports, the frame once, output under its check, capped", () => {
  const file = exercise("serde", unitPaths("lesson-11", "serde").starter);
  // The learner prints (in colour) from inside dumpsTyped, then breaks the file's syntax.
  const source = readFileSync(file, "utf8").replace(
    'throw new SerdeError("UNSUPPORTED_VALUE", "TODO: implement dumpsTyped");',
    'console.log("\\u001b[31m" + "debug ".repeat(200) + "\\u001b[0m"); throw new SerdeError("UNSUPPORTED_VALUE", "TODO: implement dumpsTyped");',
  );
  writeFileSync(file, source);
  const printing = cli("grade", ["lesson-11", "serde", "--json", join(out, "printing.json")]);
  expect(printing.code, printing.stderr).toBe(0);
  const report = parseReport(readFileSync(join(out, "printing.json"), "utf8"));
  const withOutput = report.units[0]!.tests.filter((t) => t.output);
  expect(withOutput.length, JSON.stringify(report.units[0]!.tests.map((t) => t.name))).toBeGreaterThan(0);
  for (const t of withOutput) {
    expect(t.output!.length).toBeLessThanOrEqual(500);
    expect(t.output).toContain("debug debug");
    expect(t.output).not.toMatch(ESC);
  }
  expect(printing.stdout).toContain("your output: debug debug");

  appendFileSync(file, "\nexport const broken = (;\n");
  const junit = join(out, "broken.xml");
  const broken = cli("grade", ["lesson-11", "serde", "--verbose", "--report", join(out, "broken.json"), "--junit", junit]);
  expect(broken.code, broken.stderr).toBe(0);
  for (const text of [broken.stdout, broken.stderr, readFileSync(join(out, "broken.json"), "utf8"), readFileSync(junit, "utf8")]) expect(text).not.toMatch(ESC);
  // The load error (with its code frame, when the compiler gives one) once, not once per check.
  const loadError = broken.stdout.split("\n").find((line) => /does not compile|threw while it was being imported|Unexpected/.test(line))!;
  expect(loadError, broken.stdout).toBeTruthy();
  expect(broken.stdout.split(loadError).length - 1).toBe(1);
  const lines = broken.stdout.split("\n");
  expect(lines[1]).toContain("type errors"); // type errors first, with file:line
  expect(lines[2]).toMatch(/^\s+exercises\/lesson-11\/serde\/index\.ts:\d+:\d+ - error TS/);
}, 600_000);

test("checks that pass on code that does not type-check: adequate, with the type errors first and named as the reason", () => {
  const file = exercise("serde", unitPaths("lesson-11", "serde").reference);
  appendFileSync(file, '\nconst typeError: number = "not a number";\nvoid typeError;\n');
  const run = cli("grade", ["lesson-11", "serde", "--report", join(out, "typed.json")]);
  expect(run.code, run.stderr).toBe(0);
  const unit = parseReport(readFileSync(join(out, "typed.json"), "utf8")).units[0]!;
  expect(unit.tests.every((t) => t.status === "pass"), JSON.stringify(unit.tests.filter((t) => t.status !== "pass"))).toBe(true);
  expect(unit.tier).toBe("adequate");
  expect(unit.type_errors?.[0]).toMatch(/^exercises\/lesson-11\/serde\/index\.ts:\d+:\d+ - error TS2322/);
  expect(run.stdout).toMatch(/next: fix the type errors above: they are why this unit is adequate/);
  expect(run.stdout).not.toContain("solutions/lesson-11/serde/"); // not excellent: no reference yet

  // `list` answers from that grading, without regrading.
  const list = cli("list", ["lesson-11"]);
  expect(list.code, list.stderr).toBe(0);
  expect(list.stdout).toMatch(/1\. serde\s+adequate\s+\d+\/100/);
  expect(list.stdout).toContain("1 type error (capped at adequate)");
  expect(list.stdout).toMatch(/2\. scan-indexing\s+not graded yet/);
  expect(list.stdout).toContain("work on: npm run grade lesson-11 serde -- --watch");
}, 600_000);

/** Processes whose parent is `pid`, as [pid, process group]. */
function children(pid: number): Array<[number, number]> {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name): Array<[number, number]> => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(fields[1]) === pid ? [[Number(name), Number(fields[2])]] : [];
      } catch {
        return [];
      }
    });
}

/** Whether any process of the group still runs (a zombie waiting for init to reap it does not). */
function groupAlive(pgid: number): boolean {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .some((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(fields[2]) === pgid && fields[0] !== "Z";
      } catch {
        return false;
      }
    });
}

test.skipIf(process.platform !== "linux")("Ctrl-C stops every unit process at once and exits 130", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "--concurrency", "3"], {
    cwd: KIT_ROOT,
    env: { ...env(), CHECKPOINT_KIT_EXERCISES_ROOT: undefined },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const started = Date.now();
  let groups: number[] = [];
  while (Date.now() - started < 120_000) {
    groups = children(child.pid!).filter(([pid, pgid]) => pid === pgid).map(([, pgid]) => pgid);
    if (groups.length >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(groups.length, "unit processes should have started").toBeGreaterThanOrEqual(2);
  const interrupted = Date.now();
  child.kill("SIGINT");
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect(code).toBe(130);
  expect(Date.now() - interrupted).toBeLessThan(10_000);
  expect(stderr).toMatch(/interrupted: stopped \d+ grading process/);
  await new Promise((r) => setTimeout(r, 300));
  expect(groups.filter(groupAlive)).toEqual([]);
}, 180_000);
