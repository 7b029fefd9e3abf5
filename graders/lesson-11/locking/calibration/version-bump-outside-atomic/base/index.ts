/**
 * Reference solution of lesson-11 / locking: optimistic concurrency on SQLite and Redis,
 * leases with fencing tokens, bounded retry, and degradation to memory when Redis fails.
 */
export { LockingError, LockingInputError, StaleFencingTokenError, VersionConflictError } from "./errors.ts";
export { MemoryVersionedStore, type PutOptions, type Versioned, type VersionedStore } from "./versioned-store.ts";
export { SqliteVersionedStore, type SqliteStoreOptions } from "./sqlite-store.ts";
export { RedisVersionedStore, type RedisStoreOptions } from "./redis-store.ts";
export { DEFAULT_NAMESPACE, threadKeys, type ThreadKeys } from "./keys.ts";
export { updateWithRetry, backoffDelay, type RetryOptions, type RetryResult } from "./retry.ts";
export { acquireLease, type Lease, type LeaseOptions } from "./lease.ts";
export { ResilientStore, type ResilientStoreOptions, type ResilientPutResult, type ResilientGetResult, type ReconcileReport } from "./resilient-store.ts";
