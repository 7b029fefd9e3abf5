/**
 * Turns the engine's report into the one users get, whatever the output
 * (readable, JSON, JUnit): text from learner code and load errors loses its ANSI
 * escapes; replay instructions name the command that works; fast-check's
 * advice about its own verbose mode goes; and the Exercism results.json v3
 * fields are filled in (a top-level `message` when status is error, `task_id`
 * as the task, i.e. the unit, `output` capped at 500 characters, `test_code`).
 */
import { existsSync, readFileSync } from "node:fs";
import type TS from "typescript";
import { typescript } from "../grading/typescript.ts";
import { loadManifest, unitPaths } from "../manifest.ts";
import type { CheckResult, LessonReport, UnitResult } from "../grading/report.ts";

// CSI sequences (colours, cursor moves) and OSC sequences (links, titles).
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

export const OUTPUT_CAP = 500;

/** fast-check's own advice, addressed to fast-check users rather than learners. */
const FAST_CHECK_NOISE = [/^\s*Hint: Enable verbose mode[^\n]*\n?/gm, /^\s*Encountered failures were:\s*\n?/gm];

/** How to replay a run for one unit: the grade command with the target's option and the seed. */
export interface Replay {
  lesson: string;
  seed: number;
  /** e.g. ["--solutions"] or ["--submission", "alice.tgz"]; none for the learner's exercises. */
  targetArgs: string[];
}

export function reproduceCommand(replay: Replay, unit: string): string {
  const quote = (arg: string) => (/^[\w./~:@=-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);
  return `npm run grade ${replay.lesson} ${unit} -- ${[...replay.targetArgs.map(quote), "--seed", String(replay.seed)].join(" ")}`;
}

/** A message as a learner reads it. */
export function cleanMessage(text: string, replay?: Replay, unit?: string): string {
  let clean = stripAnsi(text);
  for (const noise of FAST_CHECK_NOISE) clean = clean.replace(noise, "");
  if (replay && unit) {
    const command = reproduceCommand(replay, unit);
    clean = clean
      .replace(/\(reproduce with CHECKPOINT_KIT_SEED=\d+\)/g, `(reproduce with: ${command})`)
      .replace(/reproduce with CHECKPOINT_KIT_SEED=\d+/g, `reproduce with: ${command}`);
  }
  return clean.replace(/\n{3,}/g, "\n\n").trimEnd();
}

export function capOutput(output: string): string {
  const clean = stripAnsi(output);
  if (clean.length <= OUTPUT_CAP) return clean;
  const marker = `… (capped at ${OUTPUT_CAP} characters)`;
  return `${clean.slice(0, OUTPUT_CAP - marker.length)}${marker}`;
}

/** Check title (or, for a template title, a pattern of it) -> the source of its body. */
export class CheckSources {
  private readonly exact = new Map<string, string>();
  private readonly patterns: Array<[RegExp, string]> = [];

  add(title: string | RegExp, code: string): void {
    if (typeof title === "string") this.exact.set(title, code);
    else this.patterns.push([title, code]);
  }

  get(title: string): string | undefined {
    return this.exact.get(title) ?? this.patterns.find(([pattern]) => pattern.test(title))?.[1];
  }

  keys(): string[] {
    return [...this.exact.keys()];
  }
}

const checkSources = new Map<string, CheckSources>();
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function dedent(text: string): string {
  const lines = text.split("\n");
  const indents = lines.slice(1).filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = indents.length > 0 ? Math.min(...indents) : 0;
  const closing = lines.length > 1 ? /^ */.exec(lines.at(-1)!)![0].length : 0;
  const strip = Math.min(cut, closing);
  return lines.map((l, i) => (i === 0 ? l : l.slice(strip))).join("\n");
}

/** The source of each check's body, read from a grader file without running it. */
export function graderCheckSources(file: string): CheckSources {
  const cached = checkSources.get(file);
  if (cached) return cached;
  const sources = new CheckSources();
  if (existsSync(file)) {
    const ts = typescript();
    const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: TS.Node) => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        ["core", "excellence"].includes(node.expression.name.text) &&
        node.arguments.length >= 2
      ) {
        const [title] = node.arguments;
        const body = node.arguments.at(-1)!;
        if (title && (ts.isArrowFunction(body) || ts.isFunctionExpression(body))) {
          const code = dedent(body.getText(source));
          if (ts.isStringLiteral(title) || ts.isNoSubstitutionTemplateLiteral(title)) sources.add(title.text, code);
          else if (ts.isTemplateExpression(title)) {
            const parts = [title.head.text, ...title.templateSpans.map((span) => span.literal.text)].map(escapeRegExp);
            sources.add(new RegExp(`^${parts.join(".+?")}$`), code);
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  checkSources.set(file, sources);
  return sources;
}

function finishCheck(check: CheckResult, unit: UnitResult, taskId: number, replay?: Replay): CheckResult {
  const finished: CheckResult = { ...check, task_id: taskId };
  if (check.message !== undefined) finished.message = cleanMessage(check.message, replay, unit.unit);
  if (check.output !== undefined) {
    const output = capOutput(check.output);
    if (output.trim()) finished.output = output;
    else delete finished.output;
  }
  if (check.visibility === "public") {
    const code = graderCheckSources(unitPaths(unit.lesson, unit.unit).grader).get(check.name);
    if (code) finished.test_code = code;
  } else {
    delete finished.test_code; // hidden checks never show their code
  }
  return finished;
}

/** One unit's result as users get it; `taskId` is the unit's number in its lesson (Exercism's task). */
export function finishUnit(unit: UnitResult, taskId: number, replay?: Replay): UnitResult {
  const finished: UnitResult = { ...unit, tests: unit.tests.map((t) => finishCheck(t, unit, taskId, replay)) };
  if (unit.message !== undefined) finished.message = cleanMessage(unit.message, replay, unit.unit);
  if (unit.type_errors) finished.type_errors = unit.type_errors.map(stripAnsi);
  return finished;
}

/** A unit's number in its lesson (1-based), the task_id of its checks. */
export function unitNumber(unit: Pick<UnitResult, "lesson" | "unit">): number {
  try {
    const lesson = loadManifest().lessons.find((l) => l.id === unit.lesson);
    const index = lesson?.units.findIndex((u) => u.id === unit.unit) ?? -1;
    return index + 1 || 1;
  } catch {
    return 1;
  }
}

/** How to replay what a report graded, from the report alone. */
export function replayOf(report: Pick<LessonReport, "lesson" | "seed" | "target" | "hidden_checks">): Replay {
  const { kind, path } = report.target;
  const targetArgs = kind === "solutions" ? ["--solutions"] : kind === "submission" ? ["--submission", path] : report.hidden_checks ? ["--hidden"] : [];
  return { lesson: report.lesson, seed: report.seed, targetArgs };
}

/** Applies the rules above to a whole report; idempotent. */
export function finishReport(report: LessonReport, replay: Replay = replayOf(report)): LessonReport {
  const units = report.units.map((unit) => finishUnit(unit, unitNumber(unit), replay));
  const tests = units.flatMap((u) => u.tests.map((t) => ({ ...t, name: `${u.unit} › ${t.name}` })));
  const errored = units.filter((u) => u.status === "error");
  const finished: LessonReport = { ...report, units, tests };
  if (report.status === "error") {
    finished.message =
      report.message ??
      `${errored.length} of ${units.length} unit${units.length === 1 ? "" : "s"} could not be graded normally: ` +
        errored.map((u) => `${u.unit}: ${(u.message ?? "error").split("\n")[0]}`).join("; ");
  }
  return finished;
}
