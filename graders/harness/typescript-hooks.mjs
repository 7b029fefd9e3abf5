/**
 * Module hooks that let a plain `node` child process run the kit's TypeScript:
 * `.ts` files are transpiled in memory with the `typescript` package (types
 * stripped, nothing checked). tsx would be the obvious choice, but it starts
 * esbuild as a subprocess, and a child confined by Node's permission model
 * (see CHECKPOINT_KIT_SANDBOX_FLAGS) may not start processes.
 *
 *   node --import <this file's URL> entry.ts
 */
import { readFile } from "node:fs/promises";
import { register } from "node:module";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";

// One file is both the --import entry (main thread: register) and the hooks (loaded again on the hooks thread).
if (isMainThread) register(import.meta.url);

let typescript;

export async function load(url, context, nextLoad) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  typescript ??= (await import("typescript")).default;
  const path = fileURLToPath(url);
  const { outputText } = typescript.transpileModule(await readFile(path, "utf8"), {
    fileName: path,
    compilerOptions: {
      module: typescript.ModuleKind.ESNext,
      target: typescript.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      inlineSourceMap: true,
    },
  });
  return { format: "module", source: outputText, shortCircuit: true };
}
