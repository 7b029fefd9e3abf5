/** npm run hint <lesson> <unit> [-- --all]: the unit's hints, one more each time. */
import { findLesson, findUnit, loadManifest, UnknownTargetError } from "../manifest.ts";
import { formatHint, revealNext, unitHints } from "../hints.ts";
import { forgottenSeparator, HelpRequested, swallowedOptions, parseCommandArgs, exitWithError } from "./options.ts";

const USAGE = "Usage: npm run hint <lesson> <unit> [-- --all]\n  e.g. npm run hint lesson-11 serde";

async function main(): Promise<void> {
  const { values, positionals } = parseCommandArgs({
    allowPositionals: true,
    options: { all: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
  }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  const swallowed = swallowedOptions(["all"]);
  if (swallowed.length) throw forgottenSeparator(swallowed, positionals);
  const [lessonId, unitId] = positionals;
  if (!lessonId || !unitId) throw new UnknownTargetError(USAGE);
  const lesson = findLesson(loadManifest(), lessonId);
  findUnit(lesson, unitId);
  const hints = await unitHints(lessonId, unitId);
  if (values.all) {
    process.stdout.write(`${hints.map(formatHint).join("\n")}\n`);
    return;
  }
  const { shown, remaining } = revealNext(lessonId, unitId, hints);
  process.stdout.write(`${shown.map(formatHint).join("\n")}\n\n`);
  process.stdout.write(
    remaining > 0 ? `${remaining} more hint${remaining === 1 ? "" : "s"}: run the same command again, or add -- --all.\n` : "That was the last hint.\n",
  );
}

main().catch((error: unknown) => exitWithError(error, [UnknownTargetError]));
