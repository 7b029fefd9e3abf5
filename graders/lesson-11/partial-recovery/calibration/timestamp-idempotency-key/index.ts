/**
 * Calibration answer (needs improvement). Planted mistake: the idempotency key carries the
 * current time, so the retry after a crash between an effect and its checkpoint sends a key the
 * provider has never seen, and the customer is charged twice.
 */
import { RecoveringExecutor } from "../../../../../solutions/lesson-11/partial-recovery/executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

export { RecoveryError, SchemaMismatchError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";
export type * from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

class TimestampKeyExecutor<S extends WorkflowState> extends RecoveringExecutor<S> {
  protected override idempotencyKey(_checkpointId: string, node: string): string {
    return `${this.options.threadId}:${node}:${Date.now()}`;
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  return new TimestampKeyExecutor(workflow, options).run();
}
