/**
 * Compiles what a learner process runs (the learner's module, the process's own
 * entry point, and any learner-side fixtures a grader ships) to plain JavaScript,
 * once per grading: every learner process then starts on compiled code, with no
 * TypeScript loader and no cold transpile, however many processes a check starts.
 *
 * The learner's module may import its own files, the kit's runtime (#runtime)
 * and the kit's dependencies; anything else (the reference solutions, the
 * graders, calibration answers) is refused at compile time.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

export const KIT_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const CACHE_ROOT = join(KIT_ROOT, "node_modules", ".cache", "checkpoint-kit");

export class CompileError extends Error {
  override name = "CompileError";
}

export interface Build {
  /** Folder holding main.mjs (the process entry), unit.mjs and fixtures/<name>.mjs. */
  dir: string;
  unit: string;
  fixtures: Record<string, string>;
}

export interface CompileRequest {
  /** Folder with the learner's index.ts. */
  implementationDir: string;
  /** Learner-side fixture modules (trusted code the grader runs next to the learner's), by name. */
  fixtures?: Record<string, string>;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out.sort();
}

function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/** Bare package imports stay imports (resolved from node_modules at run time); other paths are checked. */
function confine(allowed: string[], shownFrom: string): Plugin {
  return {
    name: "checkpoint-kit:confine",
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: /^[^./#]/ }, (args) => (args.path.startsWith("node:") || !args.path.startsWith("/") ? { path: args.path, external: true } : undefined));
      pluginBuild.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === "confined") return undefined;
        const result = await pluginBuild.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: "confined" });
        if (result.errors.length > 0) return { errors: result.errors };
        if (result.external || within(result.path, join(KIT_ROOT, "node_modules"))) return result;
        if (!allowed.some((folder) => within(result.path, folder))) {
          return {
            errors: [
              {
                text: `"${args.path}" resolves to ${relative(shownFrom, result.path)}, outside your unit's folder and the kit's runtime: a submission may import only its own files, #runtime and the kit's dependencies`,
              },
            ],
          };
        }
        return result;
      });
    },
  };
}

function hashInputs(request: CompileRequest): string {
  const hash = createHash("sha256");
  const sources = [
    ...filesUnder(request.implementationDir),
    ...filesUnder(join(KIT_ROOT, "runtime")),
    ...filesUnder(join(KIT_ROOT, "kit", "sandbox")),
    ...Object.values(request.fixtures ?? {}),
  ];
  for (const file of sources) {
    hash.update(file).update("\0");
    try {
      if (statSync(file).isFile()) hash.update(readFileSync(file));
    } catch {
      // vanished while we looked: the hash differs either way
    }
  }
  return hash.digest("hex").slice(0, 24);
}

/**
 * Rewrites the source paths an inline source map names, so that a stack trace in the learner
 * process says where code is without saying what runs it: the learner's files as paths inside
 * their own folder (index.ts), the runtime as runtime/..., and the kit's code (the process
 * entry, the grader's fixtures and harness) under an opaque name. A submission that reads its
 * stack for "grader", "harness" or "test" finds nothing, wherever its folder lives.
 */
function neutralizeSourceMap(file: string, implementationDir: string): void {
  const text = readFileSync(file, "utf8");
  const marker = "//# sourceMappingURL=data:application/json;base64,";
  const at = text.lastIndexOf(marker);
  if (at < 0) return;
  const map = JSON.parse(Buffer.from(text.slice(at + marker.length).trim(), "base64").toString("utf8")) as { sources: string[] };
  const runtime = join(KIT_ROOT, "runtime");
  map.sources = map.sources.map((source) => {
    const absolute = resolve(dirname(file), source);
    if (absolute.startsWith(implementationDir + sep)) return relative(implementationDir, absolute);
    if (absolute.startsWith(runtime + sep)) return `runtime/${relative(runtime, absolute)}`;
    const modules = absolute.lastIndexOf(`${sep}node_modules${sep}`);
    if (modules >= 0) return absolute.slice(modules + 1);
    return `lib/${createHash("sha256").update(absolute).digest("hex").slice(0, 8)}.js`;
  });
  writeFileSync(file, `${text.slice(0, at)}${marker}${Buffer.from(JSON.stringify(map)).toString("base64")}\n`);
}

/** Compiles (or reuses a cached compile of) the learner's module, the process entry and fixtures. */
export async function compileLearner(request: CompileRequest): Promise<Build> {
  const entry = join(request.implementationDir, "index.ts");
  if (!existsSync(entry)) throw new CompileError("No implementation found: expected an index.ts in the unit's folder.");
  const dir = join(CACHE_ROOT, hashInputs(request));
  const fixtures = Object.fromEntries(Object.keys(request.fixtures ?? {}).map((name, i) => [name, join(dir, "lib", `part${i}.mjs`)]));
  const result: Build = { dir, unit: join(dir, "unit.mjs"), fixtures };
  if (existsSync(join(dir, "complete"))) return result;

  const staging = `${dir}.${process.pid}.${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  const common = {
    bundle: true,
    format: "esm" as const,
    platform: "node" as const,
    target: "node20",
    sourcemap: "inline" as const,
    // No comments in the output: esbuild names each source file in one, and the paths say where the code came from.
    minifyWhitespace: true,
    logLevel: "silent" as const,
    // ESM bundles have no require(); some CommonJS dependencies expect one.
    banner: { js: 'import { createRequire as __ckRequire } from "node:module"; const require = __ckRequire(import.meta.url);' },
  };
  try {
    await build({
      ...common,
      entryPoints: [entry],
      outfile: join(staging, "unit.mjs"),
      plugins: [confine([request.implementationDir, join(KIT_ROOT, "runtime")], dirname(request.implementationDir))],
    });
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    const errors = (error as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } | null }> }).errors ?? [];
    const shown = errors
      .slice(0, 5)
      .map((e) => (e.location ? `${relative(request.implementationDir, resolve(KIT_ROOT, e.location.file))}:${e.location.line}:${e.location.column + 1}: ${e.text}` : e.text))
      .join("\n");
    throw new CompileError(shown || String(error));
  }
  await build({ ...common, entryPoints: [join(KIT_ROOT, "kit", "sandbox", "host.ts")], outfile: join(staging, "main.mjs"), plugins: [confine([join(KIT_ROOT, "kit", "sandbox")], KIT_ROOT)] });
  for (const [i, source] of Object.values(request.fixtures ?? {}).entries()) {
    await build({ ...common, entryPoints: [source], outfile: join(staging, "lib", `part${i}.mjs`), plugins: [confine([dirname(source), join(KIT_ROOT, "runtime"), join(KIT_ROOT, "graders", "harness")], KIT_ROOT)] });
  }
  const implementationDir = resolve(request.implementationDir);
  for (const file of [join(staging, "unit.mjs"), join(staging, "main.mjs"), ...Object.keys(request.fixtures ?? {}).map((_, i) => join(staging, "lib", `part${i}.mjs`))]) neutralizeSourceMap(file, implementationDir);
  writeFileSync(join(staging, "complete"), "");
  try {
    renameSync(staging, dir);
  } catch {
    // another process compiled the same inputs first: use theirs
    rmSync(staging, { recursive: true, force: true });
  }
  return result;
}
