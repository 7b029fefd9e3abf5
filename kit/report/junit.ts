/** JUnit XML for CI systems: one test suite per unit, one test case per check. */
import junitReportBuilder from "junit-report-builder";
import type { LessonReport } from "../grading/report.ts";

export function writeJunit(report: LessonReport, file: string): void {
  const builder = junitReportBuilder.newBuilder();
  for (const unit of report.units) {
    const suite = builder.testSuite().name(`${report.lesson}/${unit.unit}`).property("tier", unit.tier).property("score", unit.score);
    if (unit.message) suite.property("problem", unit.message);
    for (const check of unit.tests) {
      const testCase = suite
        .testCase()
        .className(`${report.lesson}.${unit.unit}.${check.tier}`)
        .name(check.visibility === "hidden" ? `[hidden] ${check.name}` : check.name)
        .time(check.duration_ms / 1000);
      if (check.status === "fail") testCase.failure(`${check.message ?? "failed"}\nhint: ${check.hint}`);
      if (check.status === "error") testCase.error(check.message ?? "error");
    }
  }
  builder.writeTo(file);
}
