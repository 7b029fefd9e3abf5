/**
 * npm run list [lesson]: each unit's tier from its last grading, without
 * regrading (kept in .checkpoint-kit/state.json), and what to do next.
 */
import { loadManifest, findLesson, UnknownTargetError } from "../manifest.ts";
import { TIER_LABEL } from "../grading/report.ts";
import { HelpRequested, swallowedOptions, forgottenSeparator, parseCommandArgs, exitWithError } from "./options.ts";
import { readState } from "./state.ts";

const USAGE = "Usage: npm run list [lesson]\n  each unit's tier from its last grading (npm run grade regrades)";

export function listLines(lessonIds?: string[]): string[] {
  const manifest = loadManifest();
  const lessons = lessonIds?.length ? lessonIds.map((id) => findLesson(manifest, id)) : manifest.lessons;
  const { units } = readState();
  const lines: string[] = [];
  for (const lesson of lessons) {
    const width = Math.max(...lesson.units.map((u) => u.id.length));
    lines.push(`${lesson.id}: ${lesson.title}`);
    for (const [i, unit] of lesson.units.entries()) {
      const last = units[`${lesson.id}/${unit.id}`];
      const tier = last ? `${TIER_LABEL[last.tier].padEnd(17)} ${String(last.score).padStart(3)}/100  graded ${last.graded_at.slice(0, 16).replace("T", " ")}` : "not graded yet";
      lines.push(`  ${i + 1}. ${unit.id.padEnd(width)}  ${tier}`);
      if (last?.type_errors) lines.push(`     ${" ".repeat(width)}  ${last.type_errors} type error${last.type_errors === 1 ? "" : "s"} (capped at adequate)`);
      if (last?.next) lines.push(`     ${" ".repeat(width)}  next: “${last.next}”`);
    }
    const next = lesson.units.find((u) => units[`${lesson.id}/${u.id}`]?.tier !== "excellent");
    lines.push(next ? `  work on: npm run grade ${lesson.id} ${next.id} -- --watch` : "  every unit is excellent");
  }
  return lines;
}

function main(argv: string[]): void {
  const { values, positionals } = parseCommandArgs({ args: argv, allowPositionals: true, options: { help: { type: "boolean", short: "h", default: false } } }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  const swallowed = swallowedOptions(["help"]);
  if (swallowed.length) throw forgottenSeparator(swallowed, positionals);
  process.stdout.write(`${listLines(positionals).join("\n")}\n`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  exitWithError(error, [UnknownTargetError]);
}
