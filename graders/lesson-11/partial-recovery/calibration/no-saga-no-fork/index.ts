/**
 * Calibration answer (adequate). Planted gaps: a permanently failing step just throws, leaving
 * the effects already done in place (no compensation), and `checkpointId` is ignored, so asking
 * to resume from an earlier checkpoint resumes the latest instead of forking. Crash recovery
 * itself is right.
 */
import { RecoveringExecutor, type Position, type TaskOutcome } from "../../../../../solutions/lesson-11/partial-recovery/executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "../../../../../solutions/lesson-11/partial-recovery/types.ts";
import { RecoveryError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";

export { RecoveryError, SchemaMismatchError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";
export type * from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

class NoSagaExecutor<S extends WorkflowState> extends RecoveringExecutor<S> {
  protected override async compensate(_position: Position, _state: S, failed: TaskOutcome): Promise<RunResult<S>> {
    throw new Error(failed.error);
  }
}

/** Checks that the requested checkpoint exists, then resumes the latest one anyway. */
export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  const { checkpointId, ...latestOnly } = options;
  if (checkpointId !== undefined && !(await options.saver.getTuple({ threadId: options.threadId, checkpointId }))) {
    throw new RecoveryError(`Thread "${options.threadId}" has no checkpoint "${checkpointId}".`);
  }
  return new NoSagaExecutor(workflow, latestOnly).run();
}
