/**
 * The readable report: every check with pass/fail, each unit's tier and score,
 * each failed public check's message and hint with the lesson section to read,
 * and the next step. Colour only on a TTY and when NO_COLOR is unset.
 */
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import pc from "picocolors";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { unitPaths } from "../manifest.ts";
import { TIER_LABEL, checkCounts, type CheckResult, type LessonReport, type UnitResult, type UnitTier } from "../grading/report.ts";
import { stripAnsi } from "./finish.ts";

export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb";
}

type Paint = (text: string) => string;
interface Palette { ok: Paint; bad: Paint; warn: Paint; dim: Paint; bold: Paint }

function palette(color: boolean): Palette {
  const c = pc.createColors(color);
  return { ok: c.green, bad: c.red, warn: c.yellow, dim: c.dim, bold: c.bold };
}

const MESSAGE_LINES = 8;

function indent(text: string, prefix: string): string {
  const lines = text.split("\n");
  const shown = lines.slice(0, MESSAGE_LINES);
  if (lines.length > MESSAGE_LINES) shown.push(`… (${lines.length - MESSAGE_LINES} more lines in the JSON report)`);
  return shown.map((l) => prefix + l).join("\n");
}

export function tierText(tier: UnitTier, p: Palette): string {
  const label = TIER_LABEL[tier].toUpperCase();
  return tier === "excellent" ? p.ok(label) : tier === "adequate" ? p.warn(label) : p.bad(label);
}

export function sectionLink(result: Pick<UnitResult, "lesson" | "unit">, section: string): string {
  return `${relative(KIT_ROOT, unitPaths(result.lesson, result.unit).lesson)}#${section}`;
}

function checkLine(check: CheckResult, p: Palette): string {
  const mark = check.status === "pass" ? p.ok("✓") : p.bad("✗");
  const tag = check.tier === "excellence" ? p.dim(" [excellence]") : "";
  const note = check.note ? p.dim(` (${check.note})`) : "";
  return `  ${mark} ${check.name}${tag}${note}`;
}

export interface FormatOptions {
  color: boolean;
  /** Every failing check with its message and hint; by default only the first failing one per unit. */
  verbose?: boolean;
}

/** The failing public check to fix first: core before excellence, then rubric order. */
export function firstFailing(unit: UnitResult): CheckResult | undefined {
  const order = (t: CheckResult) => (t.tier === "core" ? 0 : 1);
  return unit.tests
    .filter((t) => t.status !== "pass" && t.visibility === "public")
    .sort((a, b) => order(a) - order(b) || unit.tests.indexOf(a) - unit.tests.indexOf(b))[0];
}

const TYPE_CHECK_MESSAGE = /^Your code does not type-check:/;

export function formatUnit(unit: UnitResult, options: FormatOptions | boolean): string {
  const { color, verbose = false } = typeof options === "boolean" ? { color: options } : options;
  const p = palette(color);
  const out: string[] = [];
  out.push(`${p.bold(`${unit.unit}`)} ${p.dim(`— ${unit.title}`)}`);
  // Type errors first, with file:line, then why the unit could not be graded normally.
  if (unit.type_errors?.length) {
    out.push(`  ${p.bad("!")} type errors (code that does not type-check is capped at adequate):`);
    out.push(indent(unit.type_errors.join("\n"), `    `));
  }
  if (unit.message && !(unit.type_errors?.length && TYPE_CHECK_MESSAGE.test(unit.message))) out.push(indent(unit.message, `  ${p.bad("!")} `));
  const publicChecks = unit.tests.filter((t) => t.visibility === "public");
  const hiddenChecks = unit.tests.filter((t) => t.visibility === "hidden");
  const first = firstFailing(unit);
  const shownMessages = new Map<string, string>();
  let folded = 0;
  for (const check of publicChecks) {
    out.push(checkLine(check, p));
    if (check.status === "pass") continue;
    if (check !== first && !verbose) {
      folded++;
      continue;
    }
    if (check.message) {
      // A load error (a syntax error's code frame) fails every check alike: show it once.
      const seenUnder = shownMessages.get(check.message);
      out.push(seenUnder ? `      ${p.dim(`(same error as “${seenUnder}”)`)}` : indent(check.message, `      `));
      shownMessages.set(check.message, seenUnder ?? check.name);
    }
    out.push(`      ${p.warn("hint:")} ${check.hint}`);
    out.push(`      ${p.dim(`read: ${sectionLink(unit, check.section)}`)}`);
    if (check.output) out.push(indent(`your output: ${check.output.trimEnd()}`, `      ${p.dim("│")} `));
  }
  if (folded > 0) out.push(`  ${p.dim(`${folded} more failing check${folded === 1 ? "" : "s"}: fix the first one, or add --verbose to see every message and hint`)}`);
  if (hiddenChecks.length > 0) {
    const failed = hiddenChecks.filter((t) => t.status !== "pass");
    const categories = [...new Set(failed.map((t) => t.category))].join(", ");
    out.push(
      `  ${failed.length === 0 ? p.ok("✓") : p.bad("✗")} hidden checks: ${hiddenChecks.length - failed.length}/${hiddenChecks.length} passed` +
        (failed.length > 0 ? ` (failing: ${categories})` : ""),
    );
  }
  out.push(`  tier: ${tierText(unit.tier, p)}  score: ${unit.score}/100  ${checkCounts(unit.tests)}  ${p.dim(`(${(unit.duration_ms / 1000).toFixed(1)} s)`)}`);
  out.push(`  next: ${nextStep(unit)}`);
  const text = out.join("\n");
  return color ? text : stripAnsi(text);
}

/** The reference solution's folder, once the unit is excellent (Rustlings shows it only after a pass). */
export function referencePath(unit: Pick<UnitResult, "lesson" | "unit" | "tier">): string | undefined {
  if (unit.tier !== "excellent") return undefined;
  const dir = unitPaths(unit.lesson, unit.unit).reference;
  return existsSync(join(dir, "index.ts")) ? `${relative(KIT_ROOT, dir)}/` : undefined;
}

/** The single most useful thing to do next for this unit. */
export function nextStep(unit: UnitResult): string {
  if (unit.status === "error" && unit.tests.every((t) => t.status !== "pass")) {
    return "make the module load and finish within the time limit (see the message above).";
  }
  const coreFails = unit.tests.some((t) => t.tier === "core" && t.status !== "pass");
  if (unit.type_errors?.length && !coreFails) {
    return `fix the type errors above: they are why this unit is ${TIER_LABEL[unit.tier]} (code that does not type-check is capped at adequate, whatever its checks say).`;
  }
  const failing = firstFailing(unit);
  if (failing) return `“${failing.name}” — ${failing.hint} (${sectionLink(unit, failing.section)})`;
  if (unit.tier !== "excellent") return "only hidden checks fail: re-read the lesson's edge cases.";
  const reference = referencePath(unit);
  return reference
    ? `done: compare with the reference in ${reference} (and its answers.md), then read the interview questions.`
    : "done: read the lesson's interview questions.";
}

export function formatLesson(report: LessonReport, options: FormatOptions): string {
  return [...report.units.map((u) => formatUnit(u, options)), formatSummary(report, options.color)].join("\n");
}

/** The closing lines: each unit's tier and score, the lesson's tier, what was graded. */
export function formatSummary(report: LessonReport, color: boolean): string {
  const p = palette(color);
  const width = Math.max(...report.units.map((u) => u.unit.length));
  const summary = report.units.map((u) => `  ${u.unit.padEnd(width)}  ${tierText(u.tier, p)}  ${String(u.score).padStart(3)}/100  ${p.dim(checkCounts(u.tests))}`);
  const text = [
    "",
    p.bold(`${report.lesson}: ${TIER_LABEL[report.tier]} (the lowest unit tier)`),
    ...summary,
    p.dim(`graded ${report.target.kind} · seed ${report.seed} · ${report.hidden_checks ? "public + hidden checks" : "public checks"} · kit ${report.kit_version} · node ${report.node_version}`),
  ].join("\n");
  return color ? text : stripAnsi(text);
}
