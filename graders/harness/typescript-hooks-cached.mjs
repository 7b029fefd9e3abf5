/**
 * typescript-hooks.mjs with a disk cache, for harnesses that start many processes. A crash matrix starts dozens
 * of short-lived processes; loading the `typescript` package costs ~0.8 s in each, while the
 * code they run is the same every time. Transpiled output is cached in the temp directory
 * (the one place a sandboxed child may write), keyed by path and content, so only the first
 * process of a run pays for the compiler.
 *
 *   node --import <this file's URL> entry.ts
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { register } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";

if (isMainThread) register(import.meta.url);

const cacheDir = join(tmpdir(), "checkpoint-kit-ts-cache");
let transpiler;

export async function load(url, context, nextLoad) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const source = readFileSync(path, "utf8");
  const cached = join(cacheDir, `${createHash("sha256").update(path).update("\0").update(source).digest("hex")}.js`);
  try {
    return { format: "module", source: readFileSync(cached, "utf8"), shortCircuit: true };
  } catch {
    // not cached yet: transpile below
  }
  transpiler ??= await import("./typescript-hooks.mjs");
  const result = await transpiler.load(url, context, nextLoad);
  try {
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    writeFileSync(partial, result.source);
    renameSync(partial, cached); // atomic: a concurrent reader sees all of it or nothing
  } catch {
    // a cache we cannot write only costs time
  }
  return result;
}
