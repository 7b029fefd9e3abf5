/**
 * Crash harness: a crash victim is a learner process (`check.spawn()`) that the trusted side
 * SIGKILLs at a moment it observes itself, so a grader can check what survives a real crash
 * (only what was persisted) and what a fresh process makes of it.
 *
 * Deterministic by construction: the moment is never guessed from outside with a timer. The
 * trusted side kills the victim while the victim is waiting for it: inside a callback the
 * learner's code called (a provider, a node body, a store notification), before that callback
 * replies. So the learner's code cannot have gone past the crash point on that path, and what it
 * had persisted before is all that survives.
 *
 *   const crash = new CrashSwitch();
 *   crash.arm(learner);                    // this process is the one to kill
 *   ...inside a trusted callback: if (at the crash point) return crash.fire();
 *   const outcome = await untilCrash(learner, api.run(...));   // finished | failed | crashed | exited
 *
 * Nothing the learner process sees (env, argv, ids, file names) names the check or the crash
 * point: the switch lives on the trusted side only.
 */
import pLimit from "p-limit";
import type { LearnerProcess } from "../../kit/sandbox/learner.ts";

export type CrashOutcome<R> =
  | { kind: "finished"; result: R }
  | { kind: "failed"; error: unknown; message: string }
  | { kind: "crashed" }
  | { kind: "exited"; message: string };

/** Kills the learner process it is armed with, from inside a trusted callback. */
export class CrashSwitch {
  private victim: LearnerProcess | undefined;
  private firedAt: LearnerProcess | undefined;

  /** The process the next fire() kills (a resume process is armed afresh, or not at all). */
  arm(victim: LearnerProcess | undefined): void {
    this.victim = victim;
  }

  get armed(): boolean {
    return this.victim !== undefined && this.victim.running;
  }

  /** True once this switch killed a process. */
  get fired(): boolean {
    return this.firedAt !== undefined;
  }

  /**
   * SIGKILLs the armed process and returns a promise that never settles: return it from the
   * callback, so the learner never gets a reply (the process is dying; nothing is sent to it).
   */
  fire(): Promise<never> {
    const victim = this.victim;
    if (!victim) throw new Error("grader bug: CrashSwitch.fire() without an armed process");
    this.firedAt = victim;
    this.victim = undefined;
    victim.kill("SIGKILL");
    return new Promise<never>(() => undefined);
  }
}

/** Awaits a call into the learner process and says how it ended: with a result, an error, a crash or another exit. */
export async function untilCrash<R>(learner: LearnerProcess, work: Promise<R>): Promise<CrashOutcome<R>> {
  try {
    return { kind: "finished", result: await work };
  } catch (error) {
    // A call cut short by the process's death is rejected after its exit is recorded.
    if (!learner.running) {
      if (learner.killedOnPurpose) return { kind: "crashed" };
      return { kind: "exited", message: learner.describeExit() };
    }
    return { kind: "failed", error, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

/** Runs the tasks with at most `concurrency` at a time; results in task order. */
export function inParallel<T>(tasks: ReadonlyArray<() => Promise<T>>, concurrency = 2): Promise<T[]> {
  const limit = pLimit(concurrency);
  return Promise.all(tasks.map((task) => limit(task)));
}

/** One line for a failure message: how a run ended. */
export function describeOutcome(outcome: CrashOutcome<unknown>): string {
  switch (outcome.kind) {
    case "finished":
      return "it finished";
    case "failed":
      return `it threw ${outcome.message}`;
    case "crashed":
      return "it was killed at its crash point";
    case "exited":
      return outcome.message;
  }
}
