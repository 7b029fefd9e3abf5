/**
 * The Vitest configuration Stryker's runner grades with (see stryker.config.mjs):
 * the graders' own configuration, narrowed to one unit's grader, pointed at
 * Stryker's sandbox copy of that unit's reference solution, with hidden checks.
 * The unit comes from CHECKPOINT_KIT_MUTATION_LESSON / CHECKPOINT_KIT_MUTATION_UNIT
 * (set by kit/mutation/run.ts).
 */
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import graders from "../../graders/vitest.config.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const lesson = process.env.CHECKPOINT_KIT_MUTATION_LESSON ?? "lesson-11";
const unit = process.env.CHECKPOINT_KIT_MUTATION_UNIT;
if (!unit) throw new Error("CHECKPOINT_KIT_MUTATION_UNIT is not set: run `npm run mutation <unit>`");

// Stryker's sandbox folder is private (0700), but the compiled code lives below it (node_modules/.cache,
// through the sandbox's node_modules symlink) and bubblewrap binds it as the learner's user, nobody
// when grading runs as root: let others pass through the sandbox folder (not list or read it).
const mode = statSync(root).mode;
if ((mode & 0o001) === 0) chmodSync(root, mode | 0o111);

export default defineConfig({
  ...graders,
  test: {
    ...graders.test,
    include: [`graders/${lesson}/${unit}.grader.ts`],
    env: { CHECKPOINT_KIT_UNIT_DIR: join(root, "solutions", lesson, unit), CHECKPOINT_KIT_HIDDEN: "1" },
    setupFiles: [join(root, "kit", "mutation", "setup.ts")],
  },
});
