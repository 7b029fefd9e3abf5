/**
 * lesson-03 / checkpoint-store: an append-only checkpoint store on SQLite.
 * Read lessons/lesson-03/checkpoint-store.md first.
 *
 * The seed's store keeps one row per task (INSERT OR REPLACE), writes the state with
 * JSON.stringify and is told to delete the row when the task completes. Build the store that
 * fixes all three, on one SQLite file (better-sqlite3), behind the seed's interface grown by a
 * history:
 *
 *   new SqliteCheckpointStore(dbPath)         opens (and creates) the file; close() closes it
 *   save(taskId, checkpoint, { parentId? })   appends a checkpoint, resolves with its new id
 *   load(taskId)                              the task's latest checkpoint, or null
 *   load(taskId, checkpointId)                that checkpoint of that task, or null
 *   list(taskId, { limit? })                  the task's checkpoints, newest first ([] if none)
 *   delete(taskId)                            removes every checkpoint of that one task
 *
 * A loaded checkpoint is a plain object { checkpointId, parentId, taskId, state, currentNode,
 * timestamp }, exactly as it was saved:
 *
 * - Append, never replace. Every save adds a checkpoint with a fresh id; its parentId is the
 *   task's latest checkpoint at the moment of the save (null for the first), or options.parentId
 *   when given (a checkpoint of the same task: a deliberate resume from an earlier point).
 * - "Latest" and "newest first" mean save order. Timestamps are the caller's: they may be equal
 *   or go backwards, and so may the machine's clock.
 * - Another process that opens the same file sees every save that returned, also after the
 *   writer was killed. Nothing is kept only in memory.
 * - state is any structured-clone value (objects, arrays, Date, Map, Set, BigInt, typed arrays,
 *   undefined, NaN, -0, nested) and comes back equal, with undefined keys kept; timestamp comes
 *   back as a Date with its milliseconds. The encoding and the schema are yours: argue them in
 *   your notes.
 * - Task ids are exact keys: "t1" never sees "t10", "T1", "t_" or "xt1".
 * - A task finishes by saving a checkpoint whose currentNode is END; nothing is deleted. After
 *   that, a save without options.parentId is refused (a stale worker must not reopen it); a save
 *   with options.parentId of an earlier checkpoint is accepted.
 * - Bad input is refused with CheckpointStoreError (a code and a message that says what was
 *   wrong) before anything is written: an empty or non-string taskId, a checkpoint whose taskId
 *   differs from the taskId argument, an empty or non-string currentNode, a timestamp that is not
 *   a valid Date, a state that cannot be stored (a function, a symbol), a parentId the task does
 *   not have, a limit that is not a positive integer.
 *
 * What the grader checks, in order (each failure names the lesson section to read); it writes
 * through your store in one process and reads through another store on the same file in another:
 * - core: save appends and returns an id; load returns the latest, also after the writer was killed;
 * - core: list gives the whole history newest first with parent pointers; load(taskId, id) any of it;
 * - core: Dates, Maps with non-string keys, Sets and undefined survive; the timestamp is a Date;
 * - core: task ids that prefix, contain or resemble each other stay apart, also for delete();
 * - core: the final checkpoint (currentNode END) is kept and loads, with the whole history;
 * - core: bad input is refused with CheckpointStoreError, and a refused save stores nothing;
 * - excellence: identical timestamps, a clock that steps back and saves in one millisecond keep
 *   save order; 400 checkpoints and list({ limit }); arbitrary structured values (property-based);
 *   a finished task refuses a save without parentId and accepts a resume from an earlier one.
 */
import Database from "better-sqlite3";
import { types } from "node:util";
import v8 from "node:v8";
import zlib from "node:zlib";

/** The node name that marks a finished task (the seed's '__end__'). */
export const END = "__end__";

export interface Checkpoint<S> {
  taskId: string;
  state: S;
  /** The node to run next (END when the task is finished). */
  currentNode: string;
  timestamp: Date;
}

export interface StoredCheckpoint<S> extends Checkpoint<S> {
  checkpointId: string;
  /** The checkpoint this one was saved on top of; null for a task's first. */
  parentId: string | null;
}

export interface SaveOptions {
  /** Save on top of this checkpoint of the task instead of its latest. */
  parentId?: string;
}

export interface ListOptions {
  /** At most this many, newest first (a positive integer). */
  limit?: number;
}

export interface CheckpointStore<S> {
  save(taskId: string, checkpoint: Checkpoint<S>, options?: SaveOptions): Promise<string>;
  load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null>;
  list(taskId: string, options?: ListOptions): Promise<StoredCheckpoint<S>[]>;
  delete(taskId: string): Promise<void>;
}

export type CheckpointStoreErrorCode = "BAD_INPUT" | "UNKNOWN_PARENT" | "FINISHED" | "UNSERIALIZABLE" | "CORRUPT";

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
  constructor(
    readonly code: CheckpointStoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/*
 * Design notes (rowid-as-id)
 *
 * Schema. The checkpoint id *is* the database's sequence: `seq INTEGER PRIMARY KEY
 * AUTOINCREMENT`, assigned by SQLite inside the write transaction, exposed as "ck-<seq>".
 * AUTOINCREMENT never hands out a number twice, even after delete(), so an id names one
 * checkpoint forever, and it is also the save order: "latest" is max(seq) of the task, "newest
 * first" is seq DESC, and neither the caller's timestamps nor the machine's clock take part.
 * There is no second id column to keep unique. The parent is an integer foreign key to the
 * same table, and two triggers make the rules part of the file, not only of this class:
 * a parent must belong to the same task, and a checkpoint is never updated (append-only).
 * Lookups are always by (task_id, seq) — an id of another task finds nothing. An index on
 * (task_id, seq) serves latest, list({ limit }) and delete().
 *
 * Encoding. v8.serialize (the structured-clone algorithm: Date, Map, Set, BigInt, typed arrays,
 * undefined, NaN, -0, cycles), refused values surface as UNSERIALIZABLE. States larger than
 * 4 KiB are deflated. Every row carries the CRC32 of the stored bytes, so a damaged row loads
 * as CORRUPT instead of as a plausible-looking wrong state.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoints (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id      TEXT    NOT NULL CHECK (length(task_id) > 0),
  parent_seq   INTEGER REFERENCES checkpoints (seq),
  current_node TEXT    NOT NULL CHECK (length(current_node) > 0),
  ts_ms        INTEGER NOT NULL,
  encoding     INTEGER NOT NULL,          -- 0: v8 bytes, 1: deflated v8 bytes
  state        BLOB    NOT NULL,
  crc32        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_task_seq ON checkpoints (task_id, seq);
CREATE TRIGGER IF NOT EXISTS checkpoints_parent_same_task
  BEFORE INSERT ON checkpoints
  WHEN NEW.parent_seq IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE seq = NEW.parent_seq AND task_id = NEW.task_id)
BEGIN
  SELECT RAISE(ABORT, 'checkpoint parent belongs to another task');
END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only
  BEFORE UPDATE ON checkpoints
BEGIN
  SELECT RAISE(ABORT, 'checkpoints are append-only');
END;
`;

const ID_PREFIX = "ck-";
const ID_PATTERN = /^ck-([1-9][0-9]{0,15})$/;
const DEFLATE_ABOVE = 4096;
const ENC_V8 = 0;
const ENC_V8_DEFLATE = 1;

interface Row {
  seq: number;
  task_id: string;
  parent_seq: number | null;
  current_node: string;
  ts_ms: number;
  encoding: number;
  state: Buffer;
  crc32: number;
}

function fail(code: CheckpointStoreErrorCode, message: string): never {
  throw new CheckpointStoreError(code, message);
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (types.isDate(value)) return "an invalid Date";
  return typeof value === "object" ? "an object" : typeof value;
}

const toId = (seq: number): string => `${ID_PREFIX}${seq}`;

/** The seq an id names, or undefined for anything that is not one of our ids. */
function seqOf(checkpointId: string): number | undefined {
  const match = ID_PATTERN.exec(checkpointId);
  if (match === null) return undefined;
  const seq = Number(match[1]);
  return Number.isSafeInteger(seq) ? seq : undefined;
}

function encode(state: unknown): { encoding: number; bytes: Buffer } {
  let bytes: Buffer;
  try {
    bytes = v8.serialize(state);
  } catch (error) {
    fail("UNSERIALIZABLE", `save(): the state cannot be stored: ${(error as Error)?.message ?? String(error)} (functions, symbols, WeakMaps... are not structured-clone values).`);
  }
  if (bytes.length > DEFLATE_ABOVE) return { encoding: ENC_V8_DEFLATE, bytes: zlib.deflateRawSync(bytes) };
  return { encoding: ENC_V8, bytes };
}

function decode(row: Row): unknown {
  if ((zlib.crc32(row.state) >>> 0) !== row.crc32) {
    fail("CORRUPT", `checkpoint ${toId(row.seq)} of task ${JSON.stringify(row.task_id)}: the stored state fails its checksum.`);
  }
  try {
    if (row.encoding === ENC_V8) return v8.deserialize(row.state);
    if (row.encoding === ENC_V8_DEFLATE) return v8.deserialize(zlib.inflateRawSync(row.state));
  } catch (error) {
    fail("CORRUPT", `checkpoint ${toId(row.seq)}: the stored state cannot be decoded: ${(error as Error)?.message ?? String(error)}.`);
  }
  return fail("CORRUPT", `checkpoint ${toId(row.seq)}: unknown state encoding ${row.encoding}.`);
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly stmt: Record<"head" | "parent" | "insert" | "latest" | "one" | "list" | "remove", Database.Statement>;
  private readonly appendTx: Database.Transaction<(row: Omit<Row, "seq" | "parent_seq">, parentSeq: number | undefined, parentId: string | undefined) => number>;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 10_000 });
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL"); // in WAL mode: a commit survives a killed process; FULL would add fsync per save
    this.db.pragma("foreign_keys = ON");
    this.db.transaction(() => this.db.exec(SCHEMA)).immediate();
    const cols = "seq, task_id, parent_seq, current_node, ts_ms, encoding, state, crc32";
    this.stmt = {
      head: this.db.prepare(`SELECT seq, current_node FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1`),
      parent: this.db.prepare(`SELECT seq FROM checkpoints WHERE task_id = ? AND seq = ?`),
      insert: this.db.prepare(
        `INSERT INTO checkpoints (task_id, parent_seq, current_node, ts_ms, encoding, state, crc32)
         VALUES (@task_id, @parent_seq, @current_node, @ts_ms, @encoding, @state, @crc32)`,
      ),
      latest: this.db.prepare(`SELECT ${cols} FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT 1`),
      one: this.db.prepare(`SELECT ${cols} FROM checkpoints WHERE task_id = ? AND seq = ?`),
      list: this.db.prepare(`SELECT ${cols} FROM checkpoints WHERE task_id = ? ORDER BY seq DESC LIMIT ?`),
      remove: this.db.prepare(`DELETE FROM checkpoints WHERE task_id = ?`),
    };
    this.appendTx = this.db.transaction((row, parentSeq, parentId) => {
      const head = this.stmt.head.get(row.task_id) as { seq: number; current_node: string } | undefined;
      let parent: number | null = head?.seq ?? null;
      if (parentId !== undefined) {
        const found = parentSeq === undefined ? undefined : (this.stmt.parent.get(row.task_id, parentSeq) as { seq: number } | undefined);
        if (found === undefined) fail("UNKNOWN_PARENT", `save(): task ${JSON.stringify(row.task_id)} has no checkpoint ${JSON.stringify(parentId)}.`);
        parent = found.seq;
      } else if (head?.current_node === END) {
        fail(
          "FINISHED",
          `save(): task ${JSON.stringify(row.task_id)} has finished (latest checkpoint ${toId(head.seq)} is at END); ` +
            `to resume deliberately, pass { parentId } of the checkpoint to continue from.`,
        );
      }
      return Number(this.stmt.insert.run({ ...row, parent_seq: parent }).lastInsertRowid);
    });
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    if (typeof taskId !== "string" || taskId === "") fail("BAD_INPUT", `save(): taskId must be a non-empty string, got ${describe(taskId)}.`);
    if (typeof checkpoint !== "object" || checkpoint === null) fail("BAD_INPUT", `save(): checkpoint must be an object, got ${describe(checkpoint)}.`);
    if (checkpoint.taskId !== taskId) {
      fail("BAD_INPUT", `save(): checkpoint.taskId ${describe(checkpoint.taskId)} does not match taskId ${describe(taskId)}; the checkpoint would be filed under the wrong task.`);
    }
    const { currentNode, timestamp, state } = checkpoint;
    if (typeof currentNode !== "string" || currentNode === "") fail("BAD_INPUT", `save(): currentNode must be a non-empty string, got ${describe(currentNode)}.`);
    if (!types.isDate(timestamp)) fail("BAD_INPUT", `save(): timestamp must be a Date, got ${describe(timestamp)}.`);
    const tsMs = Date.prototype.getTime.call(timestamp);
    if (!Number.isFinite(tsMs)) fail("BAD_INPUT", "save(): timestamp is an invalid Date (its time is NaN).");
    if (typeof options !== "object" || options === null) fail("BAD_INPUT", `save(): options must be an object, got ${describe(options)}.`);
    const { parentId } = options;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId === "")) {
      fail("BAD_INPUT", `save(): options.parentId must be a checkpoint id string, got ${describe(parentId)}.`);
    }
    const { encoding, bytes } = encode(state);
    const seq = this.appendTx.immediate(
      { task_id: taskId, current_node: currentNode, ts_ms: tsMs, encoding, state: bytes, crc32: zlib.crc32(bytes) >>> 0 },
      parentId === undefined ? undefined : seqOf(parentId),
      parentId,
    );
    return toId(seq);
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    this.requireKey(taskId, "load()");
    if (checkpointId === undefined) return this.toCheckpoint(this.stmt.latest.get(taskId) as Row | undefined);
    if (typeof checkpointId !== "string") fail("BAD_INPUT", `load(): checkpointId must be a string, got ${describe(checkpointId)}.`);
    const seq = seqOf(checkpointId);
    if (seq === undefined) return null;
    return this.toCheckpoint(this.stmt.one.get(taskId, seq) as Row | undefined);
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    this.requireKey(taskId, "list()");
    if (typeof options !== "object" || options === null) fail("BAD_INPUT", `list(): options must be an object, got ${describe(options)}.`);
    const { limit } = options;
    if (limit !== undefined && !(typeof limit === "number" && Number.isInteger(limit) && limit > 0)) {
      fail("BAD_INPUT", `list(): limit must be a positive integer, got ${typeof limit === "number" ? String(limit) : describe(limit)}.`);
    }
    const rows = this.stmt.list.all(taskId, limit === undefined || !Number.isSafeInteger(limit) ? -1 : limit) as Row[];
    return rows.map((row) => this.toCheckpoint(row)!);
  }

  async delete(taskId: string): Promise<void> {
    this.requireKey(taskId, "delete()");
    this.stmt.remove.run(taskId);
  }

  close(): void {
    this.db.close();
  }

  /** Reads and delete() take any string ("" simply has no checkpoints); a non-string is a caller bug. */
  private requireKey(taskId: unknown, call: string): void {
    if (typeof taskId !== "string") fail("BAD_INPUT", `${call}: taskId must be a string, got ${describe(taskId)}.`);
  }

  private toCheckpoint(row: Row | undefined): StoredCheckpoint<S> | null {
    if (row === undefined) return null;
    return {
      checkpointId: toId(row.seq),
      parentId: row.parent_seq === null ? null : toId(row.parent_seq),
      taskId: row.task_id,
      state: decode(row) as S,
      currentNode: row.current_node,
      timestamp: new Date(row.ts_ms),
    };
  }
}
