/**
 * Calibration answer (needs improvement). Planted mistake: each checkpoint records the node(s)
 * that just finished as `next`, as the naive executor in the seed material did with
 * `currentNode`, instead of the node(s) to run next. The live run still follows the right route,
 * so an uncrashed run looks fine; a resume runs the finished node again.
 */
import { RecoveringExecutor, type Position } from "../../../../../solutions/lesson-11/partial-recovery/executor.ts";
import type { RunOptions, RunResult, Workflow, WorkflowState } from "../../../../../solutions/lesson-11/partial-recovery/types.ts";
import type { CheckpointMetadata } from "#runtime";

export { RecoveryError, SchemaMismatchError } from "../../../../../solutions/lesson-11/partial-recovery/errors.ts";
export type * from "../../../../../solutions/lesson-11/partial-recovery/types.ts";

class FinishedNodeExecutor<S extends WorkflowState> extends RecoveringExecutor<S> {
  protected override async saveCheckpoint(parent: Position | undefined, state: WorkflowState, next: string[], metadata: CheckpointMetadata, version?: number): Promise<Position> {
    const justFinished = metadata.source === "loop" && typeof metadata.node === "string" ? metadata.node.split(",") : next;
    const saved = await super.saveCheckpoint(parent, state, justFinished, metadata, version);
    return { ...saved, checkpoint: { ...saved.checkpoint, next } };
  }
}

export async function runWorkflow<S extends WorkflowState>(workflow: Workflow<S>, options: RunOptions<S>): Promise<RunResult<S>> {
  return new FinishedNodeExecutor(workflow, options).run();
}
