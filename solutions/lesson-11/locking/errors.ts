/** The unit's errors: each says what went wrong and what the caller should do next. */

/** Base class, so a caller can catch every error of this unit in one clause. */
export class LockingError extends Error {
  // Stryker disable next-line StringLiteral: the unit never throws a bare LockingError; every error it throws is a subclass that sets its own name
  override name = "LockingError";
}

/** Bad input to a store, lease or retry call (an empty thread id, a negative version, ...). */
export class LockingInputError extends LockingError {
  override name = "LockingInputError";
}

/**
 * Another writer got there first: the stored version is not the one this write was based on.
 * The right reaction is to re-read, re-apply the change to the fresh state and try again.
 */
export class VersionConflictError extends LockingError {
  override name = "VersionConflictError";

  constructor(
    readonly threadId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(
      `Version conflict on thread "${threadId}": the write expected version ${expectedVersion} ` +
        `but the store holds version ${actualVersion}. Re-read the thread and apply the change again.`,
    );
  }
}

/**
 * The writer's lease was superseded: a newer lease holder has already written with a higher
 * fencing token. Retrying cannot help; the writer must stop and, if it still has work, acquire
 * a new lease.
 */
export class StaleFencingTokenError extends LockingError {
  override name = "StaleFencingTokenError";

  constructor(
    readonly threadId: string,
    readonly fencingToken: number,
    readonly newestToken: number,
  ) {
    super(
      `Stale fencing token on thread "${threadId}": this write carries token ${fencingToken} ` +
        `but the store has already accepted token ${newestToken}. Your lease was lost (expired while ` +
        `you were paused); stop writing and acquire a new lease.`,
    );
  }
}
