// npm run grade as a user meets it: exit codes, readable and JSON reports, JUnit, clear errors,
// options npm swallowed, paths relative to where the user is, replaying a seed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { parseReport } from "../kit/grading/report.ts";

const stateDir = mkdtempSync(join(tmpdir(), "ck-cli-state-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** The kit's own tests may run under `npm test`: the npm variables of that run must not look like the user's. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && k !== "INIT_CWD" && k !== "CHECKPOINT_KIT_SEED"));
  return { ...env, NO_COLOR: "1", FORCE_COLOR: undefined, CHECKPOINT_KIT_STATE_DIR: stateDir };
}

function runGrade(env: NodeJS.ProcessEnv, args: string[]) {
  const result = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", ...args], {
    cwd: KIT_ROOT,
    encoding: "utf8",
    env: { ...cleanEnv(), ...env },
    timeout: 240_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const grade = Object.assign((...args: string[]) => runGrade({}, args), {
  withEnv: (env: NodeJS.ProcessEnv) => (...args: string[]) => runGrade(env, args),
});

describe("usage errors exit 2 and say what exists", { timeout: 180_000 }, () => {
  test.concurrent("an unknown lesson lists the lessons", () => {
    const { code, stderr } = grade("lesson-99");
    expect(code).toBe(2);
    expect(stderr).toContain('Unknown lesson "lesson-99"');
    expect(stderr).toContain("lesson-11");
  });
  test.concurrent("an unknown unit lists the units", () => {
    const { code, stderr } = grade("lesson-11", "sered");
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown unit "sered".*serde, scan-indexing, partial-recovery, locking, hitl/);
  });
  test.concurrent("a bad option value names the option, never a zod field", () => {
    const tier = grade("lesson-11", "--min-tier", "great");
    expect(tier.code).toBe(2);
    expect(tier.stderr).toContain("--min-tier takes needs-improvement, adequate or excellent");
    const seed = grade("lesson-11", "--seed", "x", "--concurrency", "0", "--time-limit", "soon");
    expect(seed.code).toBe(2);
    expect(seed.stderr).toContain("--seed takes a whole number");
    expect(seed.stderr).toContain("--concurrency takes a whole number ≥ 1");
    expect(seed.stderr).toContain("--time-limit takes a number of seconds > 0");
    for (const { stderr } of [tier, seed]) expect(stderr).not.toMatch(/minTier|timeLimit|NaN|received|Invalid option/);
  });
  test.concurrent("--help prints the options on stdout and exits 0", () => {
    const { code, stdout } = grade("--help");
    expect(code).toBe(0);
    expect(stdout).toContain("Usage: npm run grade <lesson> [unit ...] -- [options]");
    expect(stdout).toContain("--verbose");
  });
  test.concurrent("options npm swallowed (no `--`) are caught: did you mean `-- --solutions`?", () => {
    const { code, stderr, stdout } = grade.withEnv({ npm_lifecycle_event: "grade", npm_config_solutions: "true" })("lesson-11", "serde");
    expect(code).toBe(2);
    expect(stderr).toContain("did you mean `-- --solutions`?");
    expect(stderr).toContain("npm run grade lesson-11 serde -- --solutions");
    expect(stdout).toBe(""); // nothing was graded
    const verbose = grade.withEnv({ npm_lifecycle_event: "grade", npm_config_loglevel: "verbose" })("lesson-11", "serde");
    expect(verbose.stderr).toContain("did you mean `-- --verbose`?");
  });
  test.concurrent("--json without a file under npm (whose banner goes to stdout) is refused with the commands that work", () => {
    const { code, stderr } = grade.withEnv({ npm_lifecycle_event: "grade" })("lesson-11", "--json");
    expect(code).toBe(2);
    expect(stderr).toContain("npm run grade lesson-11 -- --json report.json");
    expect(stderr).toContain("npm run --silent grade lesson-11 -- --json > report.json");
  });
  test.concurrent("relative paths are the user's: a missing submission is looked for where the command was run", () => {
    const { code, stderr } = grade.withEnv({ INIT_CWD: tmpdir() })("lesson-11", "--submission", "alice.tgz");
    expect(code).toBe(2);
    expect(stderr).toContain(`No such submission: ${join(tmpdir(), "alice.tgz")}`);
    expect(stderr).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
  });
  test.concurrent("two targets at once are refused", () => {
    const { code, stderr } = grade("lesson-11", "--solutions", "--submission", "x");
    expect(code).toBe(2);
    expect(stderr).toContain("choose one of --solutions, --submission and --submissions");
  });
});

test("--solutions --json: a report the kit's schema accepts, recording seed and versions", () => {
  const { code, stdout, stderr } = grade("lesson-11", "serde", "--solutions", "--json", "--seed", "42");
  expect(code, stderr).toBe(0);
  const report = parseReport(stdout);
  expect(report.tier).toBe("excellent");
  expect(report.units.map((u) => u.unit)).toEqual(["serde"]);
  expect(report.seed).toBe(42);
  expect(report.node_version).toBe(process.version);
  expect(report.kit_version).toMatch(/^\d+\.\d+\.\d+/);
  expect(report.status).toBe("pass");
}, 240_000);

test("the starter: plain readable output with the first failing check's hint, --min-tier and JUnit", () => {
  const junit = join(mkdtempSync(join(tmpdir(), "ck-junit-")), "report.xml");
  const { code, stdout } = grade("lesson-11", "serde", "--min-tier", "adequate", "--junit", junit);
  expect(code).toBe(1);
  expect(stdout).not.toMatch(/\u001b\[/); // piped + NO_COLOR: no escape codes
  expect(stdout).toContain("needs improvement");
  expect(stdout.split("hint:").length - 1).toBe(1); // one hint: the first failing check's
  expect(stdout).toMatch(/\d+ more failing checks: fix the first one, or add --verbose/);
  expect(stdout.split("\n").length).toBeLessThan(40);
  expect(stdout).toMatch(/read: lessons\/lesson-11\/serde\.md#[a-z0-9-]+/);
  expect(stdout).toMatch(/next: “.+” — /);
  expect(stdout).not.toContain("solutions/"); // the reference is shown only once the unit is excellent
  const xml = readFileSync(junit, "utf8");
  expect(xml).toContain('<testsuite name="lesson-11/serde"');
  expect(xml).toMatch(/<failure message="[^"]+" type="core-check-failed"><!\[CDATA\[[^\]]+\n\nhint: /);
}, 240_000);

test("--verbose: every failing check with its hint; failures print the command that replays them, and the seed it names works", () => {
  const { stdout } = grade("lesson-11", "serde", "--verbose", "--seed", "4242");
  expect(stdout.split("hint:").length - 1).toBeGreaterThan(3);
  expect(stdout).toContain("reproduce with: npm run grade lesson-11 serde -- --seed 4242");
  expect(stdout).not.toContain("CHECKPOINT_KIT_SEED=");
  expect(stdout).not.toContain("Enable verbose mode"); // fast-check's advice to its own users
  // CHECKPOINT_KIT_SEED replays too.
  const replay = grade.withEnv({ CHECKPOINT_KIT_SEED: "4242" })("lesson-11", "serde", "--verbose");
  expect(replay.stdout).toContain("seed 4242");
  const counterexample = (text: string) => /Counterexample: (.*)/.exec(text)?.[1];
  expect(counterexample(replay.stdout)).toBe(counterexample(stdout));
}, 240_000);

test("run through npm from a subfolder: the kit writes --json FILE itself, relative to that folder, and it parses", () => {
  mkdirSync(join(KIT_ROOT, ".grading"), { recursive: true });
  const where = mkdtempSync(join(KIT_ROOT, ".grading", "cwd-"));
  try {
    const run = spawnSync("npm", ["run", "grade", "lesson-11", "serde", "--", "--solutions", "--json", "out.json", "--report", "copy.json"], {
      cwd: where,
      encoding: "utf8",
      env: { ...cleanEnv(), CHECKPOINT_KIT_SEED: "99" },
      timeout: 240_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain("> checkpoint-kit@"); // npm's banner: exactly why the report never goes through stdout
    const report = parseReport(readFileSync(join(where, "out.json"), "utf8"));
    expect(report.seed).toBe(99);
    expect(report.tier).toBe("excellent");
    expect(report.tests.every((t) => t.task_id === 1 && t.test_code)).toBe(true);
    expect(existsSync(join(where, "copy.json"))).toBe(true);
    const silent = spawnSync("npm", ["run", "--silent", "grade", "lesson-11", "serde", "--", "--solutions", "--json"], { cwd: where, encoding: "utf8", env: cleanEnv(), timeout: 240_000 });
    expect(silent.status, silent.stderr).toBe(0);
    expect(parseReport(silent.stdout).tier).toBe("excellent");
  } finally {
    rmSync(where, { recursive: true, force: true });
  }
}, 300_000);

describe("every command: an unknown option or a missing value is a usage error, never a stack trace", { timeout: 120_000 }, () => {
  const commands = ["kit/cli/grade.ts", "kit/cli/list.ts", "kit/cli/hint.ts", "kit/cli/reset.ts", "kit/cli/submit.ts", "kit/cli/pack.ts", "kit/bench/run.ts"];
  const run = (script: string, args: string[]) => spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: KIT_ROOT, encoding: "utf8", env: cleanEnv(), timeout: 60_000 });
  test.concurrent.each(commands)("%s --bogus", (script) => {
    const { status, stdout, stderr } = run(script, ["--bogus"]);
    expect(status).toBe(2);
    expect(stderr).toContain("Unknown option --bogus.");
    expect(stderr).toMatch(/Usage: npm run /);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stdout).toBe("");
  });
  test.concurrent.each(commands)("%s --help", (script) => {
    const { status, stdout } = run(script, ["--help"]);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^Usage: npm run /);
  });
  test.concurrent("an option without its value names the option", () => {
    const { status, stderr } = run("kit/cli/pack.ts", ["lesson-03", "--out"]);
    expect(status).toBe(2);
    expect(stderr).toContain("--out");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
