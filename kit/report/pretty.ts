/**
 * The readable report: every check with pass/fail, each unit's tier and score,
 * each failed public check's message and hint with the lesson section to read,
 * and the next step. Colour only on a TTY and when NO_COLOR is unset.
 */
import { relative } from "node:path";
import pc from "picocolors";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { unitPaths } from "../manifest.ts";
import { TIER_LABEL, type CheckResult, type LessonReport, type UnitResult, type UnitTier } from "../grading/report.ts";

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
  return `  ${mark} ${check.name}${tag}`;
}

export function formatUnit(unit: UnitResult, color: boolean): string {
  const p = palette(color);
  const out: string[] = [];
  out.push(`${p.bold(`${unit.unit}`)} ${p.dim(`— ${unit.title}`)}`);
  if (unit.message) out.push(indent(unit.message, `  ${p.bad("!")} `));
  const publicChecks = unit.tests.filter((t) => t.visibility === "public");
  const hiddenChecks = unit.tests.filter((t) => t.visibility === "hidden");
  for (const check of publicChecks) {
    out.push(checkLine(check, p));
    if (check.status !== "pass") {
      if (check.message) out.push(indent(check.message, `      `));
      out.push(`      ${p.warn("hint:")} ${check.hint}`);
      out.push(`      ${p.dim(`read: ${sectionLink(unit, check.section)}`)}`);
      if (check.output) out.push(indent(`your output: ${check.output.trimEnd()}`, `      ${p.dim("│")} `));
    }
  }
  if (hiddenChecks.length > 0) {
    const failed = hiddenChecks.filter((t) => t.status !== "pass");
    const categories = [...new Set(failed.map((t) => t.category))].join(", ");
    out.push(
      `  ${failed.length === 0 ? p.ok("✓") : p.bad("✗")} hidden checks: ${hiddenChecks.length - failed.length}/${hiddenChecks.length} passed` +
        (failed.length > 0 ? ` (failing: ${categories})` : ""),
    );
  }
  out.push(`  tier: ${tierText(unit.tier, p)}  score: ${unit.score}/100  ${p.dim(`(${(unit.duration_ms / 1000).toFixed(1)} s)`)}`);
  out.push(`  next: ${nextStep(unit)}`);
  return out.join("\n");
}

/** The single most useful thing to do next for this unit. */
export function nextStep(unit: UnitResult): string {
  if (unit.status === "error" && unit.tests.every((t) => t.status !== "pass")) {
    return "make the module load and finish within the time limit (see the message above).";
  }
  const order = (t: CheckResult) => (t.tier === "core" ? 0 : 1);
  const firstFailed = unit.tests
    .filter((t) => t.status !== "pass" && t.visibility === "public")
    .sort((a, b) => order(a) - order(b) || a.task_id - b.task_id)[0];
  if (firstFailed) return `“${firstFailed.name}” — ${firstFailed.hint} (${sectionLink(unit, firstFailed.section)})`;
  if (unit.tier !== "excellent") return "only hidden checks fail: re-read the lesson's edge cases.";
  return "done: compare with the reference and read the interview questions.";
}

export function formatLesson(report: LessonReport, color: boolean): string {
  return [...report.units.map((u) => formatUnit(u, color)), formatSummary(report, color)].join("\n");
}

/** The closing lines: each unit's tier and score, the lesson's tier, what was graded. */
export function formatSummary(report: LessonReport, color: boolean): string {
  const p = palette(color);
  const width = Math.max(...report.units.map((u) => u.unit.length));
  const summary = report.units.map((u) => `  ${u.unit.padEnd(width)}  ${tierText(u.tier, p)}  ${String(u.score).padStart(3)}/100`);
  return [
    "",
    p.bold(`${report.lesson}: ${TIER_LABEL[report.tier]} (the lowest unit tier)`),
    ...summary,
    p.dim(`graded ${report.target.kind} · seed ${report.seed} · ${report.hidden_checks ? "public + hidden checks" : "public checks"} · kit ${report.kit_version} · node ${report.node_version}`),
  ].join("\n");
}
