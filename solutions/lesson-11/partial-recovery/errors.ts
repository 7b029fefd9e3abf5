/** The unit's errors. Messages say what was wrong and what to do about it. */

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

/** The paused run was written by another version of the state schema and no migrate() was given. */
export class SchemaMismatchError extends RecoveryError {
  override name = "SchemaMismatchError";
  constructor(
    readonly checkpointVersion: number,
    readonly workflowVersion: number,
    checkpointId: string,
  ) {
    super(
      `Checkpoint ${checkpointId} was written by state schema version ${checkpointVersion}, but the workflow is now version ${workflowVersion}: ` +
        `give the workflow migrate(state, fromVersion), or start the work again on a new thread.`,
    );
  }
}
