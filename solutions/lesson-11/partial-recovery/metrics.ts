/**
 * Recovery metrics from the executor's reports. Only resumes count: a start has nothing to
 * recover. A dashboard would keep these per workflow and schema version (both are labels of the
 * report) and put SLOs on them: hit rate and failure rate over 30 days, p95 recovery time.
 */
import type { RecoveryMetrics, RunReport } from "./types.ts";

export function recoveryMetrics(reports: readonly RunReport[]): RecoveryMetrics {
  const resumes = reports.filter((report) => report.kind === "resume");
  const share = (count: number) => (resumes.length === 0 ? null : count / resumes.length);
  // Resumes that failed before continuing have no recovery time: they count in the rates only.
  const times = resumes.flatMap((report) => (report.recoveryMs === null ? [] : [report.recoveryMs])).sort((a, b) => a - b);
  return {
    resumes: resumes.length,
    hitRate: share(resumes.filter((report) => report.resumedFrom !== null).length),
    failureRate: share(resumes.filter((report) => report.outcome === "failed").length),
    meanRecoveryMs: times.length === 0 ? null : times.reduce((sum, ms) => sum + ms, 0) / times.length,
    // Nearest rank: the smallest time at least 95% of the resumes did not exceed.
    p95RecoveryMs: times.length === 0 ? null : times[Math.ceil(0.95 * times.length) - 1]!,
  };
}
