/**
 * The learner process: values and errors cross the channel faithfully, and the
 * process sees nothing of the grading side (environment, argv, paths, other
 * processes, the network, the reference solutions). With CI=true the OS sandbox
 * (bubblewrap) is mandatory, so these run confined there.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { compileLearner } from "../kit/sandbox/compile.ts";
import { detectSandbox, LearnerProcess, pathInLearner, type SandboxMode } from "../kit/sandbox/learner.ts";
import { KIT_ROOT } from "../graders/harness/implementation.ts";

const found = detectSandbox();
if (process.env.CI === "true" && found.mode !== "bwrap") throw new Error(`CI=true but there is no OS sandbox: ${found.reason}; .ci/run must install bubblewrap`);
const modes: SandboxMode[] = found.mode === "bwrap" ? ["bwrap", "none"] : ["none"];

const PROBE = `
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
export class Money { constructor(public cents: bigint, public currency: string) {} format() { return this.currency + " " + this.cents; } }
export class AppError extends Error { code = "E_APP"; constructor(message: string, public detail: Record<string, unknown>) { super(message); this.name = "AppError"; } }
export const VERSION = 3;
export function echo<T>(value: T): T { return value; }
export async function later<T>(value: T, ms = 5): Promise<T> { await new Promise((r) => setTimeout(r, ms)); return value; }
export function fail(message: string): never { throw new AppError(message, { when: new Date(0) }); }
export async function* count(n: number) { for (let i = 0; i < n; i++) yield i; }
export async function callBack(fn: (x: number) => Promise<number>) { return (await fn(20)) + 1; }
export function isMoney(value: unknown) { return value instanceof Money; }
export function environment() {
  const tryRead = (path: string) => { try { return readFileSync(path, "utf8").slice(0, 40); } catch (e) { return (e as NodeJS.ErrnoException).code; } };
  const tryWrite = (path: string) => { try { writeFileSync(path, "x"); return "written"; } catch (e) { return (e as NodeJS.ErrnoException).code; } };
  return {
    env: JSON.stringify(process.env),
    argv: process.argv.join(" "),
    execArgv: process.execArgv.join(" "),
    cwd: process.cwd(),
    uid: process.getuid?.(),
    pids: readdirSync("/proc").filter((name) => /^\\d+$/.test(name)).length,
    solutions: tryRead(KIT_SOLUTION),
    checksFile: tryRead(KIT_GRADER),
    writeKit: tryWrite(KIT_FILE),
    // A stack trace names every frame's source: the learner's own files, and the kit's code that called it.
    stack: new Error("probe").stack,
  };
}
/** What a path the trusted side hands over looks like from inside, and whether the file lands where it said. */
export function whereIs(path: string) {
  writeFileSync(path, "written inside");
  return { underTmp: path.startsWith(tmpdir() + "/"), cwd: JSON.stringify([process.cwd()]), seen: JSON.stringify([path]) };
}
export function reach(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => { socket.destroy(); resolve("connected"); });
    socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    setTimeout(() => resolve("timeout"), 2000);
  });
}
`
  .replace("KIT_SOLUTION", JSON.stringify(join(KIT_ROOT, "solutions/lesson-11/serde/index.ts")))
  .replace("KIT_GRADER", JSON.stringify(join(KIT_ROOT, "graders/lesson-11/serde.grader.ts")))
  .replace("KIT_FILE", JSON.stringify(join(KIT_ROOT, "probe-was-here.txt")));

// The probe lives inside the kit (as a staged submission does), under an opaque name.
const unitDir = mkdtempSync(join(KIT_ROOT, "node_modules", ".cache", "probe-"));
let built: Awaited<ReturnType<typeof compileLearner>>;
const scratch = mkdtempSync(join(tmpdir(), "data-"));
const started: LearnerProcess[] = [];

beforeAll(async () => {
  mkdirSync(unitDir, { recursive: true });
  writeFileSync(join(unitDir, "index.ts"), PROBE);
  built = await compileLearner({ implementationDir: unitDir });
});
afterAll(async () => {
  await Promise.all(started.map((l) => l.stop()));
  rmSync(unitDir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
  rmSync(join(KIT_ROOT, "probe-was-here.txt"), { force: true });
});

async function start(mode: SandboxMode) {
  const learner = await LearnerProcess.start({ build: built, scratch, sandbox: mode });
  started.push(learner);
  const api = (await learner.import(pathInLearner(built, built.unit, mode))) as any;
  return { learner, api };
}

describe.each(modes)("learner process (%s)", (mode) => {
  test("values cross as structured clones, with cycles, holes and null prototypes", async () => {
    const { api } = await start(mode);
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    // eslint-disable-next-line no-sparse-arrays
    const value = { d: new Date(5), m: new Map<unknown, unknown>([[1n, new Set([undefined, null])]]), bytes: new Uint8Array([0, 255]), nums: [Number.NaN, -0, Infinity], sparse: [1, , 3], bare: Object.assign(Object.create(null), { a: 1 }), proto: JSON.parse('{"__proto__": {"x": 1}}'), cyclic };
    const back = await api.echo(value);
    expect(back.cyclic.self).toBe(back.cyclic);
    delete back.cyclic;
    const { cyclic: _, ...rest } = value;
    expect(back).toStrictEqual(rest);
    expect(Object.hasOwn(back.proto, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(back.bare)).toBe(null);
    expect(api.VERSION).toBe(3);
    expect(await api.later("x")).toBe("x");
  });

  test("classes and instances cross as handles; errors keep their class, code and fields", async () => {
    const { api } = await start(mode);
    const money = await new api.Money(5n, "EUR");
    expect(money instanceof api.Money).toBe(true);
    expect(money.cents).toBe(5n);
    expect(await money.format()).toBe("EUR 5");
    expect(await api.isMoney(money)).toBe(true); // a handle passed back arrives as the real object
    const error = await api.fail("no").catch((e: unknown) => e);
    expect(error instanceof api.AppError).toBe(true);
    expect(error instanceof Error).toBe(true);
    expect(error.message).toBe("no");
    expect(error.name).toBe("AppError");
    expect(error.code).toBe("E_APP");
    expect(error.detail.when).toEqual(new Date(0));
    expect(await new api.Money(1n, "USD").then((m: object) => m instanceof api.AppError)).toBe(false);
  });

  test("async generators iterate with for await, and trusted callbacks are called back", async () => {
    const { api } = await start(mode);
    const seen: number[] = [];
    for await (const n of api.count(4)) seen.push(n as number);
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(await api.callBack(async (x: number) => x * 2)).toBe(41);
  });

  test("the process sees nothing that names the kit, the grader or a check", async () => {
    const { api } = await start(mode);
    const seen = await api.environment();
    const everything = JSON.stringify(seen);
    expect(seen.stack).toContain("index.ts"); // source maps still point at the learner's own file
    for (const word of ["CHECKPOINT_KIT", "VITEST", "checkpoint-kit", "grader", "calibration", "lesson-11", "serde", "harness", "fixture", "sandbox", "probe-"]) {
      if (mode === "none" && (word === "checkpoint-kit" || word === "serde" || word === "lesson-11" || word === "grader")) continue; // paths of an unconfined process are the kit's own
      expect(everything, `the learner process can see "${word}"`).not.toContain(word);
    }
    expect(JSON.parse(seen.env as string)).not.toHaveProperty("CI");
    expect(JSON.parse(seen.env as string).NODE_ENV).toBe("production");
    if (mode === "bwrap") {
      expect(seen.solutions).toBe("ENOENT");
      expect(seen.checksFile).toBe("ENOENT");
      expect(seen.writeKit).toMatch(/ENOENT|EROFS|EACCES/);
      expect(seen.pids, "it must see only its own processes").toBeLessThanOrEqual(3);
      if (process.getuid?.() === 0) expect(seen.uid).toBe(65534);
    }
  });

  if (mode === "bwrap") test("paths of the data folder look like a service's own, not a temporary folder, and still reach the same files", async () => {
    const { api } = await start(mode);
    const file = join(scratch, "orders.db");
    const seen = await api.whereIs(file);
    expect(seen.underTmp, "a data path inside the sandbox lies under its tmpdir()").toBe(false);
    for (const text of [seen.seen, seen.cwd]) {
      expect(text).not.toContain(tmpdir());
      expect(text).not.toContain("data-");
    }
    expect(readFileSync(file, "utf8")).toBe("written inside");
    expect(await api.echo(file), "a path that went in comes back as the trusted side's").toBe(file);
  });

  if (mode === "bwrap") test("it cannot reach the grading side's loopback", async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const { api } = await start(mode);
      expect(await api.reach(port)).toMatch(/ECONNREFUSED|ENETUNREACH|timeout/);
    } finally {
      server.close();
    }
  });

  test("a killed process fails the calls in flight with what happened", async () => {
    const { learner, api } = await start(mode);
    const pending = api.later("never", 30_000);
    learner.kill("SIGKILL");
    await expect(pending).rejects.toThrow(/killed by SIGKILL/);
  });
});

test("an import of the reference solutions is refused at compile time", async () => {
  const dir = mkdtempSync(join(KIT_ROOT, "node_modules", ".cache", "probe-"));
  try {
    writeFileSync(join(dir, "index.ts"), `export * from ${JSON.stringify(join(KIT_ROOT, "solutions/lesson-11/serde/index.ts"))};\n`);
    await expect(compileLearner({ implementationDir: dir })).rejects.toThrow(/outside your unit's folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without an OS sandbox, --submission refuses and names --allow-unsandboxed (exit 2)", async () => {
  const { spawnSync } = await import("node:child_process");
  const { mkdtempSync, cpSync, mkdirSync, symlinkSync } = await import("node:fs");
  // A PATH with git but no bwrap: what a machine without bubblewrap looks like to the kit.
  const bin = mkdtempSync(join(tmpdir(), "bin-"));
  for (const tool of ["git", "tar"]) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found) symlinkSync(found, join(bin, tool));
  }
  const submission = mkdtempSync(join(tmpdir(), "sub-"));
  mkdirSync(join(submission, "exercises", "lesson-11"), { recursive: true });
  cpSync(join(KIT_ROOT, "exercises", "lesson-11", "serde"), join(submission, "exercises", "lesson-11", "serde"), { recursive: true });
  const env = { ...process.env, PATH: bin, CI: "" };
  const run = spawnSync(process.execPath, ["--import", "tsx", "kit/cli/grade.ts", "lesson-11", "serde", "--submission", submission], { cwd: KIT_ROOT, env, encoding: "utf8", timeout: 120_000 });
  expect(run.status, run.stderr).toBe(2);
  expect(run.stderr).toMatch(/no OS sandbox: bubblewrap \(bwrap\) is not installed/);
  expect(run.stderr).toMatch(/--allow-unsandboxed/);
  expect(run.stderr).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
  rmSync(bin, { recursive: true, force: true });
  rmSync(submission, { recursive: true, force: true });
}, 150_000);
