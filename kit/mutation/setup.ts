/**
 * Vitest setup file for mutation testing (kit/mutation/vitest.config.ts), loaded
 * after Stryker's own setup file in the trusted grading process. Stryker's runner
 * expects the mutated code to run in this process; here it runs in learner
 * processes (kit/sandbox/), so this file carries Stryker's state across:
 *
 * - mutant runs: the active mutant's id goes into __STRYKER_ACTIVE_MUTANT__, which
 *   learnerEnv passes on to every learner process started from now on, where the
 *   instrumented reference reads it;
 * - the coverage run: the mutants a learner process reached come back with its
 *   messages (host.ts) and are credited to the running check, or to load-time
 *   ("static") coverage, in the object Stryker reads after the file.
 */
import { afterEach, beforeEach, inject } from "vitest";
import { flushLearnerCoverage, mutationHooks } from "../sandbox/learner.ts";

interface StrykerNamespace {
  activeMutant?: string;
  currentTestId?: string;
  mutantCoverage?: { static: Record<string, number>; perTest: Record<string, Record<string, number>> };
}

const ns = ((globalThis as { __stryker__?: StrykerNamespace }).__stryker__ ??= {});
const mode = inject("mode" as never) as unknown as "dry-run" | "mutant" | undefined;

function add(into: Record<string, number>, reached: Record<string, number>): void {
  for (const [id, hits] of Object.entries(reached)) into[id] = (into[id] ?? 0) + hits;
}

if (mode === "mutant") {
  // Stryker sets the active mutant at load time (static mutants) or in a beforeAll: read it before each check.
  beforeEach(() => {
    if (ns.activeMutant === undefined) delete process.env.__STRYKER_ACTIVE_MUTANT__;
    else process.env.__STRYKER_ACTIVE_MUTANT__ = String(ns.activeMutant);
  });
} else {
  delete process.env.__STRYKER_ACTIVE_MUTANT__;
  // Stryker's afterAll hands this very object over: it must exist even if no learner reports anything.
  const coverage = (ns.mutantCoverage ??= { static: {}, perTest: {} });
  mutationHooks.onCoverage = (reached, atLoad) => {
    const test = ns.currentTestId;
    add(atLoad || !test ? coverage.static : (coverage.perTest[test] ??= {}), reached);
  };
  // Before Stryker's own afterEach clears currentTestId (Vitest runs afterEach hooks last-registered
  // first, and this file loads after Stryker's): collect what the check's processes reached without
  // a message, e.g. the requests a learner's HTTP server answered.
  afterEach(() => flushLearnerCoverage());
}
