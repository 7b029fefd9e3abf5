/**
 * Calibration answer, adequate but not excellent. Planted gap: no fencing. Versions and leases
 * are right, but the stores ignore the fencing token, so a holder paused past its lease can
 * still overwrite the newer holder's checkpoint once it re-reads. Everything else is the reference.
 */
import {
  RedisVersionedStore as ReferenceRedisStore,
  SqliteVersionedStore as ReferenceSqliteStore,
  type PutOptions,
} from "./base/index.ts";
import { validatePut } from "./base/versioned-store.ts";

export * from "./base/index.ts";

export class SqliteVersionedStore<S = unknown> extends ReferenceSqliteStore<S> {
  override async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    validatePut(threadId, expectedVersion, options);
    return super.put(threadId, state, expectedVersion); // the gap: the token is checked for shape, then dropped
  }
}

export class RedisVersionedStore<S = unknown> extends ReferenceRedisStore<S> {
  override async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    validatePut(threadId, expectedVersion, options);
    return super.put(threadId, state, expectedVersion); // the gap: the token is checked for shape, then dropped
  }
}
