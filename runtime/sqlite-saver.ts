import Database from "better-sqlite3";
import { parseCheckpointConfig, parseConfig, parseListConfig, parseListOptions, parseLookupConfig, type ParsedListOptions } from "./config.ts";
import { InvalidArgumentError } from "./errors.ts";
import { JsonSerializer } from "./json-serde.ts";
import {
  blobRefs,
  isSpecialChannel,
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

/**
 * Schema version 2, kept in SQLite's `PRAGMA user_version`. Version 1 (the
 * kit before it; user_version 0) kept each changed channel value in a `blobs`
 * row of its own; opening such a file migrates it once (migrateFromV1).
 */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoints (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  parent_checkpoint_id TEXT,
  metadata TEXT NOT NULL,          -- plain JSON, apart from the body, so SQL can filter on it
  channels TEXT NOT NULL,          -- JSON { channel: [version, id of the checkpoint whose body holds that value] }
  sources TEXT,                    -- JSON [ids of the older checkpoints named in channels, each once], NULL for none
  type TEXT NOT NULL,
  checkpoint BLOB NOT NULL,        -- the body: unversioned channels and the versioned ones this put changed
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
);`;

/**
 * What every read selects: one row per checkpoint, with its pending writes and
 * the older bodies its unchanged channels live in folded in as JSON arrays, so
 * one statement (one read snapshot, even while another process writes)
 * answers. JSON cannot hold bytes, so the serializer's bytes travel as hex: any
 * serializer's output survives, not only UTF-8 text. CROSS JOIN fixes the join
 * order (the few ids first, then a key lookup each); a plain JOIN lets the
 * planner scan the table instead.
 */
const TUPLE_COLUMNS = `c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.metadata, c.channels, c.type, c.checkpoint,
  (SELECT json_group_array(json_array(w.task_id, w.idx, w.channel, w.type, hex(w.value))) FROM writes w
    WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) AS writes,
  (SELECT json_group_array(json_array(s.checkpoint_id, s.type, hex(s.checkpoint)))
    FROM json_each(c.sources) AS j
    CROSS JOIN checkpoints s ON s.thread_id = c.thread_id AND s.checkpoint_ns = c.checkpoint_ns AND s.checkpoint_id = j.value) AS source_bodies`;

interface TupleRow {
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  metadata: string;
  channels: string;
  type: string;
  checkpoint: Buffer;
  writes: string;
  source_bodies: string;
}

/** The `channels` column: where each versioned channel's value lives. */
type ChannelSources = Record<string, [version: string, checkpointId: string]>;

/** Distinct list() statement shapes kept prepared; more than this and the oldest is dropped. */
const LIST_STATEMENT_CACHE = 64;

/** Threads whose last put's channels are remembered (see SqliteSaver.lastPut). */
const LAST_PUT_CACHE = 1024;

/**
 * Checkpoints in a SQLite file through better-sqlite3. WAL lets readers work
 * while a writer commits; busy_timeout makes a second connection wait for the
 * write lock instead of failing at once with SQLITE_BUSY.
 *
 * One row per checkpoint, as in LangGraph's own SqliteSaver, but a versioned
 * channel's value is stored once, by the put that changed it (`newVersions`):
 * the row's body holds only the channels that changed, and its `channels`
 * column says, for every versioned channel, which checkpoint's body holds the
 * value (copied from the parent's row for the unchanged ones). So a put is one
 * INSERT, and a read is one SELECT that brings the row, its writes and the few
 * older bodies it needs. Statements are prepared once (preparing costs more
 * than running a small query), and list() filters in SQL so `LIMIT` stops the
 * scan at the last match.
 */
export class SqliteSaver implements CheckpointSaver {
  readonly db: Database.Database;
  private readonly serde: SerializerProtocol;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly listStatements = new Map<string, Database.Statement>();
  /** A task's writes in one transaction, built once (db.transaction() wraps a function; wrapping per call costs). */
  private readonly insertWrites: Database.Transaction<(rows: unknown[][]) => void>;
  /**
   * The `channels` of the last checkpoint this saver put on each thread and namespace. A put's parent is
   * nearly always the previous put (that is how a run goes), so put() need not read the parent's row back.
   * Safe because a checkpoint id names one checkpoint for good; deleteThread() forgets the thread.
   */
  private readonly lastPut = new Map<string, { checkpointId: string; channels: ChannelSources }>();

  constructor(database: string | Database.Database, options: { serde?: SerializerProtocol; busyTimeoutMs?: number } = {}) {
    this.db = typeof database === "string" ? new Database(database) : database;
    this.serde = options.serde ?? new JsonSerializer();
    this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    this.db.pragma("journal_mode = WAL");
    // NORMAL, stated rather than inherited: what LangGraph's SqliteSaver runs with too (better-sqlite3's
    // build default in WAL mode). A commit survives a crash of the process; a power cut may lose the last
    // commits but never corrupts the file. FULL would add an fsync to every put.
    this.db.pragma("synchronous = NORMAL");
    // IMMEDIATE: two processes opening an old file at once cannot both migrate it.
    this.db.transaction(() => openSchema(this.db, this.serde)).immediate();
    this.sql = prepareStatements(this.db);
    this.insertWrites = this.db.transaction((rows: unknown[][]) => {
      for (const row of rows) (isSpecialChannel(row[5] as string) ? this.sql.replaceWrite : this.sql.keepFirstWrite).run(...row);
    });
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const resolved = parseLookupConfig(config, "getTuple()");
    if (!resolved) return undefined;
    const { threadId, checkpointNs, checkpointId } = resolved;
    const row = (
      checkpointId === undefined ? this.sql.latest.get(threadId, checkpointNs) : this.sql.byId.get(threadId, checkpointNs, checkpointId)
    ) as TupleRow | undefined;
    return row && this.toTuple(row);
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const scope = parseListConfig(config);
    const parsed = parseListOptions(options);
    const { sql, params } = listQuery(scope, parsed);
    // all(), not iterate(): while an iterator is open better-sqlite3 refuses every other statement,
    // and the caller may well call getTuple() between two tuples.
    const rows = this.listStatement(sql).all(...params) as TupleRow[];
    for (const row of rows) yield this.toTuple(row);
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    // splitChannels says which versioned values this put stores: here they go into the body itself.
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    const channels: ChannelSources = {};
    for (const { channel, version, value } of blobs) {
      body.channelValues[channel] = value;
      channels[channel] = [String(version), checkpoint.id];
    }
    // An unchanged channel's value lives where the parent's row says, if the parent has that very
    // version; otherwise nobody stored it and the channel has no value (as in every kit saver).
    const unchanged = Object.entries(checkpoint.channelVersions ?? {}).filter(([channel]) => !Object.hasOwn(channels, channel));
    const threadKey = `${threadId}\u0000${checkpointNs}`;
    if (unchanged.length > 0 && parentId !== undefined) {
      const inherited = this.parentChannels(threadKey, threadId, checkpointNs, parentId);
      for (const [channel, version] of unchanged) {
        if (inherited[channel]?.[0] === String(version)) channels[channel] = inherited[channel];
      }
    }
    const sources = [...new Set(Object.values(channels).map(([, id]) => id))].filter((id) => id !== checkpoint.id);
    const [type, bytes] = this.serde.dumpsTyped(body);
    // One statement, so no transaction needed: SQLite commits a single INSERT atomically.
    this.sql.putCheckpoint.run(threadId, checkpointNs, checkpoint.id, parentId ?? null, JSON.stringify(metadata), JSON.stringify(channels),
      sources.length > 0 ? JSON.stringify(sources) : null, type, toBuffer(bytes));
    this.lastPut.delete(threadKey); // delete, then set: the Map's first key is the least recently written thread
    this.lastPut.set(threadKey, { checkpointId: checkpoint.id, channels });
    if (this.lastPut.size > LAST_PUT_CACHE) this.lastPut.delete(this.lastPut.keys().next().value!);
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    // Serialized before the transaction opens, so a value that cannot be stored leaves nothing behind.
    const rows = writes.map(([channel, value], position) => {
      const [type, bytes] = this.serde.dumpsTyped(value);
      return [threadId, checkpointNs, checkpointId, taskId, writeIndex(channel, position), channel, type, toBuffer(bytes)];
    });
    // One transaction: a task's writes land together or not at all.
    this.insertWrites(rows);
  }

  async deleteThread(threadId: string): Promise<void> {
    this.lastPut.clear();
    this.db.transaction(() => {
      for (const statement of this.sql.deleteThread) statement.run(threadId);
    })();
  }

  close(): void {
    this.db.close();
  }

  /** Where the parent's channels live: from lastPut when the parent is the thread's last put, else its row. */
  private parentChannels(threadKey: string, threadId: string, checkpointNs: string, parentId: string): ChannelSources {
    const last = this.lastPut.get(threadKey);
    if (last?.checkpointId === parentId) return last.channels;
    const parent = this.sql.channelsOf.get(threadId, checkpointNs, parentId) as { channels: string } | undefined;
    return parent ? (JSON.parse(parent.channels) as ChannelSources) : {};
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

  /** A row of TUPLE_COLUMNS as a tuple: the body, plus each unchanged channel taken from the body that holds it. */
  private toTuple(row: TupleRow): CheckpointTuple {
    const { thread_id: threadId, checkpoint_ns: checkpointNs, checkpoint_id: checkpointId } = row;
    const checkpoint = this.serde.loadsTyped(row.type, row.checkpoint) as Checkpoint;
    const sources = JSON.parse(row.source_bodies) as Array<[id: string, type: string, hex: string]>;
    if (sources.length > 0) {
      const bodies = new Map(sources.map(([id, type, hex]) => [id, this.serde.loadsTyped(type, Buffer.from(hex, "hex")) as Checkpoint]));
      for (const [channel, [, source]] of Object.entries(JSON.parse(row.channels) as ChannelSources)) {
        const values = bodies.get(source)?.channelValues;
        if (values && Object.hasOwn(values, channel)) checkpoint.channelValues[channel] = values[channel];
      }
    }
    // Sorted here, not by an ORDER BY in the aggregate (that costs a temporary b-tree per read). Task ids are
    // ASCII (hashes, UUIDs), where JS string order is SQLite's byte order.
    const writes = (JSON.parse(row.writes) as Array<[taskId: string, idx: number, channel: string, type: string, hex: string]>).sort(
      (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]),
    );
    return {
      config: { threadId, checkpointNs, checkpointId },
      checkpoint,
      metadata: JSON.parse(row.metadata) as CheckpointMetadata,
      ...(row.parent_checkpoint_id !== null && { parentConfig: { threadId, checkpointNs, checkpointId: row.parent_checkpoint_id } }),
      pendingWrites: writes.map(([taskId, , channel, type, hex]): PendingWrite => [taskId, channel, this.serde.loadsTyped(type, Buffer.from(hex, "hex"))]),
    };
  }
}

/**
 * Creates the tables of a new file, migrates a version-1 file, and refuses a
 * file from a newer kit (it would be misread). Runs inside one transaction.
 */
function openSchema(db: Database.Database, serde: SerializerProtocol): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new InvalidArgumentError(`This checkpoint file has schema version ${version}; this SqliteSaver reads version ${SCHEMA_VERSION}. Open it with the kit that wrote it.`);
  }
  const hasBlobs = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'blobs'").get() !== undefined;
  if (version < SCHEMA_VERSION && hasBlobs) migrateFromV1(db, serde);
  db.exec(SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

/**
 * Version 1 kept every changed channel value in a `blobs` row keyed (thread,
 * namespace, channel, version). Each old checkpoint becomes a row whose body
 * holds all its values: simple and exact (reads give what they gave before),
 * at the price of storing unchanged values again for the old rows only.
 */
function migrateFromV1(db: Database.Database, serde: SerializerProtocol): void {
  const blob = db.prepare("SELECT type, value FROM blobs WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?");
  const old = db.prepare("SELECT * FROM checkpoints").all() as Array<Record<string, string | Buffer | null> & { thread_id: string; checkpoint_ns: string; checkpoint_id: string }>;
  const rows = old.map((row) => {
    const body = serde.loadsTyped(row.type as string, row.checkpoint as Buffer) as Checkpoint;
    const channels: ChannelSources = {};
    for (const [channel, version] of blobRefs(body)) {
      const found = blob.get(row.thread_id, row.checkpoint_ns, channel, String(version)) as { type: string; value: Buffer } | undefined;
      if (!found) continue; // a version nobody stored: the channel had no value, and still has none
      body.channelValues[channel] = serde.loadsTyped(found.type, found.value);
      channels[channel] = [String(version), row.checkpoint_id];
    }
    const [type, bytes] = serde.dumpsTyped(body);
    return [row.thread_id, row.checkpoint_ns, row.checkpoint_id, row.parent_checkpoint_id, row.metadata, JSON.stringify(channels), type, toBuffer(bytes)];
  });
  db.exec("DROP TABLE checkpoints; DROP TABLE blobs;");
  db.exec(SCHEMA);
  const insert = db.prepare(`INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata, channels, sources, type, checkpoint) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)`);
  for (const row of rows) insert.run(...row);
}

function prepareStatements(db: Database.Database) {
  const writeColumns = "(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
  return {
    latest: db.prepare(`SELECT ${TUPLE_COLUMNS} FROM checkpoints c WHERE c.thread_id = ? AND c.checkpoint_ns = ? ORDER BY c.checkpoint_id DESC LIMIT 1`),
    byId: db.prepare(`SELECT ${TUPLE_COLUMNS} FROM checkpoints c WHERE c.thread_id = ? AND c.checkpoint_ns = ? AND c.checkpoint_id = ?`),
    channelsOf: db.prepare("SELECT channels FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"),
    putCheckpoint: db.prepare(
      `INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata, channels, sources, type, checkpoint)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // Same rule as MemorySaver: a special channel's fixed slot is replaced, a regular write already saved is kept.
    replaceWrite: db.prepare(`INSERT OR REPLACE INTO writes ${writeColumns}`),
    keepFirstWrite: db.prepare(`INSERT OR IGNORE INTO writes ${writeColumns}`),
    deleteThread: ["checkpoints", "writes"].map((table) => db.prepare(`DELETE FROM ${table} WHERE thread_id = ?`)),
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
  if (scope.threadId !== undefined) condition("c.thread_id = ?", scope.threadId);
  if (scope.checkpointNs !== undefined) condition("c.checkpoint_ns = ?", scope.checkpointNs);
  if (scope.checkpointId !== undefined) condition("c.checkpoint_id = ?", scope.checkpointId);
  if (beforeId !== undefined) condition("c.checkpoint_id < ?", beforeId);
  // `->` gives a key's value as JSON text, and the metadata was written by JSON.stringify too: comparing
  // with JSON.stringify(value) is an exact, typed match ("2" never equals 2, nor true 1) in one call per key.
  for (const [key, value] of filter) condition("c.metadata -> ? = ?", jsonPath(key), JSON.stringify(value));
  let sql = `SELECT ${TUPLE_COLUMNS} FROM checkpoints c`;
  if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
  sql += " ORDER BY c.checkpoint_id DESC";
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
