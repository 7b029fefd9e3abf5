// Configuration the grading engine runs graders with (one unit per process).
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin } from "vite";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * When learner code is graded, modules under solutions/ and calibration answers
 * are never served, whatever path the code imports them by. (The worker is also
 * confined by Node's permission model; this covers what the main process loads.)
 */
function refuseReferenceCode(): Plugin {
  const forbidden = [`${root}solutions/`, "/calibration/"];
  return {
    name: "checkpoint-kit:refuse-reference-code",
    enforce: "pre",
    load(id) {
      if (process.env.CHECKPOINT_KIT_SANDBOX_FLAGS && process.env.CHECKPOINT_KIT_SANDBOX_FLAGS !== "[]") {
        const path = id.split("?")[0]!;
        const own = process.env.CHECKPOINT_KIT_UNIT_DIR;
        if (own && path.startsWith(`${own}/`)) return null;
        if (forbidden.some((f) => path.includes(f))) {
          throw new Error(`Access denied: submissions may not load the kit's reference code (${path.slice(root.length)}).`);
        }
      }
      return null;
    },
  };
}

export default defineConfig({
  plugins: [refuseReferenceCode()],
  test: {
    root,
    include: ["graders/**/*.grader.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 10_000,
    hookTimeout: 20_000,
    teardownTimeout: 5_000,
    // Checks run in file order: the rubric reads top to bottom.
    sequence: { concurrent: false, shuffle: false },
    watch: false,
    // Graders use no snapshots; Vitest still looks for a file, so point it where learner code may read.
    resolveSnapshotPath: (testPath, extension) => join(tmpdir(), "checkpoint-kit-snapshots", `${basename(testPath)}${extension}`),
  },
});
