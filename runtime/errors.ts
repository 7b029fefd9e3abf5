/**
 * The runtime's own errors. Each message says what was wrong and how to fix
 * the call, because a learner meets them while writing exercises.
 */

/** Base class: `catch (e) { if (e instanceof GraphRuntimeError) ... }` catches every runtime error. */
export class GraphRuntimeError extends Error {
  override name = "GraphRuntimeError";
}

/** The graph was built wrong: unknown node, duplicate name, missing edge. */
export class GraphDefinitionError extends GraphRuntimeError {
  override name = "GraphDefinitionError";
}

/** A call got a bad argument: config without threadId, a filter that cannot be applied... */
export class InvalidArgumentError extends GraphRuntimeError {
  override name = "InvalidArgumentError";
}

/** An input or a node's return value does not fit the state's channels. */
export class InvalidUpdateError extends GraphRuntimeError {
  override name = "InvalidUpdateError";
}

/** There is nothing to resume: empty thread, unknown checkpoint, no pending interrupt. */
export class ResumeError extends GraphRuntimeError {
  override name = "ResumeError";
}

/** The run took more super-steps than `recursionLimit` allows (usually a routing loop). */
export class GraphRecursionError extends GraphRuntimeError {
  override name = "GraphRecursionError";
}

/** Bytes could not be turned back into a value (unknown tag, corrupt payload). */
export class SerializationError extends GraphRuntimeError {
  override name = "SerializationError";
}

/** The checkpoint was written by another version of the state schema and no `migrate` was given. */
export class StateSchemaMismatchError extends GraphRuntimeError {
  override name = "StateSchemaMismatchError";
  constructor(
    readonly checkpointVersion: number,
    readonly graphVersion: number,
    checkpointId: string,
  ) {
    super(
      `Checkpoint ${checkpointId} was written with state schema version ${checkpointVersion}, ` +
        `but this graph is compiled with version ${graphVersion}. Resuming would run new code on an old state shape: ` +
        `pass compile({ stateSchemaVersion: ${graphVersion}, migrate: (state, fromVersion) => newState }), ` +
        `or start a new thread.`,
    );
  }
}
