/**
 * "Worth a look": constructs in a submission that an interviewer would read
 * twice (it reads its environment, starts processes, opens the VM or the
 * inspector, looks at /proc, names the kit's solutions or graders, talks to the
 * test runner). Reported with file:line beside the tier; it changes no grade.
 * The sandbox is what keeps such code harmless; this only says where to look.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

export interface Finding {
  file: string;
  line: number;
  what: string;
  text: string;
}

const PATTERNS: Array<[RegExp, string]> = [
  [/\bprocess\.env\b/, "reads process.env"],
  [/\bprocess\.(argv|execArgv|ppid|binding|kill|getuid)\b/, "inspects or signals processes"],
  [/["'](node:)?(child_process|worker_threads|cluster)["']/, "starts processes or threads"],
  [/["'](node:)?(vm|inspector|v8)["']/, "uses the VM, the inspector or V8 internals"],
  [/\/proc\b/, "looks at /proc"],
  [/\b(eval|Function)\s*\(/, "evaluates code from a string"],
  [/\b(solutions|graders|calibration)\//, "names the kit's solutions, graders or calibration answers"],
  [/\b(vitest|__vitest\w*|expect\.extend|CHECKPOINT_KIT\w*|VITEST\w*)\b/, "refers to the test runner or the kit's grading"],
];

const SOURCE = /\.(ts|mts|cts|js|mjs|cjs|tsx|jsx)$/;
const MAX_FINDINGS = 30;

function sourcesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...sourcesUnder(path));
    else if (SOURCE.test(name) && stat.size < 2_000_000) out.push(path);
  }
  return out.sort();
}

/** Findings in the submission's unit folder; `shownAs` is the folder's name in the report (e.g. exercises/lesson-11/serde). */
export function worthALook(dir: string, shownAs: string): Finding[] {
  const findings: Finding[] = [];
  let files: string[];
  try {
    files = sourcesUnder(dir);
  } catch {
    return findings;
  }
  for (const file of files) {
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((text, index) => {
      if (findings.length >= MAX_FINDINGS) return;
      const code = text.replace(/\/\/.*$/, "");
      for (const [pattern, what] of PATTERNS) {
        if (pattern.test(code)) findings.push({ file: join(shownAs, relative(dir, file)), line: index + 1, what, text: text.trim().slice(0, 160) });
      }
    });
  }
  return findings;
}
