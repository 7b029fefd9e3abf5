/**
 * Calibration answer (adequate). Planted gap: finished tasks' updates are never read back from
 * the pending writes, so after a crash the whole step runs again: a parallel branch that had
 * finished is recomputed (effects stay exactly once only thanks to the stable keys).
 */
import { RecoveringExecutor, type Position } from "../../../../../solutions/lesson-11/partial-recovery/executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

export { RecoveryError, SchemaMismatchError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";
export type * from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

class ForgetfulExecutor<S extends WorkflowState> extends RecoveringExecutor<S> {
  protected override async startingPoint(): Promise<Position> {
    const position = await super.startingPoint();
    return { ...position, pendingWrites: [] };
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  return new ForgetfulExecutor(workflow, options).run();
}
