/**
 * The contract every store of this unit keeps: a thread's latest state plus a version number,
 * written only by compare-and-set, optionally fenced by a lease's token.
 */
import { z } from "zod";
import { LockingInputError, StaleFencingTokenError, VersionConflictError } from "./errors.ts";

/** A thread's latest state and the version that wrote it (1 for the first write). */
export interface Versioned<S> {
  state: S;
  version: number;
}

export interface PutOptions {
  /** The writer's lease token; a store refuses a token older than the newest it has accepted. */
  fencingToken?: number;
}

export interface VersionedStore<S = unknown> {
  /** The latest state and its version, or undefined for a thread never written (version 0). */
  get(threadId: string): Promise<Versioned<S> | undefined>;
  /**
   * Writes `state` if the stored version still equals `expectedVersion` (0 = the thread does not
   * exist yet), in one atomic step, and returns the new version (`expectedVersion + 1`).
   * @throws VersionConflictError when another writer changed the thread first
   * @throws StaleFencingTokenError when `fencingToken` is older than one the store already accepted
   */
  put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number>;
}

const threadIdSchema = z.string().min(1, "must not be empty");
const versionSchema = z.number().int("must be an integer").nonnegative("must be 0 or more").max(Number.MAX_SAFE_INTEGER);
const fencingTokenSchema = z.number().int("must be an integer").positive("must be 1 or more").max(Number.MAX_SAFE_INTEGER);
const putOptionsSchema = z.object({ fencingToken: fencingTokenSchema.optional() }).optional();

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string, example: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const reason = result.error.issues.map((issue) => issue.message).join("; ");
  throw new LockingInputError(`Invalid ${what} (${JSON.stringify(value) ?? String(value)}): ${reason}. Example: ${example}.`);
}

export function validateThreadId(threadId: unknown): string {
  return parse(threadIdSchema, threadId, "threadId", `"tenant-a:thread-42"`);
}

/** Validates the arguments of `put` once, at the boundary, for every store. */
export function validatePut(threadId: unknown, expectedVersion: unknown, options: unknown): { threadId: string; expectedVersion: number; fencingToken: number | undefined } {
  return {
    threadId: validateThreadId(threadId),
    expectedVersion: parse(versionSchema, expectedVersion, "expectedVersion", "0 for a new thread, else the version get() returned"),
    fencingToken: parse(putOptionsSchema, options, "options", "{ fencingToken: lease.token }")?.fencingToken,
  };
}

/** State is stored as JSON; anything JSON cannot carry is refused instead of silently changed. */
export function encodeState(threadId: string, state: unknown): string {
  const encoded = JSON.stringify(state);
  if (encoded === undefined) {
    throw new LockingInputError(`The state for thread "${threadId}" is not JSON-serialisable (got ${typeof state}); pass a plain object.`);
  }
  return encoded;
}

/**
 * In-memory store for one process. Each put runs synchronously between awaits, so the check and
 * the write cannot interleave with another caller: atomic by construction, and shared by nothing
 * outside this process. ResilientStore uses the same rules for its fallback.
 */
export class MemoryVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly threads = new Map<string, { encoded: string; version: number; newestToken: number }>();

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const entry = this.threads.get(validateThreadId(threadId));
    return entry && { state: JSON.parse(entry.encoded) as S, version: entry.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const encoded = encodeState(args.threadId, state);
    const current = this.threads.get(args.threadId);
    assertWritable(args.threadId, current?.version ?? 0, current?.newestToken ?? 0, args.expectedVersion, args.fencingToken);
    const version = args.expectedVersion + 1;
    this.threads.set(args.threadId, { encoded, version, newestToken: Math.max(current?.newestToken ?? 0, args.fencingToken ?? 0) });
    return version;
  }
}

/**
 * The two conditions of a write, in the order every store checks them: a superseded lease
 * first (retrying cannot help it), then the version (retrying can).
 */
export function assertWritable(threadId: string, actualVersion: number, newestToken: number, expectedVersion: number, fencingToken: number | undefined): void {
  if (fencingToken !== undefined && fencingToken < newestToken) {
    throw new StaleFencingTokenError(threadId, fencingToken, newestToken);
  }
  if (actualVersion !== expectedVersion) {
    throw new VersionConflictError(threadId, expectedVersion, actualVersion);
  }
}
