// Mutation testing of one unit's grader (`npm run mutation <unit>`, kit/mutation/run.ts):
// Stryker mutates the unit's reference solution and grades each mutant with the unit's
// grader, hidden checks included; a mutant is killed when any check fails (the grade
// drops below excellent) or grading errors. The unit comes from the environment:
//   CHECKPOINT_KIT_MUTATION_UNIT=serde npx stryker run stryker.config.mjs
// How the mutant reaches the learner processes: kit/mutation/setup.ts.
import { availableParallelism } from "node:os";

const lesson = process.env.CHECKPOINT_KIT_MUTATION_LESSON ?? "lesson-11";
const unit = process.env.CHECKPOINT_KIT_MUTATION_UNIT;
if (!unit) throw new Error("CHECKPOINT_KIT_MUTATION_UNIT is not set: run `npm run mutation <unit>`");
const reports = `reports/mutation/${unit}`;

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  packageManager: "npm",
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  // Graders import the reference's types only, so Vitest's "related files" would find no test.
  vitest: { configFile: "kit/mutation/vitest.config.ts", related: false },
  mutate: [`solutions/${lesson}/${unit}/**/*.ts`],
  // Per check: a mutant runs only the checks whose learner processes reached it (kit/mutation/setup.ts).
  coverageAnalysis: "perTest",
  concurrency: availableParallelism(),
  // Checks have their own deadlines, scaled to a busy machine; Stryker's timeout is only the backstop.
  timeoutMS: 60_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 20,
  disableTypeChecks: false,
  reporters: ["clear-text", "progress-append-only", "html", "json"],
  clearTextReporter: { allowEmojis: false, logTests: false, reportScoreTable: true },
  htmlReporter: { fileName: `${reports}/index.html` },
  jsonReporter: { fileName: `${reports}/mutation.json` },
  tempDirName: ".stryker-tmp",
  // Stryker copies the kit into a sandbox; what grading never reads stays out of it.
  ignorePatterns: ["/site", "/diagrams", "/reports", "/.grading", "/.kit-state", "/.checkpoint-kit", "/dist", "*.sqlite*", "*.db*"],
  thresholds: { high: 90, low: 80, break: null },
};
