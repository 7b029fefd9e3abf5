/**
 * Finds and imports the implementation a grader is pointed at. The engine sets
 * CHECKPOINT_KIT_UNIT_DIR (the starter, the reference, a calibration answer or a
 * submission); without it, the learner's own exercises/ are graded.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const KIT_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export class ImplementationLoadError extends Error {
  override name = "ImplementationLoadError";
}

export function implementationDir(lesson: string, unit: string): string {
  return process.env.CHECKPOINT_KIT_UNIT_DIR ?? join(KIT_ROOT, "exercises", lesson, unit);
}

export async function loadImplementation<Api>(lesson: string, unit: string, exportNames: string[]): Promise<Api> {
  const dir = implementationDir(lesson, unit);
  const entry = join(dir, "index.ts");
  if (!existsSync(entry)) {
    throw new ImplementationLoadError(`No implementation found: expected ${lesson}/${unit}/index.ts.`);
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new ImplementationLoadError(`Your ${unit} module threw while it was being imported: ${reason}`);
  }
  const missing = exportNames.filter((name) => module[name] === undefined);
  if (missing.length > 0) {
    throw new ImplementationLoadError(
      `Your ${unit} module does not export ${missing.map((m) => `\`${m}\``).join(", ")}; keep the names of the starter's contract.`,
    );
  }
  return module as Api;
}
