/**
 * Hints, one more at a time (Rustlings-style). A unit's hints are its public
 * checks' hints in rubric order, each with the lesson section to read. How many
 * a learner has seen is remembered in .checkpoint-kit/hints.json (git-ignored).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { z } from "zod";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { collectChecks } from "./grading/collect.ts";
import { unitPaths } from "./manifest.ts";

/** Where hint progress is kept; CHECKPOINT_KIT_STATE_DIR moves it (the kit's own tests use a temp folder). */
const STATE_DIR = process.env.CHECKPOINT_KIT_STATE_DIR ?? join(KIT_ROOT, ".checkpoint-kit");
const STATE_FILE = join(STATE_DIR, "hints.json");
const StateSchema = z.record(z.string(), z.number().int().nonnegative());

export interface Hint {
  check: string;
  text: string;
  read: string;
}

export async function unitHints(lessonId: string, unitId: string): Promise<Hint[]> {
  const checks = await collectChecks(lessonId, unitId, { includeHidden: false });
  const lessonFile = relative(KIT_ROOT, unitPaths(lessonId, unitId).lesson);
  return checks.map((c) => ({ check: c.title, text: c.hint, read: `${lessonFile}#${c.section}` }));
}

function readState(): z.infer<typeof StateSchema> {
  if (!existsSync(STATE_FILE)) return {};
  const parsed = StateSchema.safeParse(JSON.parse(readFileSync(STATE_FILE, "utf8")));
  return parsed.success ? parsed.data : {};
}

/** Marks one more hint as seen and returns every hint seen so far. */
export function revealNext(lessonId: string, unitId: string, hints: Hint[]): { shown: Hint[]; remaining: number } {
  const state = readState();
  const key = `${lessonId}/${unitId}`;
  const seen = Math.min(hints.length, (state[key] ?? 0) + 1);
  state[key] = seen;
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  return { shown: hints.slice(0, seen), remaining: hints.length - seen };
}

export function formatHint(hint: Hint, index: number): string {
  return `${index + 1}. ${hint.text}\n   (check: “${hint.check}”; read ${hint.read})`;
}
