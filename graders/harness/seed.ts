/**
 * One seed per grading run, so random inputs vary between runs but a failure
 * reproduces: the seed is printed in every failure message and recorded in the report.
 * Set CHECKPOINT_KIT_SEED to replay a run.
 */
import fc from "fast-check";

function pickSeed(): number {
  const fromEnv = process.env.CHECKPOINT_KIT_SEED;
  if (fromEnv !== undefined && /^-?\d+$/.test(fromEnv)) return Number(fromEnv) | 0;
  return (Math.random() * 2 ** 31) | 0;
}

export const SEED = pickSeed();

/** A small deterministic PRNG (mulberry32) for seeded inputs outside fast-check. */
export function seededRandom(seed: number = SEED): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** fast-check's assert with the run's seed; the failure message names the seed to replay. */
export async function assertProperty<Ts extends [unknown, ...unknown[]]>(
  property: fc.IAsyncPropertyWithHooks<Ts> | fc.IPropertyWithHooks<Ts>,
  options: { numRuns?: number } = {},
): Promise<void> {
  try {
    await fc.assert(property as fc.IAsyncProperty<Ts>, { seed: SEED, numRuns: options.numRuns ?? 100 });
  } catch (error) {
    // fast-check 4 reports the counterexample in the message and the check's own failure in `cause`.
    const message = error instanceof Error ? error.message : String(error);
    const cause = error instanceof Error && error.cause instanceof Error ? `\n${error.cause.message}` : "";
    throw new Error(`${message}${cause}\n(reproduce with CHECKPOINT_KIT_SEED=${SEED})`);
  }
}

/** Wraps a failure from seeded (non-fast-check) inputs with the seed. */
export function withSeed(message: string): string {
  return `${message} (seed ${SEED}; reproduce with CHECKPOINT_KIT_SEED=${SEED})`;
}

/** Fails a check with a message that names the seed (graders re-export it as `fail`). */
export function failWithSeed(message: string): never {
  throw new Error(withSeed(message));
}
