/**
 * Calibration answer. Planted mistake: the version is bumped outside the atomic step. The
 * compare-and-set checks the version and writes the state atomically, but the version is
 * incremented by a second command afterwards; a writer whose check lands between the two sees
 * the old version, passes, and overwrites the state just written (a lost update).
 * Everything else is the reference.
 */
import Database from "better-sqlite3";
import { StaleFencingTokenError, VersionConflictError } from "./base/errors.ts";
import { encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "./base/versioned-store.ts";

export * from "./base/index.ts";
import { RedisVersionedStore as ReferenceRedisStore } from "./base/redis-store.ts";

// Checks version and fence, writes the state, but leaves the version as it was.
const WRITE_STATE_SCRIPT = `
local current = redis.call('HMGET', KEYS[1], 'version', 'fence')
local version = tonumber(current[1]) or 0
local fence = tonumber(current[2]) or 0
if ARGV[3] ~= '' then
  local token = tonumber(ARGV[3])
  if token < fence then return {'stale', fence} end
  fence = token
end
if version ~= tonumber(ARGV[1]) then return {'conflict', version} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'fence', fence)
return {'ok', version}
`;

export class RedisVersionedStore<S = unknown> extends ReferenceRedisStore<S> {
  override async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const key = this.stateKey(args.threadId);
    const token = args.fencingToken === undefined ? "" : String(args.fencingToken);
    const [outcome, value] = (await this.redis.eval(WRITE_STATE_SCRIPT, 1, key, String(args.expectedVersion), encodeState(args.threadId, state), token)) as [string, number];
    if (outcome === "stale") throw new StaleFencingTokenError(args.threadId, args.fencingToken ?? 0, Number(value));
    if (outcome === "conflict") throw new VersionConflictError(args.threadId, args.expectedVersion, Number(value));
    // The mistake: a second, separate command bumps the version.
    const version = await this.redis.hincrby(key, "version", 1);
    if (this.ttlMs) await this.redis.pexpire(key, this.ttlMs);
    return version;
  }
}

export class SqliteVersionedStore<S = unknown> implements VersionedStore<S> {
  private readonly db: Database.Database;

  constructor(filename: string) {
    this.db = new Database(filename, { timeout: 5_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS versioned_threads (thread_id TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL, fence INTEGER NOT NULL DEFAULT 0)");
  }

  async get(threadId: string): Promise<Versioned<S> | undefined> {
    const row = this.db.prepare("SELECT state, version FROM versioned_threads WHERE thread_id = ?").get(validateThreadId(threadId)) as { state: string; version: number } | undefined;
    return row && { state: JSON.parse(row.state) as S, version: row.version };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<number> {
    const args = validatePut(threadId, expectedVersion, options);
    const encoded = encodeState(args.threadId, state);
    const token = args.fencingToken ?? null;
    const row = this.db.prepare("SELECT version, fence FROM versioned_threads WHERE thread_id = ?").get(args.threadId) as { version: number; fence: number } | undefined;
    if (row && token !== null && token < row.fence) throw new StaleFencingTokenError(args.threadId, token, row.fence);
    const changed =
      args.expectedVersion === 0
        ? this.db.prepare("INSERT INTO versioned_threads VALUES (?, ?, 0, coalesce(?, 0)) ON CONFLICT DO NOTHING").run(args.threadId, encoded, token).changes
        : this.db.prepare("UPDATE versioned_threads SET state = ?, fence = max(fence, coalesce(?, 0)) WHERE thread_id = ? AND version = ?").run(encoded, token, args.threadId, args.expectedVersion).changes;
    if (changed !== 1) throw new VersionConflictError(args.threadId, args.expectedVersion, row?.version ?? 0);
    // The mistake: the version moves in a second statement, outside any transaction.
    this.db.prepare("UPDATE versioned_threads SET version = version + 1 WHERE thread_id = ?").run(args.threadId);
    return args.expectedVersion + 1;
  }

  close(): void {
    this.db.close();
  }
}
