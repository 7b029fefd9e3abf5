/**
 * lesson-11 / partial-recovery, reference solution. The contract is in
 * exercises/lesson-11/partial-recovery/index.ts; the executor is in executor.ts.
 */
import { RecoveringExecutor } from "./executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "./types.ts";

export { RecoveryError, SchemaMismatchError } from "./errors.ts";
export { recoveryMetrics } from "./metrics.ts";
export type * from "./types.ts";

/** Starts the thread, or resumes it from its latest (or the given) checkpoint, and runs it to the end. */
export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  return new RecoveringExecutor(workflow, options).run();
}
