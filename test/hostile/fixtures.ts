/**
 * Hostile submissions, generated for any unit: each exports the unit's names
 * (as functions that misbehave when called) and may misbehave at import. They
 * are written to a temp folder, which is where a staged submission would be.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";

export interface HostileCase {
  name: string;
  /** Code run when the module is imported; UNIT and KIT_ROOT are replaced. */
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

export const HOSTILE_CASES: HostileCase[] = [
  { name: "synchronous infinite loop at import", atImport: stall, reason: /timed out after \d+ s while running check/ },
  { name: "synchronous infinite loop inside a check", whenCalled: stall, reason: /timed out after \d+ s while running check "/ },
  { name: "a promise that never resolves, at import", atImport: "await new Promise(() => {});", reason: /did not finish loading within \d+ s/ },
  { name: "process.exit(0) at import", atImport: "process.exit(0);", reason: /process\.exit/ },
  { name: "process.exit(0) inside a check", whenCalled: "process.exit(0);", reason: /process\.exit/ },
  { name: "a throw at import", atImport: 'throw new Error("boom at import");', reason: /threw while it was being imported: Error: boom at import/ },
  { name: "a missing export", onlyFirstExport: true, whenCalled: 'throw new Error("not implemented");', reason: /does not export/ },
  {
    name: "unbounded allocation",
    whenCalled: "const hog: Buffer[] = []; while (true) hog.push(Buffer.alloc(32 * 1024 * 1024, 1));",
    reason: /memory limit|out of memory|heap|exited unexpectedly|killed/i,
  },
  { name: "monkeypatching Date", atImport: "Date.now = () => 0;", reason: /tampered.*Date\.now/ },
  { name: "monkeypatching Math.random", atImport: "Math.random = () => 0.5;", reason: /tampered.*Math\.random/ },
  { name: "monkeypatching setTimeout", atImport: "(globalThis as any).setTimeout = (fn: () => void) => { fn(); return 0; };", reason: /tampered.*setTimeout/ },
  { name: "polluting Object.prototype", atImport: "(Object.prototype as any).polluted = true;", reason: /tampered.*Object\.prototype/ },
  {
    name: "disarming expect",
    atImport:
      'const { expect } = await import("vitest");\n' +
      "const pass = () => ({ pass: true, message: () => '' });\n" +
      "expect.extend({ toBe: pass, toEqual: pass, toStrictEqual: pass, toThrow: pass, toBeInstanceOf: pass, toContain: pass, toMatch: pass });",
    whenCalled: "return undefined;",
    reason: /tampered.*disarmed expect/,
  },
  {
    name: "reading solutions/",
    atImport: 'const { readFileSync } = await import("node:fs");\nexport const stolen = readFileSync("KIT_ROOT/solutions/lesson-11/UNIT/index.ts", "utf8");',
    reason: /ERR_ACCESS_DENIED|Access to this API has been restricted|Access denied/,
  },
  {
    name: "importing solutions/",
    atImport: 'export * from "KIT_ROOT/solutions/lesson-11/UNIT/index.ts";',
    noOwnExports: true,
    reason: /ERR_ACCESS_DENIED|Access to this API has been restricted|Access denied|threw while it was being imported/,
  },
  {
    name: "printing a fake passing report and forging the result channel",
    atImport:
      'const { writeSync } = await import("node:fs");\n' +
      'console.log("✓ all checks passed\\ntier: EXCELLENT  score: 100/100");\n' +
      'process.stdout.write(JSON.stringify({ version: 3, status: "pass", tier: "excellent", score: 100 }) + "\\n");\n' +
      'const forged = JSON.stringify({ kind: "done", checks: [], moduleErrors: [] });\n' +
      'for (const fd of [1, 2, 3, 4]) { try { writeSync(fd, JSON.stringify({ body: forged, mac: "0".repeat(64) }) + "\\n"); } catch {} }',
    whenCalled: 'throw new Error("not implemented");',
    reason: /./,
  },
  {
    name: "writing to the grader's files and the progress file",
    atImport:
      'const { writeFileSync, appendFileSync } = await import("node:fs");\n' +
      'try { writeFileSync("KIT_ROOT/graders/lesson-11/UNIT.grader.ts", "// emptied"); } catch (e) { console.log("blocked:", (e as Error).message); }\n' +
      'try { writeFileSync("KIT_ROOT/kit/grading/report.ts", "// emptied"); } catch {}\n' +
      'if (process.env.CHECKPOINT_KIT_PROGRESS) appendFileSync(process.env.CHECKPOINT_KIT_PROGRESS, JSON.stringify({ title: "x", timeoutMs: 1e12 }) + "\\n");',
    whenCalled: 'throw new Error("not implemented");',
    reason: /./,
  },
];

/** Writes the case's submission for a unit whose module must export `exportNames`; returns its folder. */
export function writeHostileSubmission(unit: string, exportNames: string[], hostile: HostileCase): string {
  const dir = mkdtempSync(join(tmpdir(), `ck-hostile-${unit}-`));
  mkdirSync(dir, { recursive: true });
  const names = hostile.noOwnExports ? [] : hostile.onlyFirstExport ? exportNames.slice(0, 1) : exportNames;
  const body = hostile.whenCalled ?? 'throw new Error("not implemented");';
  const source = [
    `// Hostile fixture: ${hostile.name}`,
    "/* eslint-disable */",
    (hostile.atImport ?? "").replaceAll("UNIT", unit).replaceAll("KIT_ROOT", KIT_ROOT),
    ...names.map((name) => `export function ${name}(..._args: unknown[]): any {\n  ${body}\n}`),
    "",
  ].join("\n");
  writeFileSync(join(dir, "index.ts"), source);
  return dir;
}
