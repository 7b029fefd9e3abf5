/**
 * Calibration answer (needs improvement). Planted mistake: checkpoints are written correctly,
 * but a call on an existing thread starts again from the input instead of the latest
 * checkpoint, so everything before the crash runs again - effects included, under new keys.
 */
import { RecoveringExecutor, type Position } from "../../../../../solutions/lesson-11/partial-recovery/executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

export { RecoveryError, SchemaMismatchError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";
export type * from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

class ReplayingExecutor<S extends WorkflowState> extends RecoveringExecutor<S> {
  protected override async startingPoint(): Promise<Position> {
    const { input, checkpointId } = this.options;
    if (input === undefined || checkpointId !== undefined) return super.startingPoint();
    return this.saveCheckpoint(undefined, input, [...this.workflow.start], { source: "input", step: -1 });
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  return new ReplayingExecutor(workflow, options).run();
}
