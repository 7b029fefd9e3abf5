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
import { randomUUID } from "node:crypto";
import { types } from "node:util";

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
 * Design notes (ref-graph-json)
 *
 * Schema. One WITHOUT ROWID table keyed by (task_id, step). `step` is the task's save order:
 * max(step) + 1, read inside BEGIN IMMEDIATE, so it grows with every save whatever the clocks
 * say, and two stores in two processes cannot compute the same step (the write lock serialises
 * them). The checkpoint id is a random UUIDv4 that carries no order on purpose; it is unique per
 * task through an index on (task_id, checkpoint_id), the only way a checkpoint is looked up, so
 * load(taskB, idOfTaskA) finds nothing. The parent is stored as the parent's *step* in the same
 * task: a parent of another task cannot even be expressed. Timestamps are epoch milliseconds in
 * an INTEGER column and come back as a Date.
 *
 * Encoding. The state is written as a flat "reference graph" in JSON text rather than v8 bytes:
 * an array of nodes where every container is a tagged array ["o", key, ref, ...], ["a", length,
 * key, ref, ...], ["M", k, v, ...], ["S", ...], ["D", ms], ["I", "10"], typed arrays as base64...
 * and children are integer references into the array (negative references are undefined, NaN,
 * +-Infinity and -0). Because user data never appears as a tagged array (every user array is
 * itself an "a" node), no escape rules are needed, unlike "$t"-style tagged JSON; shared
 * references and cycles survive, as with structured clone; holes of sparse arrays stay holes;
 * the text stays inspectable with SQLite's JSON functions. Functions, symbols and the objects
 * structured clone refuses (WeakMap, Promise, ...) are refused with UNSERIALIZABLE at save time.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS checkpoint (
  task_id       TEXT    NOT NULL,
  step          INTEGER NOT NULL CHECK (step >= 1),
  checkpoint_id TEXT    NOT NULL,
  parent_step   INTEGER CHECK (parent_step IS NULL OR parent_step < step),
  current_node  TEXT    NOT NULL,
  ts_ms         INTEGER NOT NULL,
  state_json    TEXT    NOT NULL,
  PRIMARY KEY (task_id, step)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS checkpoint_by_id ON checkpoint (task_id, checkpoint_id);
`;

const COLUMNS = `c.checkpoint_id AS checkpointId, p.checkpoint_id AS parentId, c.task_id AS taskId,
  c.current_node AS currentNode, c.ts_ms AS tsMs, c.state_json AS stateJson`;
const FROM = `FROM checkpoint c LEFT JOIN checkpoint p ON p.task_id = c.task_id AND p.step = c.parent_step`;

interface Row {
  checkpointId: string;
  parentId: string | null;
  taskId: string;
  currentNode: string;
  tsMs: number;
  stateJson: string;
}

function fail(code: CheckpointStoreErrorCode, message: string): never {
  throw new CheckpointStoreError(code, message);
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (value instanceof Date) return "an invalid Date";
  return typeof value;
}

function requireTaskId(taskId: unknown, call: string): asserts taskId is string {
  if (typeof taskId !== "string" || taskId.length === 0) {
    fail("BAD_INPUT", `${call}: taskId must be a non-empty string, got ${show(taskId)}.`);
  }
}

/** Reads and delete() accept "" (no task can have that id, so the answer is empty) but refuse non-strings. */
function requireTaskKey(taskId: unknown, call: string): asserts taskId is string {
  if (typeof taskId !== "string") fail("BAD_INPUT", `${call}: taskId must be a string, got ${show(taskId)}.`);
}

export class SqliteCheckpointStore<S = unknown> implements CheckpointStore<S> {
  private readonly db: Database.Database;
  private readonly head: Database.Statement;
  private readonly stepOf: Database.Statement;
  private readonly insert: Database.Statement;
  private readonly latest: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly listAll: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly append: (row: Omit<Row, "parentId" | "checkpointId">, parentId: string | undefined) => string;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { timeout: 10_000 });
    this.db.pragma("journal_mode = WAL");
    // FULL: a commit is fsynced before save() returns, so "saved" survives an OS crash too,
    // not only a killed process (WAL with NORMAL already covers SIGKILL).
    this.db.pragma("synchronous = FULL");
    this.db.transaction(() => this.db.exec(SCHEMA)).immediate();

    this.head = this.db.prepare(`SELECT step, current_node AS currentNode FROM checkpoint WHERE task_id = ? ORDER BY step DESC LIMIT 1`);
    this.stepOf = this.db.prepare(`SELECT step FROM checkpoint WHERE task_id = ? AND checkpoint_id = ?`);
    this.insert = this.db.prepare(
      `INSERT INTO checkpoint (task_id, step, checkpoint_id, parent_step, current_node, ts_ms, state_json)
       VALUES (@taskId, @step, @checkpointId, @parentStep, @currentNode, @tsMs, @stateJson)`,
    );
    this.latest = this.db.prepare(`SELECT ${COLUMNS} ${FROM} WHERE c.task_id = ? ORDER BY c.step DESC LIMIT 1`);
    this.byId = this.db.prepare(`SELECT ${COLUMNS} ${FROM} WHERE c.task_id = ? AND c.checkpoint_id = ?`);
    this.listAll = this.db.prepare(`SELECT ${COLUMNS} ${FROM} WHERE c.task_id = ? ORDER BY c.step DESC LIMIT ?`);
    this.remove = this.db.prepare(`DELETE FROM checkpoint WHERE task_id = ?`);

    const append = (row: Omit<Row, "parentId" | "checkpointId">, parentId: string | undefined): string => {
      const head = this.head.get(row.taskId) as { step: number; currentNode: string } | undefined;
      let parentStep: number | null = head?.step ?? null;
      if (parentId !== undefined) {
        const parent = this.stepOf.get(row.taskId, parentId) as { step: number } | undefined;
        if (parent === undefined) fail("UNKNOWN_PARENT", `save(): task ${JSON.stringify(row.taskId)} has no checkpoint ${JSON.stringify(parentId)}.`);
        parentStep = parent.step;
      } else if (head !== undefined && head.currentNode === END) {
        fail(
          "FINISHED",
          `save(): task ${JSON.stringify(row.taskId)} is finished (its latest checkpoint is at END); ` +
            `a deliberate resume names the checkpoint it starts from with { parentId }.`,
        );
      }
      const checkpointId = randomUUID();
      this.insert.run({ ...row, step: (head?.step ?? 0) + 1, checkpointId, parentStep });
      return checkpointId;
    };
    const tx = this.db.transaction(append);
    this.append = (row, parentId) => tx.immediate(row, parentId);
  }

  async save(taskId: string, checkpoint: Checkpoint<S>, options: SaveOptions = {}): Promise<string> {
    requireTaskId(taskId, "save()");
    if (typeof checkpoint !== "object" || checkpoint === null) fail("BAD_INPUT", `save(): checkpoint must be an object, got ${show(checkpoint)}.`);
    if (checkpoint.taskId !== taskId) {
      fail("BAD_INPUT", `save(): checkpoint.taskId ${show(checkpoint.taskId)} differs from the taskId argument ${show(taskId)}.`);
    }
    const { currentNode, timestamp } = checkpoint;
    if (typeof currentNode !== "string" || currentNode.length === 0) {
      fail("BAD_INPUT", `save(): currentNode must be a non-empty string, got ${show(currentNode)}.`);
    }
    if (!types.isDate(timestamp) || !Number.isFinite(Date.prototype.getTime.call(timestamp))) {
      fail("BAD_INPUT", `save(): timestamp must be a valid Date, got ${show(timestamp)}.`);
    }
    if (typeof options !== "object" || options === null) fail("BAD_INPUT", `save(): options must be an object, got ${show(options)}.`);
    const { parentId } = options;
    if (parentId !== undefined && (typeof parentId !== "string" || parentId.length === 0)) {
      fail("BAD_INPUT", `save(): options.parentId must be a checkpoint id (a non-empty string), got ${show(parentId)}.`);
    }
    const stateJson = encodeState(checkpoint.state); // throws UNSERIALIZABLE before anything is written
    const tsMs = Date.prototype.getTime.call(timestamp);
    return this.append({ taskId, currentNode, tsMs, stateJson }, parentId);
  }

  async load(taskId: string, checkpointId?: string): Promise<StoredCheckpoint<S> | null> {
    requireTaskKey(taskId, "load()");
    if (checkpointId === undefined) return this.toCheckpoint(this.latest.get(taskId) as Row | undefined);
    if (typeof checkpointId !== "string") fail("BAD_INPUT", `load(): checkpointId must be a string, got ${show(checkpointId)}.`);
    return this.toCheckpoint(this.byId.get(taskId, checkpointId) as Row | undefined);
  }

  async list(taskId: string, options: ListOptions = {}): Promise<StoredCheckpoint<S>[]> {
    requireTaskKey(taskId, "list()");
    if (typeof options !== "object" || options === null) fail("BAD_INPUT", `list(): options must be an object, got ${show(options)}.`);
    const { limit } = options;
    if (limit !== undefined && !(typeof limit === "number" && Number.isInteger(limit) && limit > 0)) {
      fail("BAD_INPUT", `list(): limit must be a positive integer, got ${typeof limit === "number" ? String(limit) : show(limit)}.`);
    }
    const sqlLimit = limit === undefined || limit > Number.MAX_SAFE_INTEGER ? -1 : limit;
    return (this.listAll.all(taskId, sqlLimit) as Row[]).map((row) => this.toCheckpoint(row)!);
  }

  async delete(taskId: string): Promise<void> {
    requireTaskKey(taskId, "delete()");
    this.remove.run(taskId);
  }

  close(): void {
    this.db.close();
  }

  private toCheckpoint(row: Row | undefined): StoredCheckpoint<S> | null {
    if (row === undefined) return null;
    return {
      checkpointId: row.checkpointId,
      parentId: row.parentId ?? null,
      taskId: row.taskId,
      state: decodeState(row.stateJson, row.checkpointId) as S,
      currentNode: row.currentNode,
      timestamp: new Date(row.tsMs),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The reference-graph encoding.

const REF_UNDEFINED = -1;
const REF_NAN = -2;
const REF_INFINITY = -3;
const REF_NEG_INFINITY = -4;
const REF_NEG_ZERO = -5;
const FORMAT = 1;

const ERROR_TYPES: Record<string, ErrorConstructor> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
};

const TYPED_ARRAYS: Record<string, { new (buffer: ArrayBuffer): ArrayBufferView }> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
};
const maybeFloat16 = (globalThis as Record<string, unknown>).Float16Array;
if (typeof maybeFloat16 === "function") TYPED_ARRAYS.Float16Array = maybeFloat16 as never;

function bytesOf(view: ArrayBufferView | ArrayBuffer): string {
  return view instanceof ArrayBuffer
    ? Buffer.from(view).toString("base64")
    : Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString("base64");
}

function freshBuffer(base64: string): ArrayBuffer {
  const bytes = Buffer.from(base64, "base64");
  const out = new ArrayBuffer(bytes.length);
  new Uint8Array(out).set(bytes);
  return out;
}

function refusedKind(value: object): string | undefined {
  if (types.isWeakMap(value)) return "a WeakMap";
  if (types.isWeakSet(value)) return "a WeakSet";
  if (types.isPromise(value)) return "a Promise";
  if (typeof WeakRef === "function" && value instanceof WeakRef) return "a WeakRef";
  if (types.isGeneratorObject(value)) return "a generator";
  if (types.isMapIterator(value) || types.isSetIterator(value)) return "an iterator";
  if (types.isSymbolObject(value)) return "a boxed symbol";
  if (types.isSharedArrayBuffer(value)) return "a SharedArrayBuffer";
  if (types.isModuleNamespaceObject(value)) return "a module namespace";
  if (types.isExternal(value)) return "an external";
  return undefined;
}

export function encodeState(root: unknown): string {
  const nodes: unknown[] = [];
  const objects = new Map<object, number>();
  const strings = new Map<string, number>();

  const unserializable = (where: string, what: string): never =>
    fail("UNSERIALIZABLE", `save(): state${where} is ${what}, which cannot be stored (structured-clone values only).`);

  const push = (node: unknown): number => nodes.push(node) - 1;

  const ref = (value: unknown, where: string): number => {
    switch (typeof value) {
      case "undefined":
        return REF_UNDEFINED;
      case "number":
        if (Number.isNaN(value)) return REF_NAN;
        if (value === Infinity) return REF_INFINITY;
        if (value === -Infinity) return REF_NEG_INFINITY;
        if (Object.is(value, -0)) return REF_NEG_ZERO;
        return push(value);
      case "string": {
        const known = strings.get(value);
        if (known !== undefined) return known;
        const index = push(value);
        strings.set(value, index);
        return index;
      }
      case "boolean":
        return push(value);
      case "bigint":
        return push(["I", value.toString()]);
      case "symbol":
        return unserializable(where, "a symbol");
      case "function":
        return unserializable(where, "a function");
      default:
        if (value === null) return push(null);
        return container(value as object, where);
    }
  };

  const container = (value: object, where: string): number => {
    const known = objects.get(value);
    if (known !== undefined) return known;
    const refused = refusedKind(value);
    if (refused !== undefined) unserializable(where, refused);
    const index = push(0); // placeholder: children may refer back to this node (cycles)
    objects.set(value, index);
    let node: unknown[];
    try {
      node = encodeContainer(value, where);
    } catch (error) {
      if (error instanceof CheckpointStoreError) throw error;
      return unserializable(where, `unreadable (${(error as Error)?.message ?? String(error)})`);
    }
    nodes[index] = node;
    return index;
  };

  const props = (node: unknown[], value: object, where: string): unknown[] => {
    for (const key of Object.keys(value)) {
      node.push(key, ref((value as Record<string, unknown>)[key], `${where}[${JSON.stringify(key)}]`));
    }
    return node;
  };

  const encodeContainer = (value: object, where: string): unknown[] => {
    if (Array.isArray(value)) return props(["a", value.length], value, where);
    if (types.isDate(value)) {
      const ms = Date.prototype.getTime.call(value);
      return ["D", Number.isNaN(ms) ? null : ms];
    }
    if (types.isRegExp(value)) return ["R", (value as RegExp).source, (value as RegExp).flags];
    if (types.isMap(value)) {
      const node: unknown[] = ["M"];
      let i = 0;
      for (const [k, v] of value as Map<unknown, unknown>) {
        node.push(ref(k, `${where}.<map key ${i}>`), ref(v, `${where}.get(<key ${i}>)`));
        i++;
      }
      return node;
    }
    if (types.isSet(value)) {
      const node: unknown[] = ["S"];
      let i = 0;
      for (const v of value as Set<unknown>) node.push(ref(v, `${where}.<set item ${i++}>`));
      return node;
    }
    if (types.isNumberObject(value)) return ["bN", ref(Number.prototype.valueOf.call(value), where)];
    if (types.isStringObject(value)) return ["bS", String.prototype.valueOf.call(value)];
    if (types.isBooleanObject(value)) return ["bB", Boolean.prototype.valueOf.call(value)];
    if (types.isBigIntObject(value)) return ["bI", BigInt.prototype.valueOf.call(value).toString()];
    if (types.isArrayBuffer(value)) return ["AB", bytesOf(value as ArrayBuffer)];
    if (types.isDataView(value)) return ["DV", bytesOf(value as DataView)];
    if (types.isTypedArray(value)) {
      const name = Buffer.isBuffer(value) ? "Buffer" : (value as unknown as { [Symbol.toStringTag]: string })[Symbol.toStringTag];
      if (name !== "Buffer" && !(name in TYPED_ARRAYS)) unserializable(where, `a ${name}`);
      return ["T", name, bytesOf(value as ArrayBufferView)];
    }
    if (types.isNativeError(value)) {
      const error = value as Error & { cause?: unknown };
      let name = "Error";
      for (const candidate of Object.keys(ERROR_TYPES)) if (error instanceof ERROR_TYPES[candidate]!) name = candidate;
      const message = Object.prototype.hasOwnProperty.call(error, "message") ? String(error.message) : null;
      const stack = typeof error.stack === "string" ? error.stack : null;
      const hasCause = Object.prototype.hasOwnProperty.call(error, "cause");
      return ["E", name, message, stack, hasCause ? ref(error.cause, `${where}.cause`) : null];
    }
    // Plain objects, and class instances as structured clone treats them: own enumerable string keys.
    return props(["o"], value, where);
  };

  const rootRef = ref(root, "");
  return JSON.stringify({ format: FORMAT, root: rootRef, nodes });
}

export function decodeState(text: string, checkpointId = "?"): unknown {
  const corrupt = (why: string): never => fail("CORRUPT", `checkpoint ${checkpointId}: stored state cannot be decoded (${why}).`);
  let parsed: { format?: unknown; root?: unknown; nodes?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch {
    return corrupt("not JSON");
  }
  if (parsed?.format !== FORMAT || !Array.isArray(parsed.nodes)) corrupt("unknown format");
  const nodes = parsed.nodes as unknown[];
  const values = new Array<unknown>(nodes.length);
  const built = new Uint8Array(nodes.length);

  const define = (target: object, key: unknown, value: unknown): void => {
    if (typeof key !== "string") corrupt("a property key is not a string");
    Object.defineProperty(target, key as string, { value, writable: true, enumerable: true, configurable: true });
  };
  const str = (x: unknown): string => (typeof x === "string" ? x : corrupt("expected a string"));
  const keep = <T>(index: number, value: T): T => {
    values[index] = value;
    built[index] = 1;
    return value;
  };

  const val = (r: unknown): unknown => {
    if (typeof r !== "number" || !Number.isInteger(r) || r >= nodes.length) return corrupt(`bad reference ${String(r)}`);
    switch (r) {
      case REF_UNDEFINED:
        return undefined;
      case REF_NAN:
        return NaN;
      case REF_INFINITY:
        return Infinity;
      case REF_NEG_INFINITY:
        return -Infinity;
      case REF_NEG_ZERO:
        return -0;
    }
    if (r < 0) return corrupt(`bad reference ${r}`);
    if (built[r]) return values[r];
    const node = nodes[r];
    if (!Array.isArray(node)) return keep(r, node); // null, boolean, finite number, string
    const [tag] = node;
    switch (tag) {
      case "o": {
        const out = keep(r, {});
        for (let i = 1; i < node.length; i += 2) define(out, node[i], val(node[i + 1]));
        return out;
      }
      case "a": {
        const length = node[1];
        if (typeof length !== "number" || !Number.isInteger(length) || length < 0) return corrupt("bad array length");
        const out = keep(r, new Array(length));
        for (let i = 2; i < node.length; i += 2) define(out, node[i], val(node[i + 1]));
        return out;
      }
      case "M": {
        const out = keep(r, new Map());
        for (let i = 1; i < node.length; i += 2) out.set(val(node[i]), val(node[i + 1]));
        return out;
      }
      case "S": {
        const out = keep(r, new Set());
        for (let i = 1; i < node.length; i++) out.add(val(node[i]));
        return out;
      }
      case "D":
        return keep(r, new Date(node[1] === null ? NaN : (node[1] as number)));
      case "R":
        return keep(r, new RegExp(str(node[1]), str(node[2])));
      case "I":
        return keep(r, BigInt(str(node[1])));
      case "bN":
        return keep(r, new Number(val(node[1]) as number));
      case "bS":
        return keep(r, new String(str(node[1])));
      case "bB":
        return keep(r, new Boolean(node[1]));
      case "bI":
        return keep(r, Object(BigInt(str(node[1]))));
      case "AB":
        return keep(r, freshBuffer(str(node[1])));
      case "DV":
        return keep(r, new DataView(freshBuffer(str(node[1]))));
      case "T": {
        const name = str(node[1]);
        if (name === "Buffer") return keep(r, Buffer.from(str(node[2]), "base64"));
        const Ctor = TYPED_ARRAYS[name];
        if (Ctor === undefined) return corrupt(`unknown typed array ${name}`);
        return keep(r, new Ctor(freshBuffer(str(node[2]))));
      }
      case "E": {
        const Ctor = ERROR_TYPES[str(node[1])] ?? Error;
        const error = keep(r, node[2] === null ? new Ctor() : new Ctor(str(node[2])));
        if (typeof node[3] === "string") {
          Object.defineProperty(error, "stack", { value: node[3], writable: true, enumerable: false, configurable: true });
        } else {
          delete (error as { stack?: string }).stack;
        }
        if (node[4] !== null) {
          Object.defineProperty(error, "cause", { value: val(node[4]), writable: true, enumerable: false, configurable: true });
        }
        return error;
      }
      default:
        return corrupt(`unknown tag ${String(tag)}`);
    }
  };

  try {
    return val(parsed.root);
  } catch (error) {
    if (error instanceof CheckpointStoreError) throw error;
    return corrupt((error as Error)?.message ?? String(error));
  }
}
