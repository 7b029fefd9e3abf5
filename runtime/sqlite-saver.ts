import Database from "better-sqlite3";
import { matchesFilter, parseCheckpointConfig, parseConfig, parseListOptions } from "./config.ts";
import { JsonSerializer } from "./json-serde.ts";
import {
  isSpecialChannel,
  writeIndex,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointSaver,
  type CheckpointTuple,
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
  checkpoint BLOB NOT NULL,
  metadata TEXT NOT NULL,          -- plain JSON, apart from the body, so it stays queryable
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

interface CheckpointRow {
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  type: string;
  checkpoint: Buffer;
  metadata: string;
}

interface WriteRow {
  task_id: string;
  channel: string;
  type: string;
  value: Buffer;
}

/**
 * Checkpoints in a SQLite file through better-sqlite3. WAL lets readers work
 * while a writer commits; busy_timeout makes a second connection wait for the
 * write lock instead of failing at once with SQLITE_BUSY.
 */
export class SqliteSaver implements CheckpointSaver {
  readonly db: Database.Database;
  private readonly serde: SerializerProtocol;

  constructor(database: string | Database.Database, options: { serde?: SerializerProtocol; busyTimeoutMs?: number } = {}) {
    this.db = typeof database === "string" ? new Database(database) : database;
    this.serde = options.serde ?? new JsonSerializer();
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    this.db.exec(SCHEMA);
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "getTuple()");
    const row = (
      checkpointId === undefined
        ? this.db
            .prepare("SELECT * FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1")
            .get(threadId, checkpointNs)
        : this.db
            .prepare("SELECT * FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?")
            .get(threadId, checkpointNs, checkpointId)
    ) as CheckpointRow | undefined;
    return row && this.toTuple(threadId, checkpointNs, row);
  }

  async *list(config: RunnableConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "list()");
    const { beforeId, limit, filter } = parseListOptions(options);
    let sql = "SELECT * FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?";
    const params: Array<string | number> = [threadId, checkpointNs];
    if (checkpointId !== undefined) (sql += " AND checkpoint_id = ?"), params.push(checkpointId);
    if (beforeId !== undefined) (sql += " AND checkpoint_id < ?"), params.push(beforeId);
    sql += " ORDER BY checkpoint_id DESC";
    // Metadata filters run in JS (the rule MemorySaver uses), so any key works and `limit` counts matches only;
    // LangGraph's JS SqliteSaver once dropped unknown filter keys silently (langgraphjs PR #2504).
    // Without a filter, SQL does the limit.
    if (filter.length === 0 && limit !== undefined) (sql += " LIMIT ?"), params.push(limit);
    const rows = this.db.prepare(sql).all(...params) as CheckpointRow[];
    let yielded = 0;
    for (const row of rows) {
      if (limit !== undefined && yielded >= limit) return;
      const metadata = JSON.parse(row.metadata) as CheckpointMetadata;
      if (!matchesFilter(metadata, filter)) continue;
      yielded++;
      yield this.toTuple(threadId, checkpointNs, row);
    }
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    const [type, body] = this.serde.dumpsTyped(checkpoint);
    this.db
      .prepare(
        `INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(threadId, checkpointNs, checkpoint.id, parentId ?? null, type, toBuffer(body), JSON.stringify(metadata));
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    const columns = "(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    const replace = this.db.prepare(`INSERT OR REPLACE INTO writes ${columns}`);
    const keepFirst = this.db.prepare(`INSERT OR IGNORE INTO writes ${columns}`);
    const rows = writes.map(([channel, value], position) => {
      const [type, bytes] = this.serde.dumpsTyped(value);
      return { channel, type, bytes, idx: writeIndex(channel, position) };
    });
    // One transaction: a task's writes land together or not at all.
    this.db.transaction(() => {
      for (const { channel, type, bytes, idx } of rows) {
        const statement = isSpecialChannel(channel) ? replace : keepFirst;
        statement.run(threadId, checkpointNs, checkpointId, taskId, idx, channel, type, toBuffer(bytes));
      }
    })();
  }

  async deleteThread(threadId: string): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM checkpoints WHERE thread_id = ?").run(threadId);
      this.db.prepare("DELETE FROM writes WHERE thread_id = ?").run(threadId);
    })();
  }

  close(): void {
    this.db.close();
  }

  private toTuple(threadId: string, checkpointNs: string, row: CheckpointRow): CheckpointTuple {
    const writes = this.db
      .prepare(
        `SELECT task_id, channel, type, value FROM writes
         WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? ORDER BY task_id, idx`,
      )
      .all(threadId, checkpointNs, row.checkpoint_id) as WriteRow[];
    return {
      config: { threadId, checkpointNs, checkpointId: row.checkpoint_id },
      checkpoint: this.serde.loadsTyped(row.type, row.checkpoint) as Checkpoint,
      metadata: JSON.parse(row.metadata) as CheckpointMetadata,
      ...(row.parent_checkpoint_id !== null && {
        parentConfig: { threadId, checkpointNs, checkpointId: row.parent_checkpoint_id },
      }),
      pendingWrites: writes.map((w): PendingWrite => [w.task_id, w.channel, this.serde.loadsTyped(w.type, w.value)]),
    };
  }
}

/** better-sqlite3 binds Buffers as BLOBs; a serializer may hand back any Uint8Array. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
