/**
 * The check API every grader uses. A check is one Vitest test that carries its
 * rubric data (tier, weight, hint, lesson section, visibility) as task meta, so
 * the grading engine and the site read the rubric from the graders themselves.
 *
 *   const grader = defineGrader<SerdeApi>({ lesson: "lesson-11", unit: "serde", exports: ["dumpsTyped", "loadsTyped"] });
 *   grader.core("round-trips every JSON value", { hint: "...", section: "typed-tags" }, async (api) => { ... });
 */
import { appendFileSync } from "node:fs";
import { test } from "vitest";
import { findTampering } from "./integrity.ts";
import { ImplementationLoadError, loadImplementation } from "./implementation.ts";

export type Tier = "core" | "excellence";
export type Visibility = "public" | "hidden";

export interface CheckMeta {
  lesson: string;
  unit: string;
  tier: Tier;
  weight: number;
  /** What to change, in one or two sentences. */
  hint: string;
  /** Anchor of the lesson section to read (a heading slug of lessons/<lesson>/<unit>.md). */
  section: string;
  visibility: Visibility;
  /** Broad category shown for hidden checks instead of their details. */
  category: string;
  /** Per-check time limit in ms; the engine allows a little more before it kills a stuck process. */
  timeout: number;
}

declare module "vitest" {
  interface TaskMeta {
    check?: CheckMeta;
  }
}

export interface CheckOptions {
  hint: string;
  section: string;
  weight?: number;
  visibility?: Visibility;
  category?: string;
  /** Per-check timeout in ms (default 10 s). The engine's wall-clock limit still applies. */
  timeout?: number;
}

export type CheckBody<Api> = (api: Api) => unknown | Promise<unknown>;

export interface Grader<Api> {
  lesson: string;
  unit: string;
  /** The implementation under test, loaded once; throws a readable error if it does not load. */
  load(): Promise<Api>;
  core(title: string, options: CheckOptions, body: CheckBody<Api>): void;
  excellence(title: string, options: CheckOptions, body: CheckBody<Api>): void;
}

export interface GraderOptions {
  lesson: string;
  unit: string;
  /** Names the module must export; a missing one fails every check with a clear message. */
  exports: string[];
}

const DEFAULT_TIMEOUT_MS = 10_000;
const LOAD_LIMIT_MS = 8_000;

function withinLoadLimit<T>(loading: Promise<T>, unit: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ImplementationLoadError(`Your ${unit} module did not finish loading within ${LOAD_LIMIT_MS / 1000} s: is there a top-level await that never resolves?`)),
      LOAD_LIMIT_MS,
    );
  });
  return Promise.race([loading, limit]).finally(() => clearTimeout(timer));
}

export function defineGrader<Api>(options: GraderOptions): Grader<Api> {
  let loading: Promise<Api> | undefined;
  // Loaded once; a load that fails or hangs fails every check at once instead of each waiting out its timeout.
  const load = () => (loading ??= withinLoadLimit(loadImplementation<Api>(options.lesson, options.unit, options.exports), options.unit));

  const register = (tier: Tier) => (title: string, check: CheckOptions, body: CheckBody<Api>) => {
    const meta: CheckMeta = {
      lesson: options.lesson,
      unit: options.unit,
      tier,
      weight: check.weight ?? 1,
      hint: check.hint,
      section: check.section,
      visibility: check.visibility ?? "public",
      category: check.category ?? tier,
      timeout: check.timeout ?? DEFAULT_TIMEOUT_MS,
    };
    test(title, { meta: { check: meta }, timeout: meta.timeout }, async () => {
      reportProgress(title, meta.timeout);
      try {
        const api = await load();
        await body(api);
      } finally {
        const tampering = findTampering();
        if (tampering) {
          reportTampering(tampering);
          // eslint-disable-next-line no-unsafe-finally -- the check's own outcome no longer counts
          throw new Error(`The submission tampered with the grading environment: it ${tampering}.`);
        }
      }
    });
  };

  return { lesson: options.lesson, unit: options.unit, load, core: register("core"), excellence: register("excellence") };
}

/**
 * Tells the engine, synchronously and before any submission code runs, which
 * check is starting: if the submission then blocks the event loop, the engine
 * knows which check to name when it kills the process. Progress only moves a
 * deadline; results travel on the engine's signed channel.
 */
function reportProgress(title: string, timeoutMs: number): void {
  const file = process.env.CHECKPOINT_KIT_PROGRESS;
  if (file) appendFileSync(file, `${JSON.stringify({ title, timeoutMs })}\n`);
}

/** Tampering voids the whole unit, not just the check that noticed it: the engine is told directly. */
function reportTampering(what: string): void {
  const file = process.env.CHECKPOINT_KIT_PROGRESS;
  if (file) appendFileSync(file, `${JSON.stringify({ tampering: what })}\n`);
}

/** True when hidden checks should be registered (interviewer grading). The candidate bundle ships none. */
export function hiddenChecksEnabled(): boolean {
  return process.env.CHECKPOINT_KIT_HIDDEN === "1";
}
