// The kit's own tests (npm test). Graders are run through the engine, not collected here.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "runtime/**/*.test.ts"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Grader self-tests spawn one grading process each: two at a time on a two-core machine.
    maxConcurrency: 2,
  },
});
