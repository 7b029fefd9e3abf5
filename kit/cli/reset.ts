/**
 * npm run reset <lesson> <unit> [-- --yes]: puts a unit's starter back (git
 * HEAD in a kit checkout, the packed copy in a candidate bundle). Asks first
 * on a terminal; without one (CI, scripts) it needs --yes.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline/promises";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { findLesson, findUnit, loadManifest, UnknownTargetError } from "../manifest.ts";
import { forgottenSeparator, HelpRequested, swallowedOptions, UsageError, parseCommandArgs, exitWithError } from "./options.ts";
import { changedFiles, pristineFiles, PristineError } from "./pristine.ts";
import { forgetUnit } from "./state.ts";

const USAGE = "Usage: npm run reset <lesson> <unit> [-- --yes]\n  e.g. npm run reset lesson-11 serde -- --yes   (puts the starter back; your changes to it are lost)";

/** Restores exercises/<lesson>/<unit>/ to its starter; returns the files that changed. */
export function resetUnit(lessonId: string, unitId: string, root = KIT_ROOT): string[] {
  const dir = `exercises/${lessonId}/${unitId}`;
  const changed = changedFiles(dir, root);
  const pristine = pristineFiles(dir, root);
  for (const file of changed) {
    const relativeFile = file.slice(dir.length + 1);
    const contents = pristine.get(relativeFile);
    const target = join(root, file);
    if (contents) {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, contents);
    } else if (existsSync(target)) {
      rmSync(target); // a file the learner added
    }
  }
  forgetUnit(lessonId, unitId);
  return changed;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: { yes: { type: "boolean", short: "y", default: false }, help: { type: "boolean", short: "h", default: false } },
  }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  const swallowed = swallowedOptions(["yes"]);
  if (swallowed.length) throw forgottenSeparator(swallowed, positionals);
  const [lessonId, unitId] = positionals;
  if (!lessonId || !unitId) throw new UsageError(USAGE);
  const lesson = findLesson(loadManifest(), lessonId);
  findUnit(lesson, unitId);
  const dir = `exercises/${lesson.id}/${unitId}`;
  const changed = changedFiles(dir);
  if (changed.length === 0) {
    process.stdout.write(`${dir} is already the starter; nothing to reset.\n`);
    return 0;
  }
  process.stdout.write(`Resetting ${dir} puts its starter back. Your changes to these files are lost:\n${changed.map((f) => `  ${f}`).join("\n")}\n`);
  if (!values.yes) {
    if (!process.stdin.isTTY) throw new UsageError(`Not resetting without confirmation: add -- --yes, e.g.\n  npm run reset ${lesson.id} ${unitId} -- --yes`);
    if (!(await confirm("Reset? [y/N] "))) {
      process.stdout.write("Not reset.\n");
      return 0;
    }
  }
  resetUnit(lesson.id, unitId);
  process.stdout.write(`Reset ${dir} to its starter.\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => exitWithError(error, [UnknownTargetError, PristineError]),
);
