import Database from "better-sqlite3";
import { parseCheckpointConfig, parseConfig, parseListConfig, parseListOptions, parseLookupConfig, type ParsedListOptions } from "./config.ts";
import { InvalidArgumentError } from "./errors.ts";
import { JsonSerializer } from "./json-serde.ts";
import {
  blobRefs,
  isSpecialChannel,
  joinChannels,
  splitChannels,
  writeIndex,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
  type ListConfig,
  type ListOptions,
  type PendingWrite,
  type RunnableConfig,
  type SerializerProtocol,
} from "./types.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoints (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  parent_checkpoint_id TEXT,
  type TEXT NOT NULL,
  checkpoint BLOB NOT NULL,        -- the body: every channel without a version
  metadata TEXT NOT NULL,          -- plain JSON, apart from the body, so SQL can filter on it
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS writes (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  channel TEXT NOT NULL,
  type TEXT NOT NULL,
  value BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)  -- one row per slot: retries cannot duplicate
);
CREATE TABLE IF NOT EXISTS blobs (  -- a versioned channel's value, stored once per version (splitChannels)
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  channel TEXT NOT NULL,
  version TEXT NOT NULL,
  type TEXT NOT NULL,
  value BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);`;

interface CheckpointRow {
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  type: string;
  checkpoint: Buffer;
  metadata: string;
}

interface WriteRow {
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string;
  task_id: string;
  channel: string;
  type: string;
  value: Buffer;
}

interface BlobRow {
  thread_id: string;
  checkpoint_ns: string;
  channel: string;
  version: string;
  type: string;
  value: Buffer;
}

/** Distinct list() statement shapes kept prepared; more than this and the oldest is dropped. */
const LIST_STATEMENT_CACHE = 64;

/**
 * Checkpoints in a SQLite file through better-sqlite3. WAL lets readers work
 * while a writer commits; busy_timeout makes a second connection wait for the
 * write lock instead of failing at once with SQLITE_BUSY.
 *
 * Statements are prepared once (preparing costs more than running a small
 * query), and list() filters in SQL so `LIMIT` stops the scan at the last match.
 */
export class SqliteSaver implements CheckpointSaver {
  readonly db: Database.Database;
  private readonly serde: SerializerProtocol;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly listStatements = new Map<string, Database.Statement>();

  constructor(database: string | Database.Database, options: { serde?: SerializerProtocol; busyTimeoutMs?: number } = {}) {
    this.db = typeof database === "string" ? new Database(database) : database;
    this.serde = options.serde ?? new JsonSerializer();
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    this.db.exec(SCHEMA);
    this.sql = prepareStatements(this.db);
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const resolved = parseLookupConfig(config, "getTuple()");
    if (!resolved) return undefined;
    const { threadId, checkpointNs, checkpointId } = resolved;
    const row = (
      checkpointId === undefined ? this.sql.latest.get(threadId, checkpointNs) : this.sql.byId.get(threadId, checkpointNs, checkpointId)
    ) as CheckpointRow | undefined;
    return row && this.toTuples([row])[0];
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const scope = parseListConfig(config);
    const parsed = parseListOptions(options);
    const { sql, params } = listQuery(scope, parsed);
    // all(), not iterate(): better-sqlite3 refuses other statements (the writes, the blobs) while an iterator is open.
    const rows = this.listStatement(sql).all(...params) as CheckpointRow[];
    yield* this.toTuples(rows);
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const [type, bytes] = this.serde.dumpsTyped(body);
    const blobRows = blobs.map(({ channel, version, value }) => [channel, String(version), ...this.serde.dumpsTyped(value)] as const);
    // One transaction: the body and its blobs land together.
    this.db.transaction(() => {
      this.sql.putCheckpoint.run(threadId, checkpointNs, checkpoint.id, parentId ?? null, type, toBuffer(bytes), JSON.stringify(metadata));
      for (const [channel, version, blobType, value] of blobRows) {
        this.sql.putBlob.run(threadId, checkpointNs, channel, version, blobType, toBuffer(value));
      }
    })();
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    const rows = writes.map(([channel, value], position) => {
      const [type, bytes] = this.serde.dumpsTyped(value);
      return { channel, type, bytes, idx: writeIndex(channel, position) };
    });
    // One transaction: a task's writes land together or not at all.
    this.db.transaction(() => {
      for (const { channel, type, bytes, idx } of rows) {
        const statement = isSpecialChannel(channel) ? this.sql.replaceWrite : this.sql.keepFirstWrite;
        statement.run(threadId, checkpointNs, checkpointId, taskId, idx, channel, type, toBuffer(bytes));
      }
    })();
  }

  async deleteThread(threadId: string): Promise<void> {
    this.db.transaction(() => {
      for (const statement of this.sql.deleteThread) statement.run(threadId);
    })();
  }

  close(): void {
    this.db.close();
  }

  private listStatement(sql: string): Database.Statement {
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      if (this.listStatements.size >= LIST_STATEMENT_CACHE) this.listStatements.delete(this.listStatements.keys().next().value!);
      this.listStatements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Rows to tuples with two more statements however many rows there are: one for
   * all their writes, one for all the channel values their bodies refer to. For
   * several rows the keys travel as one JSON array (SQLite's json_each turns it
   * back into rows); for one row, plain lookups are cheaper than parsing that array.
   */
  private toTuples(rows: CheckpointRow[]): CheckpointTuple[] {
    if (rows.length === 0) return [];
    const bodies = rows.map((row) => this.serde.loadsTyped(row.type, row.checkpoint) as Checkpoint);
    const single = rows.length === 1 ? rows[0]! : undefined;
    const writeRows = (
      single
        ? this.sql.writesOfOne.all(single.thread_id, single.checkpoint_ns, single.checkpoint_id)
        : this.sql.writesOf.all(JSON.stringify(rows.map((row) => [row.thread_id, row.checkpoint_ns, row.checkpoint_id])))
    ) as WriteRow[];
    // Grouped by hand: Map.groupBy needs Node 21, and the kit runs on Node 20.
    const writes = new Map<string, WriteRow[]>();
    for (const w of writeRows) {
      const k = key(w.thread_id, w.checkpoint_ns, w.checkpoint_id);
      const group = writes.get(k);
      if (group) group.push(w);
      else writes.set(k, [w]);
    }
    const refs = rows.flatMap((row, i) => blobRefs(bodies[i]!).map(([channel, version]) => [row.thread_id, row.checkpoint_ns, channel, String(version)]));
    const blobRows = (
      refs.length === 0 ? [] : single ? refs.map((ref) => this.sql.blobOne.get(...ref)).filter((b) => b !== undefined) : this.sql.blobsOf.all(JSON.stringify(refs))
    ) as BlobRow[];
    const blobs = new Map(blobRows.map((b) => [key(b.thread_id, b.checkpoint_ns, b.channel, b.version), b] as const));
    return rows.map((row, i): CheckpointTuple => {
      const { thread_id: threadId, checkpoint_ns: checkpointNs, checkpoint_id: checkpointId } = row;
      const body = bodies[i]!;
      const found = blobRefs(body).map(([channel, version]) => {
        const blob = blobs.get(key(threadId, checkpointNs, channel, String(version)));
        return blob && { value: this.serde.loadsTyped(blob.type, blob.value) };
      });
      return {
        config: { threadId, checkpointNs, checkpointId },
        checkpoint: joinChannels(body, found),
        metadata: JSON.parse(row.metadata) as CheckpointMetadata,
        ...(row.parent_checkpoint_id !== null && { parentConfig: { threadId, checkpointNs, checkpointId: row.parent_checkpoint_id } }),
        pendingWrites: (writes.get(key(threadId, checkpointNs, checkpointId)) ?? []).map((w): PendingWrite => [w.task_id, w.channel, this.serde.loadsTyped(w.type, w.value)]),
      };
    });
  }
}

/** A Map key for a few ids (none of which holds a \0). */
function key(...parts: string[]): string {
  return parts.join("\u0000");
}

function prepareStatements(db: Database.Database) {
  const writeColumns = "(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
  return {
    latest: db.prepare("SELECT * FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1"),
    byId: db.prepare("SELECT * FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"),
    // The parameter is a JSON array of keys: [[thread, ns, checkpoint id], ...] and [[thread, ns, channel, version], ...].
    writesOf: db.prepare(
      `SELECT * FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))
       ORDER BY task_id, idx`,
    ),
    writesOfOne: db.prepare("SELECT * FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? ORDER BY task_id, idx"),
    blobOne: db.prepare("SELECT * FROM blobs WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"),
    blobsOf: db.prepare(
      "SELECT * FROM blobs WHERE (thread_id, checkpoint_ns, channel, version) IN (SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?))",
    ),
    putCheckpoint: db.prepare(
      `INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    putBlob: db.prepare("INSERT OR REPLACE INTO blobs (thread_id, checkpoint_ns, channel, version, type, value) VALUES (?, ?, ?, ?, ?, ?)"),
    // Same rule as MemorySaver: a special channel's fixed slot is replaced, a regular write already saved is kept.
    replaceWrite: db.prepare(`INSERT OR REPLACE INTO writes ${writeColumns}`),
    keepFirstWrite: db.prepare(`INSERT OR IGNORE INTO writes ${writeColumns}`),
    deleteThread: ["checkpoints", "writes", "blobs"].map((table) => db.prepare(`DELETE FROM ${table} WHERE thread_id = ?`)),
  };
}

/**
 * The list() query: the scope, `before` and every filter key as SQL conditions,
 * so `LIMIT` counts matches. Values are bound, never spliced; the SQL text only
 * depends on which conditions are present, so a few shapes cover every call.
 */
function listQuery(scope: ReturnType<typeof parseListConfig>, { beforeId, limit, filter }: ParsedListOptions): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const condition = (sql: string, ...values: unknown[]) => (where.push(sql), params.push(...values));
  if (scope.threadId !== undefined) condition("thread_id = ?", scope.threadId);
  if (scope.checkpointNs !== undefined) condition("checkpoint_ns = ?", scope.checkpointNs);
  if (scope.checkpointId !== undefined) condition("checkpoint_id = ?", scope.checkpointId);
  if (beforeId !== undefined) condition("checkpoint_id < ?", beforeId);
  for (const [key, value] of filter) {
    const path = jsonPath(key);
    // json_type first: exact match means a string "2" never equals the number 2, nor true the number 1.
    if (value === null) condition("json_type(metadata, ?) = 'null'", path);
    else if (typeof value === "boolean") condition("json_type(metadata, ?) = ?", path, String(value));
    else if (typeof value === "string") condition("json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?", path, path, value);
    else condition("json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?", path, path, value);
  }
  let sql = "SELECT * FROM checkpoints";
  if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
  sql += " ORDER BY checkpoint_id DESC";
  if (limit !== undefined) (sql += " LIMIT ?"), params.push(limit);
  return { sql, params };
}

/** A top-level key as a SQLite JSON path. A quoted label has no escape for `"`, so such a key is refused, not misread. */
function jsonPath(key: string): string {
  if (key.includes('"')) {
    throw new InvalidArgumentError(`list({ filter }) cannot filter on metadata key ${JSON.stringify(key)} in SqliteSaver: a key may not contain a double quote.`);
  }
  return `$."${key}"`;
}

/** better-sqlite3 binds Buffers as BLOBs; a serializer may hand back any Uint8Array. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
