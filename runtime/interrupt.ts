import { AsyncLocalStorage } from "node:async_hooks";
import { GraphRuntimeError } from "./errors.ts";

/** What a pending interrupt shows in getState().tasks[].interrupts. */
export interface Interrupt {
  value: unknown;
}

/**
 * Thrown by interrupt() to stop the running node. The runtime catches it,
 * saves an `__interrupt__` write for the task and ends the run. Node code must
 * not swallow it (a bare `catch {}` around interrupt() breaks pausing).
 */
export class GraphInterrupt extends Error {
  override name = "GraphInterrupt";
  constructor(
    readonly value: unknown,
    /** Which interrupt() call of the node this is: 0 for the first, 1 for the second... */
    readonly index: number,
  ) {
    super(`Graph interrupted: ${JSON.stringify(value) ?? String(value)}`);
  }
}

/** Passed to invoke()/stream() to answer the pending interrupt: `new Command({ resume: "approved" })`. */
export class Command<R = unknown> {
  readonly resume: R;
  constructor({ resume }: { resume: R }) {
    this.resume = resume;
  }
}

interface TaskScope {
  /** Answers saved for this task so far, one per interrupt() call, in call order. */
  resumeValues: readonly unknown[];
  calls: number;
}

// AsyncLocalStorage gives interrupt() the task it runs in without threading a
// context argument through the user's code, and keeps parallel tasks apart.
const currentTask = new AsyncLocalStorage<TaskScope>();

/**
 * Pause the node and hand `value` to the caller. On resume the node runs again
 * from its start; this time the same interrupt() call returns the answer.
 * Several interrupt() calls in one node are matched to answers by order, so
 * their order must not depend on anything that changes between runs.
 */
export function interrupt<R = unknown>(value: unknown): R {
  const scope = currentTask.getStore();
  if (!scope) {
    throw new GraphRuntimeError("interrupt() was called outside a running node; call it inside a node function passed to addNode().");
  }
  const index = scope.calls++;
  if (index < scope.resumeValues.length) return scope.resumeValues[index] as R;
  throw new GraphInterrupt(value, index);
}

/** Runs a node so that interrupt() inside it sees this task's saved answers. */
export function runWithResumeValues<T>(resumeValues: readonly unknown[], run: () => T): T {
  return currentTask.run({ resumeValues, calls: 0 }, run);
}
