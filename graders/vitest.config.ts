// Configuration the grading engine runs graders with (one unit per process). The
// checks run here; the code under test runs only in learner processes (kit/sandbox/).
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL("..", import.meta.url));

export default defineConfig({
  test: {
    root,
    include: ["graders/**/*.grader.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 10_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
    // Checks run in file order: the rubric reads top to bottom.
    sequence: { concurrent: false, shuffle: false },
    watch: false,
    // Graders use no snapshots; Vitest still looks for a file.
    resolveSnapshotPath: (testPath, extension) => join(tmpdir(), "checkpoint-kit-snapshots", `${basename(testPath)}${extension}`),
  },
});
