/**
 * Writers in several OS processes at once. Concurrency inside one Node process is only async
 * interleaving: a store that guards a read-then-write with a process-wide mutex, or a SQLite
 * store whose SELECT and unconditional write run back to back (better-sqlite3 is synchronous),
 * looks atomic there and loses updates as soon as a second process writes. So checks of
 * "no lost update" spread their writers over several learner processes:
 *
 *   const runs = await inProcesses(check, { processes: 4, writers: 20 }, async ({ api, learner, writers, start }) => {
 *     const stores = await Promise.all(writers.map(() => new api.Store(file)));
 *     const f = await check.fixture<Fixture>("writers", learner);
 *     return f.run({ stores, start, ... }); // learner-side code awaits start() right before its loop
 *   });
 *
 * Each process is a fresh learner (`check.spawn()`), killed when the check ends. `start` is a
 * barrier on the trusted side, handed to the learner-side loop as a callback: nobody starts
 * until every process has built its stores and called it, so the writers really overlap.
 */
import type { CheckContext } from "./check.ts";
import type { LearnerProcess } from "../../kit/sandbox/learner.ts";

export interface WriterProcess<Api> {
  /** 0-based index of the process. */
  index: number;
  learner: LearnerProcess;
  api: Api;
  /** Global indices of the writers this process runs (round-robin over the processes). */
  writers: number[];
  /** Await in learner-side code right before the writers start: resolves once every process has called it. */
  start: () => Promise<void>;
}

export interface ProcessesOptions {
  /** Learner processes to start; at least 2 (one process proves nothing about cross-process atomicity). */
  processes: number;
  /** Writers in all, spread round-robin over the processes. */
  writers: number;
}

/** A barrier: `arrive()` resolves for everyone once `parties` calls have arrived. */
export function barrier(parties: number): { arrive: () => Promise<void>; arrived: () => number } {
  let count = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    arrive: () => {
      if (++count >= parties) open();
      return opened;
    },
    arrived: () => count,
  };
}

/**
 * Starts `processes` learner processes, gives each its share of `writers`, runs `body` in all of
 * them at once behind one barrier, and returns their results in process order. If a process
 * fails before reaching the barrier, the others are released (they would wait for ever) and the
 * failure is rethrown.
 */
export async function inProcesses<Api, R>(check: CheckContext<Api>, options: ProcessesOptions, body: (process: WriterProcess<Api>) => Promise<R>): Promise<R[]> {
  if (options.processes < 2) throw new Error("grader bug: inProcesses needs at least 2 processes");
  const spawned = await Promise.all(Array.from({ length: options.processes }, () => check.spawn()));
  const gate = barrier(options.processes);
  const runs = spawned.map(({ learner, api }, index) => {
    const writers = Array.from({ length: options.writers }, (_, w) => w).filter((w) => w % options.processes === index);
    let arrived = false;
    const start = () => {
      arrived = true;
      return gate.arrive();
    };
    return body({ index, learner, api, writers, start }).catch((error: unknown) => {
      // Release the others so the check fails with this error instead of hanging at the barrier.
      if (!arrived) void gate.arrive();
      throw error;
    });
  });
  return Promise.all(runs);
}

/** True when every interval overlaps every other one: the writers of the processes really ran at the same time. */
export function allOverlap(intervals: Array<{ began: number; ended: number }>): boolean {
  return intervals.every((a) => intervals.every((b) => a.began <= b.ended && b.began <= a.ended));
}
