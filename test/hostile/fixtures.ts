/**
 * Hostile submissions, generated for any unit: each exports the unit's names
 * (as functions that misbehave when called) and may misbehave at import. They
 * are written where a staged submission would be: a folder inside the kit.
 *
 * MARKER appears in the command line of every process a case starts, so the
 * suite can prove that none of them outlives grading.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";

export const MARKER = "ck7hostile";

export interface HostileCase {
  name: string;
  /** Code run when the module is imported; UNIT, KIT_ROOT and MARKER are replaced. */
  atImport?: string;
  /** Code run when any export is called (the body of each exported function). */
  whenCalled?: string;
  /** Export only the first name (a missing-export submission). */
  onlyFirstExport?: boolean;
  /** Export nothing of its own: everything comes from `atImport` (e.g. a re-export of the reference). */
  noOwnExports?: boolean;
  /** What the unit's report must say (message of the unit or of a check). */
  reason: RegExp;
}

const stall = "while (true) {}";
const notImplemented = 'throw new Error("not implemented");';

/** The cases any learner code may try, whatever the unit: run against every unit. */
export const ESCAPE_CASES: HostileCase[] = [
  {
    name: "forging results through Vitest's worker channel",
    atImport:
      "const worker = (globalThis as any).__vitest_worker__;\n" +
      'if (worker?.rpc) { const rpc = worker.rpc; worker.rpc = new Proxy(rpc, { get: (t, p) => p === "onTaskUpdate" ? (packs: any[]) => t.onTaskUpdate(packs.map(([id, r, m]: any) => [id, r && { ...r, state: "pass", errors: [] }, m])) : t[p] }); }\n' +
      'console.log("vitest worker visible:", Boolean(worker));',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
  {
    name: "disarming expect and node:assert",
    atImport:
      'try { const { expect } = await import("vitest"); const pass = () => ({ pass: true, message: () => "" }); expect.extend({ toBe: pass, toEqual: pass, toStrictEqual: pass, toThrow: pass, toBeInstanceOf: pass }); } catch (e) { console.log("no vitest here:", (e as Error).message); }\n' +
      'const assert = (await import("node:assert")).default as any; try { assert.equal = () => undefined; assert.deepStrictEqual = () => undefined; } catch {}\n' +
      'const util = await import("node:util"); try { (util as any).isDeepStrictEqual = () => true; } catch {}',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
  {
    name: "a child process that copies the reference solution into the submission",
    atImport:
      'const { execSync } = await import("node:child_process");\n' +
      'try { console.log(execSync("cat KIT_ROOT/solutions/lesson-11/UNIT/index.ts; ls KIT_ROOT/graders/lesson-11/UNIT/calibration", { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).slice(0, 80)); } catch (e) { console.log("blocked:", (e as Error).message.slice(0, 120)); }\n' +
      'try { execSync("cp KIT_ROOT/solutions/lesson-11/UNIT/index.ts KIT_ROOT/graders/lesson-11/MARKER-probe.ts"); } catch {}\n' +
      'try { execSync("touch KIT_ROOT/solutions/MARKER-probe KIT_ROOT/graders/MARKER-probe"); } catch {}',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
  {
    name: "reading other processes' memory and descriptors through /proc",
    atImport:
      'const { readdirSync, readFileSync } = await import("node:fs");\n' +
      'let seen = 0; for (const pid of readdirSync("/proc").filter((p) => /^\\d+$/.test(p))) { try { readFileSync(`/proc/${pid}/environ`); seen++; readdirSync(`/proc/${pid}/fd`); } catch {} }\n' +
      'console.log("processes visible:", seen);',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
  {
    name: "killing every process it can reach",
    whenCalled: 'try { process.kill(-1, "SIGKILL"); } catch {}\n  for (let pid = 2; pid < 4_000_000 && pid < 40_000; pid++) { try { process.kill(pid, "SIGKILL"); } catch {} }\n  ' + notImplemented,
    reason: /the process running your code (was killed|exited)|not implemented/,
  },
  {
    name: "processes that try to outlive grading (sleepers, detached children, a listener, a memory hog)",
    atImport:
      'const { spawn } = await import("node:child_process");\n' +
      'for (let i = 0; i < 50; i++) spawn("/bin/sh", ["-c", "sleep 600 # MARKER"], { detached: i % 2 === 0, stdio: "ignore" }).unref();\n' +
      'spawn(process.execPath, ["-e", "require(\'net\').createServer().listen(0, \'127.0.0.1\'); setInterval(() => {}, 1000) // MARKER"], { detached: true, stdio: "ignore" }).unref();\n' +
      'spawn(process.execPath, ["-e", "const k = []; for (let i = 0; i < 64; i++) k.push(Buffer.alloc(16 * 2 ** 20, 1)); setInterval(() => k.length, 1000) // MARKER"], { detached: true, stdio: "ignore" }).unref();',
    whenCalled: notImplemented,
    reason: /not implemented|memory/,
  },
  {
    name: "writing a fake report to its output and to every descriptor (its own channel too)",
    atImport:
      'const { writeSync } = await import("node:fs");\n' +
      'console.log("✓ all checks passed\\ntier: EXCELLENT  score: 100/100");\n' +
      'process.stdout.write(JSON.stringify({ version: 3, status: "pass", tier: "excellent", score: 100 }) + "\\n");\n' +
      'const forged = JSON.stringify({ kind: "done", checks: [], moduleErrors: [] });\n' +
      'for (let fd = 1; fd < 12; fd++) { try { writeSync(fd, JSON.stringify({ body: forged, mac: "0".repeat(64) }) + "\\n"); } catch {} }',
    whenCalled: notImplemented,
    // At import the channel it corrupts is the one its import would answer on: the load times out instead.
    reason: /not implemented|stopped answering|did not finish loading/,
  },
];

/** Ways a submission breaks or misbehaves in its own process: run against two units. */
export const HOSTILE_CASES: HostileCase[] = [
  { name: "synchronous infinite loop at import", atImport: stall, reason: /kept its process busy|did not finish loading within \d+ s/ },
  { name: "synchronous infinite loop inside a check", whenCalled: stall, reason: /kept its process busy and never returned/ },
  { name: "a promise that never resolves, at import", atImport: "await new Promise(() => {});", reason: /did not finish loading within \d+ s/ },
  { name: "a promise that never resolves, inside a check", whenCalled: "return new Promise(() => {});", reason: /no progress: a call into your code never settled/ },
  { name: "process.exit(0) at import", atImport: "process.exit(0);", reason: /exited with code 0/ },
  { name: "process.exit(0) inside a check", whenCalled: "process.exit(0);", reason: /exited with code 0/ },
  { name: "a throw at import", atImport: 'throw new Error("boom at import");', reason: /threw while it was being imported: Error: boom at import/ },
  { name: "a missing export", onlyFirstExport: true, whenCalled: notImplemented, reason: /does not export/ },
  { name: "a syntax error", atImport: "const = ;", reason: /does not compile/ },
  {
    name: "unbounded allocation",
    whenCalled: "const hog: Buffer[] = []; while (true) hog.push(Buffer.alloc(32 * 1024 * 1024, 1));",
    reason: /memory|heap|killed|exited with code/i,
  },
  { name: "monkeypatching Date, Math.random and timers", atImport: "Date.now = () => 0; Math.random = () => 0.5; (globalThis as any).setTimeout = (fn: () => void) => { fn(); return 0; };", whenCalled: notImplemented, reason: /not implemented/ },
  { name: "polluting Object.prototype", atImport: "(Object.prototype as any).polluted = true;", whenCalled: notImplemented, reason: /not implemented/ },
  {
    name: "reading solutions/ directly",
    atImport: 'const { readFileSync } = await import("node:fs");\nlet stolen = ""; try { stolen = readFileSync("KIT_ROOT/solutions/lesson-11/UNIT/index.ts", "utf8"); } catch (e) { console.log((e as Error).message); }\nif (stolen) console.log("read", stolen.length);',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
  { name: "importing solutions/", atImport: 'export * from "KIT_ROOT/solutions/lesson-11/UNIT/index.ts";', noOwnExports: true, reason: /outside your unit's folder/ },
  {
    name: "writing to the grader's files",
    atImport:
      'const { writeFileSync } = await import("node:fs");\n' +
      'for (const f of ["KIT_ROOT/graders/lesson-11/UNIT.grader.ts", "KIT_ROOT/kit/grading/report.ts", "KIT_ROOT/package.json"]) { try { writeFileSync(f, "// emptied"); } catch (e) { console.log("blocked:", (e as Error).message); } }',
    whenCalled: notImplemented,
    reason: /not implemented/,
  },
];

/** Writes the case's submission for a unit whose module must export `exportNames`; returns its folder. */
export function writeHostileSubmission(unit: string, exportNames: string[], hostile: HostileCase): string {
  const staging = join(KIT_ROOT, "node_modules", ".cache", "hostile");
  mkdirSync(staging, { recursive: true });
  const dir = mkdtempSync(join(staging, `${unit}-`));
  const names = hostile.noOwnExports ? [] : hostile.onlyFirstExport ? exportNames.slice(0, 1) : exportNames;
  const body = hostile.whenCalled ?? notImplemented;
  const source = [
    `// Hostile fixture: ${hostile.name}`,
    "/* eslint-disable */",
    (hostile.atImport ?? "").replaceAll("UNIT", unit).replaceAll("KIT_ROOT", KIT_ROOT).replaceAll("MARKER", MARKER),
    ...names.map((name) => `export function ${name}(..._args: unknown[]): any {\n  ${body}\n}`),
    "",
  ].join("\n");
  writeFileSync(join(dir, "index.ts"), source);
  return dir;
}
