/**
 * JUnit XML for CI systems: one test suite per unit, one test case per check.
 * A failure carries a type, a one-line message and the full text as its body
 * (message, hint, lesson section, the learner's output); no ANSI escapes.
 */
import type { LessonReport } from "../grading/report.ts";
import { stripAnsi } from "./finish.ts";
import { sectionLink } from "./pretty.ts";

export async function writeJunit(report: LessonReport, file: string): Promise<void> {
  // Loaded only when a JUnit report is asked for: the builder and its XML library take a fifth of
  // a second to load, which every other grading would pay at start-up.
  const { default: junitReportBuilder } = await import("junit-report-builder");
  const builder = junitReportBuilder.newBuilder();
  for (const unit of report.units) {
    const suite = builder.testSuite().name(`${report.lesson}/${unit.unit}`).property("tier", unit.tier).property("score", unit.score);
    if (unit.message) suite.property("problem", stripAnsi(unit.message));
    if (unit.type_errors?.length) suite.property("type_errors", stripAnsi(unit.type_errors.join("\n")));
    for (const check of unit.tests) {
      const hidden = check.visibility === "hidden";
      const testCase = suite
        .testCase()
        .className(`${report.lesson}.${unit.unit}.${check.tier}`)
        .name(hidden ? `[hidden] ${check.name}` : check.name)
        .time(check.duration_ms / 1000);
      if (check.status === "pass") continue;
      const message = stripAnsi(check.message ?? (check.status === "fail" ? "failed" : "did not run"));
      const body = [
        message,
        "",
        `hint: ${check.hint}`,
        `read: ${sectionLink(unit, check.section)}`,
        ...(check.output ? ["", "your output:", stripAnsi(check.output)] : []),
      ].join("\n");
      const summary = message.split("\n")[0]!;
      if (check.status === "fail") testCase.failure(summary, `${check.tier}-check-failed`).stacktrace(body);
      else testCase.error(summary, "grading-error", body);
      if (check.output) testCase.standardOutput(stripAnsi(check.output));
    }
  }
  builder.writeTo(file);
}
