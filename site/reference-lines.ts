/**
 * What "the candidate edition holds no reference code" means, checkably: no line
 * that only the reference (solutions/**: code and answers.md) contains may show
 * on a candidate page. Lines the reference shares with what candidates are meant
 * to see (lessons, starters, diagrams, the site's own text) are not evidence of a
 * leak and are left out; so are short lines (`return value;`, `}`).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { globSync } from "tinyglobby";
import { loadManifest, unitPaths } from "../kit/manifest.ts";

/** Shorter lines are too generic to prove anything. */
const MIN_LENGTH = 24;

/** A source or markdown line as it reads on a page: markup dropped, whitespace collapsed. */
export function normalizeLine(line: string): string {
  return line
    .replace(/^\s*(?:#{1,6}\s|>\s?|[-*+]\s|\d+[.)]\s)/, "")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/\*\*|__|`/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/** The visible text of a built page, whitespace collapsed, for substring checks. */
export function pageText(html: string): string {
  return html
    .replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, " ")
    .replace(/<\/?(?:span|a|code|strong|em|b|i|mark|kbd|sub|sup)\b[^>]*>/gi, "")
    .replace(/<[^>]+>/g, " ")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
      if (entity.startsWith("#x") || entity.startsWith("#X")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
      if (entity.startsWith("#")) return String.fromCodePoint(parseInt(entity.slice(1), 10));
      return ENTITIES[entity.toLowerCase()] ?? whole;
    })
    .replace(/\s+/g, " ");
}

function readLines(files: string[]): string[] {
  return files.flatMap((file) => readFileSync(file, "utf8").split("\n").map(normalizeLine));
}

function filesUnder(dir: string, patterns: string[]): string[] {
  return existsSync(dir) ? globSync(patterns, { cwd: dir, absolute: true, ignore: ["**/node_modules/**"] }) : [];
}

/** Lines of the reference solutions and model answers that nothing public contains. */
export function distinctiveReferenceLines(root: string, options: { lessons?: string[] } = {}): string[] {
  const manifest = loadManifest(join(root, "lessons", "manifest.json"));
  const lessons = manifest.lessons.filter((lesson) => !options.lessons || options.lessons.includes(lesson.id));
  const referenceFiles = lessons.flatMap((lesson) =>
    lesson.units.flatMap((unit) => filesUnder(unitPaths(lesson.id, unit.id, root).reference, ["**/*.ts", "**/*.md"])),
  );
  // Joined with spaces, as a page shows them: a sentence wrapped over two lines of a lesson still counts as public.
  const publicText = readLines([
    ...filesUnder(join(root, "lessons"), ["**/*.md"]),
    ...filesUnder(join(root, "exercises"), ["**/*"]),
    ...filesUnder(join(root, "diagrams"), ["**/*.mmd"]),
    ...filesUnder(join(root, "site", "src"), ["**/*.md", "**/*.json"]),
  ]).join(" ");
  const distinct = new Set<string>();
  for (const line of readLines(referenceFiles)) {
    if (line.length >= MIN_LENGTH && /[A-Za-z]{3}/.test(line) && !publicText.includes(line)) distinct.add(line);
  }
  return [...distinct];
}
