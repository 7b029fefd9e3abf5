/**
 * Crash harness: runs a piece of the submission in a child process and kills it with SIGKILL
 * at a named crash point, so a grader can check what survives a real crash (only what was
 * persisted) and what a fresh process makes of it.
 *
 * Deterministic by construction: the child kills itself, synchronously, the moment it reaches
 * the crash point named in CHECKPOINT_KIT_CRASH_AT (`crashPoint(label)`), instead of the
 * parent guessing a moment from outside. Anything the child appended to a file before that
 * moment survives; anything in memory does not.
 *
 * Parent side: `runChild({ entry, args, crashAt })` forks the entry (a .ts file written per
 * unit), passes `args` as JSON, and resolves with how the child ended and what it returned.
 * `inParallel(tasks, 2)` runs many cases with bounded concurrency (the machine is shared).
 *
 * Child side: `childMain(async (args) => result)` runs the work, sends the result over IPC and
 * exits; `crashPoint(label)` is called wherever the unit wants a crash to be possible.
 *
 * Children start as learner-process.ts describes: TypeScript hooks with a disk cache (a crash
 * matrix starts dozens of processes) and the engine's sandbox flags, like the grader.
 */
import pLimit from "p-limit";
import { forkLearnerProcess } from "./learner-process.ts";

const CRASH_AT = "CHECKPOINT_KIT_CRASH_AT";
const ARGS = "CHECKPOINT_KIT_CRASH_ARGS";

// ---- parent side ------------------------------------------------------------------

export interface ChildRunOptions {
  /** Absolute path of the child entry (a .ts file that calls `childMain`). */
  entry: string;
  /** JSON-serialisable arguments, handed to the child's main function. */
  args: unknown;
  /** Label of the crash point at which the child kills itself; none = run to the end. */
  crashAt?: string;
  timeoutMs?: number;
  /** V8 heap limit of the child, in MB. */
  memoryMb?: number;
}

export type ChildOutcome<R> =
  | { kind: "finished"; result: R; stderr: string }
  | { kind: "failed"; message: string; stderr: string }
  | { kind: "crashed"; stderr: string }
  | { kind: "timed-out"; stderr: string }
  | { kind: "exited"; code: number | null; signal: string | null; stderr: string };

type ChildMessage = { type: "result"; value: unknown } | { type: "failed"; message: string };

export function runChild<R>(options: ChildRunOptions): Promise<ChildOutcome<R>> {
  const env: NodeJS.ProcessEnv = { ...process.env, [ARGS]: JSON.stringify(options.args) };
  delete env[CRASH_AT];
  if (options.crashAt !== undefined) env[CRASH_AT] = options.crashAt;
  const { child, stderr: stderrSoFar } = forkLearnerProcess(options.entry, { env, memoryMb: options.memoryMb });
  let message: ChildMessage | undefined;
  child.on("message", (received: ChildMessage) => {
    message ??= received;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 10_000);

  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const stderr = stderrSoFar();
      if (timedOut) resolve({ kind: "timed-out", stderr });
      else if (message?.type === "result") resolve({ kind: "finished", result: message.value as R, stderr });
      else if (message?.type === "failed") resolve({ kind: "failed", message: message.message, stderr });
      else if (signal === "SIGKILL") resolve({ kind: "crashed", stderr });
      else resolve({ kind: "exited", code, signal, stderr });
    });
  });
}

/** Runs the tasks with at most `concurrency` at a time; results in task order. */
export function inParallel<T>(tasks: ReadonlyArray<() => Promise<T>>, concurrency = 2): Promise<T[]> {
  const limit = pLimit(concurrency);
  return Promise.all(tasks.map((task) => limit(task)));
}

/** One line for a failure message: how a child ended, with the end of its stderr. */
export function describeOutcome(outcome: ChildOutcome<unknown>): string {
  const tail = outcome.stderr.trim() === "" ? "" : ` (its stderr ended with: ${outcome.stderr.trim().slice(-600)})`;
  switch (outcome.kind) {
    case "finished":
      return "it finished";
    case "failed":
      return `it threw: ${outcome.message}`;
    case "crashed":
      return "it was killed at its crash point";
    case "timed-out":
      return `it did not finish in time${tail}`;
    case "exited":
      return `it exited (${outcome.signal ?? `code ${outcome.code}`}) without reporting a result${tail}`;
  }
}

// ---- child side -------------------------------------------------------------------

/** Kills this process, as a power cut would, if `label` is the crash point it was started for. */
export function crashPoint(label: string): void {
  if (process.env[CRASH_AT] === label) process.kill(process.pid, "SIGKILL");
}

/** True when this process was started to crash somewhere (lets fixtures arrange the moment). */
export function crashTarget(): string | undefined {
  return process.env[CRASH_AT];
}

/** The child's entry point: runs `main(args)`, reports its result (or error) to the parent, exits. */
export function childMain<A, R>(main: (args: A) => Promise<R>): void {
  if (!process.send) throw new Error("childMain must run in a process started by runChild (no IPC channel).");
  const send = (message: ChildMessage) =>
    new Promise<void>((resolve) => {
      process.send!(message, undefined, undefined, () => resolve());
    });
  const args = JSON.parse(process.env[ARGS] ?? "null") as A;
  main(args)
    .then(
      (value) => send({ type: "result", value }),
      (error: unknown) => send({ type: "failed", message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
    )
    .finally(() => process.exit(0));
}
