// Configuration the grading engine runs graders with (one unit per process).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["graders/**/*.grader.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 10_000,
    hookTimeout: 20_000,
    teardownTimeout: 5_000,
    // Checks run in file order: the rubric reads top to bottom.
    sequence: { concurrent: false, shuffle: false },
    watch: false,
  },
});
