/**
 * Reads what the site shows for each unit, from the paths kit/manifest.ts
 * derives: the lesson page, the starter's contract (its top doc comment) and,
 * for the interviewer edition, the reference solution and model answers. A
 * missing part fails the build with the path it expected.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { globSync } from "tinyglobby";
import ts from "typescript";
import { unitPaths, type Lesson, type Unit } from "../kit/manifest.ts";

export class SiteContentError extends Error {
  override name = "SiteContentError";
}

export interface SourceFile {
  /** Path relative to the kit root, as shown on the page. */
  path: string;
  text: string;
}

export interface UnitContent {
  lesson: Lesson;
  unit: Unit;
  /** 1-based position in its lesson. */
  number: number;
  lessonPage: SourceFile & { absolutePath: string };
  /** The starter's opening comment, as markdown. */
  contract: SourceFile;
}

export interface ReferenceContent {
  /** index.ts first, then the other .ts files in path order. */
  files: SourceFile[];
  answers: SourceFile & { absolutePath: string };
}

function readRequired(root: string, absolutePath: string, what: string): SourceFile & { absolutePath: string } {
  const path = relative(root, absolutePath);
  if (!existsSync(absolutePath)) throw new SiteContentError(`${path} is missing: ${what}`);
  return { path, absolutePath, text: readFileSync(absolutePath, "utf8") };
}

/**
 * The first comment of a starter, before any code, with its `*` gutter removed.
 * That comment is the unit's contract: what to build and what the grader expects.
 */
export function extractContract(source: string, path: string): string {
  const match = /^(?:#![^\n]*\n)?\s*\/\*\*?([\s\S]*?)\*\//.exec(source);
  if (!match) {
    throw new SiteContentError(`${path} does not start with its contract: open the starter with a /** ... */ comment that states the task.`);
  }
  const lines = match[1]!.split("\n").map((line) => line.replace(/^\s*\* ?/, "").trimEnd());
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines.at(-1) === "") lines.pop();
  if (lines.length === 0) throw new SiteContentError(`${path} opens with an empty comment; write the unit's contract in it.`);
  return lines.join("\n");
}

/** Whether a block is TypeScript the compiler parses, rather than prose laid out like code. */
export function isTypeScript(code: string): boolean {
  const { diagnostics = [] } = ts.transpileModule(code, { reportDiagnostics: true, compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
  return diagnostics.length === 0;
}

const INDENTED = /^ {2,}\S/;
const LIST_ITEM = /^\s*(?:[-*+]|\d+[.)])\s/;

/**
 * A contract as markdown. Doc comments show examples as indented lines after a
 * blank line (the JSDoc habit), which markdown would run into a paragraph; such
 * blocks become fenced code: shell commands as bash, TypeScript as ts, and
 * anything else (signature tables, byte layouts, HTTP routes) as plain text.
 */
export function contractMarkdown(contract: string): string {
  const lines = contract.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    const opensExample = (i === 0 || lines[i - 1]!.trim() === "") && INDENTED.test(lines[i]!) && !LIST_ITEM.test(lines[i]!);
    if (!opensExample) {
      out.push(lines[i++]!);
      continue;
    }
    const block: string[] = [];
    while (i < lines.length && (INDENTED.test(lines[i]!) || (lines[i]!.trim() === "" && INDENTED.test(lines[i + 1] ?? "")))) block.push(lines[i++]!);
    const indent = Math.min(...block.filter((line) => line.trim()).map((line) => /^ */.exec(line)![0].length));
    const code = block.map((line) => line.slice(indent));
    const lang = /^(?:\$ |npm |npx |curl |node )/.test(code[0]!) ? "bash" : isTypeScript(code.join("\n")) ? "ts" : "text";
    out.push("```" + lang, ...code, "```");
  }
  return out.join("\n");
}

export function loadUnitContent(root: string, lesson: Lesson, unit: Unit): UnitContent {
  const paths = unitPaths(lesson.id, unit.id, root);
  const lessonPage = readRequired(root, paths.lesson, `every unit listed in lessons/manifest.json needs its lesson page (unit "${unit.id}" of ${lesson.id}).`);
  const starter = readRequired(root, join(paths.starter, "index.ts"), `the starter of unit "${unit.id}" carries the exercise contract in its top comment.`);
  return {
    lesson,
    unit,
    number: lesson.units.indexOf(unit) + 1,
    lessonPage,
    contract: { path: starter.path, text: contractMarkdown(extractContract(starter.text, starter.path)) },
  };
}

export function loadReferenceContent(root: string, lessonId: string, unitId: string): ReferenceContent {
  const paths = unitPaths(lessonId, unitId, root);
  readRequired(root, join(paths.reference, "index.ts"), `the reference solution of unit "${unitId}" starts at its index.ts.`);
  const files = globSync(["**/*.ts"], { cwd: paths.reference, ignore: ["**/node_modules/**"] })
    .sort((a, b) => (a === "index.ts" ? -1 : b === "index.ts" ? 1 : a.localeCompare(b)))
    .map((file) => {
      const absolutePath = join(paths.reference, file);
      return { path: relative(root, absolutePath), text: readFileSync(absolutePath, "utf8") };
    });
  const answers = readRequired(root, paths.answers, `the model answers of unit "${unitId}" are part of its reference.`);
  return { files, answers };
}
