/**
 * Type-checks learner code before it is graded, with the kit's compiler
 * settings. One compiler program covers every unit (parsing the standard
 * library once); each diagnostic is reported against its unit, with paths as
 * the learner knows them (exercises/<lesson>/<unit>/...).
 */
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type TS from "typescript";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { typescript } from "./typescript.ts";

function sourceFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules") return [];
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(m?ts)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

function compilerOptions(): TS.CompilerOptions {
  const ts = typescript();
  const configPath = join(KIT_ROOT, "tsconfig.json");
  const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
  return ts.parseJsonConfigFileContent(config, ts.sys, KIT_ROOT).options;
}

const MAX_DIAGNOSTICS = 10;

/**
 * @param units unit id -> [folder to check, how to show that folder to the learner]
 * @returns unit id -> the compiler's messages, for units with errors only
 */
export function typecheckUnits(units: Map<string, { dir: string; shownAs: string }>): Map<string, string> {
  const roots = [...units.values()].flatMap(({ dir }) => sourceFiles(dir));
  if (roots.length === 0) return new Map();
  const ts = typescript();
  const program = ts.createProgram(roots, { ...compilerOptions(), noEmit: true });
  const byUnit = new Map<string, string[]>();
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const file = diagnostic.file?.fileName;
    const owner = file ? [...units].find(([, { dir }]) => file.startsWith(`${dir}/`)) : undefined;
    if (!owner || !diagnostic.file) continue; // errors outside learner code are the kit's business
    const [unit, { dir, shownAs }] = owner;
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    const where = `${join(shownAs, relative(dir, diagnostic.file.fileName))}:${line + 1}:${character + 1}`;
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    byUnit.set(unit, [...(byUnit.get(unit) ?? []), `${where} - error TS${diagnostic.code}: ${text}`]);
  }
  return new Map(
    [...byUnit].map(([unit, lines]) => [
      unit,
      lines.slice(0, MAX_DIAGNOSTICS).join("\n") + (lines.length > MAX_DIAGNOSTICS ? `\n… and ${lines.length - MAX_DIAGNOSTICS} more` : ""),
    ]),
  );
}
