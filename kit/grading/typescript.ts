/**
 * The TypeScript compiler, loaded on first use. It takes about half a second to
 * load, which a grading of reference code (no type check) would otherwise spend
 * before its first unit starts; the grade CLI warms it while the units run.
 */
import { createRequire } from "node:module";
import type TS from "typescript";

let loaded: typeof TS | undefined;

export function typescript(): typeof TS {
  loaded ??= createRequire(import.meta.url)("typescript") as typeof TS;
  return loaded;
}
