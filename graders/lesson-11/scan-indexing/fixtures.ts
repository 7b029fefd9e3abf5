/**
 * Fixtures shared by the scan-indexing grader and its hidden checks.
 *
 * The saver under test runs in the learner process, built there with a real
 * ioredis client connected to a recording backend (#harness/redis.ts): every
 * command of every learner connection is seen here, duplicates, pipelines and
 * MULTI arrays included. What a check wrote is found from that record (the keys
 * of the write commands), never from a key pattern: an answer that encodes ids
 * (hex, base64url, percent-escapes) has keys no pattern of the raw id matches.
 *
 * Histories are irregular on purpose, as real ones are: forks (an older parent,
 * so the same step as an existing checkpoint under a newer id), update-style
 * checkpoints, several checkpoints in one millisecond. Only the checkpoint id
 * orders a thread; neither `step` nor `ts` does.
 */
import { randomBytes } from "node:crypto";
import { getKeyIndexes, hasFlag } from "@ioredis/commands";
import type { Redis } from "ioredis";
import type { CheckContext } from "#harness/check.ts";
import type { LearnerProcess } from "../../../kit/sandbox/learner.ts";
import { createTestRedis, type RecordedCommand, type TestRedis } from "#harness/redis.ts";
import { newCheckpointId, type Checkpoint, type CheckpointSource, type CheckpointMetadata, type CheckpointTuple, type RunnableConfig } from "#runtime";
import type * as Api from "../../../solutions/lesson-11/scan-indexing/index.ts";

export type ScanIndexingApi = typeof Api;
type Saver = InstanceType<ScanIndexingApi["RedisSaver"]>;

export interface Fixture {
  redis: TestRedis;
  saver: Saver;
  /** An opaque random thread id (it names no check; real-server runs never collide). */
  thread(): string;
  /** Keys the grader wrote through redis.client: removed at the end on a real server (the backend removes only what learner connections touched). */
  track(keys: Iterable<string>): void;
}

export interface SaverOptions {
  ttlSeconds?: number;
  duplicateScanResults?: boolean;
}

export async function withSaver(api: ScanIndexingApi, check: CheckContext<ScanIndexingApi>, body: (fixture: Fixture) => Promise<void>, options: SaverOptions = {}): Promise<void> {
  const redis = await createTestRedis({ duplicateScanResults: options.duplicateScanResults ?? false });
  const written = new Set<string>();
  try {
    const saver = await newSaver(api, redis, check, options.ttlSeconds);
    await body({ redis, saver, thread: opaqueId, track: (keys) => void [...keys].forEach((key) => written.add(key)) });
  } finally {
    if (redis.backend === "redis-server") {
      const keys = [...written];
      for (let i = 0; i < keys.length; i += 1000) await redis.client.unlink(...keys.slice(i, i + 1000));
    }
    await redis.close();
  }
}

/** A saver built in the learner process on a fresh connection to `redis`. */
export async function newSaver(api: ScanIndexingApi, redis: TestRedis, check: Pick<CheckContext<ScanIndexingApi>, "learner">, ttlSeconds?: number): Promise<Saver> {
  const endpoint = (await redis.endpoint(check.learner)) as unknown as Redis;
  try {
    return await (ttlSeconds === undefined ? new api.RedisSaver(endpoint) : new api.RedisSaver(endpoint, { ttlSeconds }));
  } catch (error) {
    throw new Error(`new RedisSaver(client${ttlSeconds === undefined ? "" : ", { ttlSeconds }"}) threw: ${(error as Error).message}`);
  }
}

export const opaqueId = () => randomBytes(6).toString("hex");

let clock = Date.parse("2026-01-01T00:00:00.000Z");

/** A checkpoint with a fresh time-sortable id; its ts is `ts`, or one second after the previous one. */
export function makeCheckpoint(values: Record<string, unknown> = {}, ts?: string): Checkpoint {
  clock += 1000;
  return { v: 1, id: newCheckpointId(), ts: ts ?? new Date(clock).toISOString(), channelValues: values, next: ["agent"] };
}

export type Config = Required<Pick<RunnableConfig, "threadId" | "checkpointNs" | "checkpointId">>;
export type Put = Config & { ts: string; checkpoint: Checkpoint; metadata: CheckpointMetadata; parentId: string | undefined };

/** Puts `count` checkpoints in a linear chain on one thread/namespace and returns them, oldest first. */
export async function putChain(saver: Saver, threadId: string, count: number, metadataFor: (i: number) => Record<string, unknown> = () => ({}), checkpointNs = ""): Promise<Put[]> {
  const puts: Put[] = [];
  for (let i = 0; i < count; i++) {
    const parent = puts.at(-1);
    puts.push(await putOne(saver, { threadId, checkpointNs, parent, checkpoint: makeCheckpoint({ i }), metadata: { source: i === 0 ? "input" : "loop", step: i - 1, ...metadataFor(i) } }));
  }
  return puts;
}

/** Just the config of a put (what a caller hands back to the saver). */
export const cfg = ({ threadId, checkpointNs, checkpointId }: Config): Config => ({ threadId, checkpointNs, checkpointId });

export async function putOne(
  saver: Saver,
  { threadId, checkpointNs, parent, checkpoint, metadata }: { threadId: string; checkpointNs: string; parent: Put | undefined; checkpoint: Checkpoint; metadata: CheckpointMetadata },
): Promise<Put> {
  const config: RunnableConfig = parent ? { threadId, checkpointNs, checkpointId: parent.checkpointId } : { threadId, checkpointNs };
  const returned = await saver.put(config, checkpoint, metadata);
  const expected: Config = { threadId, checkpointNs, checkpointId: checkpoint.id };
  if (JSON.stringify(sortKeys(returned)) !== JSON.stringify(sortKeys(expected))) {
    throw new Error(`put() must return the config of the checkpoint it stored, ${JSON.stringify(expected)}; it returned ${JSON.stringify(returned)}`);
  }
  return { ...expected, ts: checkpoint.ts, checkpoint, metadata, parentId: parent?.checkpointId };
}

const sortKeys = (value: unknown) => (value && typeof value === "object" ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1))) : value);

/**
 * An irregular history, put in id order (so newest first is the reverse): a
 * fork from an early checkpoint at #3 (the same step as #1, a newer id), an
 * update-style checkpoint at #4 (source "update", its parent's step), #5 in the
 * same millisecond as #4, the rest seeded, and the last one always a fork to a
 * low step: the latest checkpoint is neither the highest step nor, in its
 * millisecond, the only one.
 */
export async function putHistory(
  saver: Saver,
  threadId: string,
  count: number,
  random: () => number,
  { checkpointNs = "", metadataFor = () => ({}) }: { checkpointNs?: string; metadataFor?: (i: number) => Record<string, unknown> } = {},
): Promise<Put[]> {
  if (count < 7) throw new Error("grader bug: an irregular history needs at least 7 checkpoints");
  const puts: Put[] = [];
  let ms = clock;
  for (let i = 0; i < count; i++) {
    const sameMs = i === 5 || (i > 5 && random() < 0.3);
    if (!sameMs) ms += 1 + Math.floor(random() * 3000);
    const latest = puts.at(-1);
    let parent: Put | undefined;
    let source: CheckpointSource;
    let step: number;
    const r = random();
    if (i === 0) [parent, source, step] = [undefined, "input", -1];
    else if (i === 3 || i === count - 1 || (i > 5 && r < 0.2)) {
      parent = puts[Math.floor(random() * Math.min(i - 1, 3))]!; // an early checkpoint, never the latest
      [source, step] = ["fork", (parent.metadata.step as number) + 1];
    } else if (i === 4 || (i > 5 && r < 0.35)) [parent, source, step] = [latest, "update", latest!.metadata.step as number];
    else [parent, source, step] = [latest, "loop", (latest!.metadata.step as number) + 1];
    const checkpoint = makeCheckpoint({ i, history: [i, "x"] }, new Date(ms).toISOString());
    puts.push(await putOne(saver, { threadId, checkpointNs, parent, checkpoint, metadata: { source, step, ...metadataFor(i) } }));
  }
  clock = ms;
  return puts;
}

export async function collect(iterable: AsyncIterable<CheckpointTuple>): Promise<CheckpointTuple[]> {
  const out: CheckpointTuple[] = [];
  for await (const tuple of iterable) out.push(tuple);
  return out;
}

export const ids = (tuples: Array<{ config: RunnableConfig }>) => tuples.map((t) => t.config.checkpointId);

/** The keys the recorded commands wrote (write-flagged commands and scripts), in first-write order. */
export function writtenKeys(commands: RecordedCommand[]): string[] {
  const out = new Set<string>();
  for (const { name, args } of commands) {
    const lower = name.toLowerCase();
    try {
      if (!(lower === "eval" || lower === "evalsha" || hasFlag(lower, "write"))) continue;
      for (const index of getKeyIndexes(lower, args)) out.add(args[index]!);
    } catch {
      // not a command @ioredis/commands knows: no keys
    }
  }
  return [...out];
}

export async function existing(redis: TestRedis, keys: string[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const pipeline = redis.client.pipeline();
  for (const key of keys) pipeline.exists(key);
  const replies = (await pipeline.exec()) ?? [];
  return keys.filter((_, i) => replies[i]?.[1] === 1);
}

export function describeCommands(commands: RecordedCommand[], max = 8): string {
  const shown = commands.slice(0, max).map((c) => [c.name, ...c.args.slice(0, 4).map((a) => String(a))].join(" ") + (c.inScript ? " (inside a script)" : "") + (c.connection > 1 ? ` (connection #${c.connection})` : ""));
  return shown.join("; ") + (commands.length > max ? ` ... (${commands.length} commands)` : "");
}

// ---------------------------------------------------------------- bulk loading

/** Ways an answer may spell an id inside its keys and values. */
const ENCODINGS: Array<[name: string, encode: (raw: string) => string]> = [
  ["raw", (s) => s],
  ["hex", (s) => Buffer.from(s, "utf8").toString("hex")],
  ["HEX", (s) => Buffer.from(s, "utf8").toString("hex").toUpperCase()],
  ["base64url", (s) => Buffer.from(s, "utf8").toString("base64url")],
  ["base64", (s) => Buffer.from(s, "utf8").toString("base64")],
  ["uri", (s) => encodeURIComponent(s)],
  ["dashless", (s) => s.replace(/-/g, "")],
];

const BASE64 = /^[A-Za-z0-9+/]{16,}={0,2}$/;

/** Rewrites one argument: every spelling of a `from` value becomes the same spelling of its `to`, also inside base64 payloads and JSON holding them. */
function rewriter(swaps: Array<[from: string, to: string]>): (arg: string) => string {
  const pairs = swaps.flatMap(([from, to]) => ENCODINGS.map(([, encode]) => [encode(from), encode(to)] as const)).filter(([from]) => from.length >= 8);
  const plain = (text: string) => pairs.reduce((out, [from, to]) => (out.includes(from) ? out.split(from).join(to) : out), text);
  const deep = (text: string): string => {
    if (BASE64.test(text) && text.length % 4 === 0) {
      const decoded = Buffer.from(text, "base64").toString("utf8");
      if (Buffer.from(decoded, "utf8").toString("base64") === text) {
        const swapped = deep(decoded);
        if (swapped !== decoded) return Buffer.from(swapped, "utf8").toString("base64");
      }
    }
    if (text.startsWith("{") || text.startsWith("[")) {
      try {
        const parsed = JSON.parse(text) as unknown;
        const walk = (v: unknown): unknown => (typeof v === "string" ? deep(v) : Array.isArray(v) ? v.map(walk) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [plain(k), walk(x)])) : v);
        return JSON.stringify(walk(parsed));
      } catch {
        // not JSON
      }
    }
    return plain(text);
  };
  return deep;
}

export interface BulkLoad {
  /** The ids, oldest first. */
  ids: string[];
  /** "replay": the answer's own put() commands rewritten for each id and written unrecorded; "put": the answer's put(), called for each. */
  how: "replay" | "put";
}

/**
 * Builds a thread of `count` checkpoints fast, in the answer's own key format:
 * one put() is recorded at the backend, then its write commands are rewritten
 * for each new id (every spelling the answer used: raw, hex, base64, ...) and
 * written through the grader's unrecorded client, with ZADD/SADD to one key
 * merged into one command. The replay is verified on a few checkpoints through
 * the answer's own getTuple and list first; where the id cannot be found in the
 * commands, a script wrote them, or the answer does not read the replay back,
 * the answer's own put() builds the thread instead (on a fresh thread id).
 */
export async function bulkLoadThread(fixture: Fixture, count: number): Promise<BulkLoad & { threadId: string }> {
  const { saver } = fixture;
  const threadId = fixture.thread();
  const replayed = await tryReplay(fixture, threadId, count);
  if (replayed) return { threadId, ids: replayed, how: "replay" };
  const fresh = fixture.thread();
  const ids: string[] = [];
  // The answer's own put(), 200 calls at a time (each names its parent, so they need not run in order).
  for (let start = 0; start < count; start += 200) {
    const batch = Array.from({ length: Math.min(200, count - start) }, () => makeCheckpoint({}));
    await Promise.all(
      batch.map((checkpoint, k) => {
        const parent = k === 0 ? ids.at(-1) : batch[k - 1]!.id;
        return saver.put({ threadId: fresh, checkpointNs: "", ...(parent !== undefined && { checkpointId: parent }) }, checkpoint, { source: "loop", step: start + k });
      }),
    );
    ids.push(...batch.map((b) => b.id));
  }
  return { threadId: fresh, ids, how: "put" };
}

async function tryReplay(fixture: Fixture, threadId: string, count: number): Promise<string[] | undefined> {
  const { saver, redis } = fixture;
  const first = makeCheckpoint({ i: 0 });
  await saver.put({ threadId, checkpointNs: "" }, first, { source: "loop", step: 0 });
  const template = makeCheckpoint({ i: 1 });
  await redis.recordScripts(true);
  redis.resetCounters();
  await saver.put({ threadId, checkpointNs: "", checkpointId: first.id }, template, { source: "loop", step: 1 });
  await redis.drain();
  await redis.recordScripts(false);
  // The writes the put performed: on the wire, and inside its scripts (recorded at the backend, so a
  // script is replayed as what it did, whatever its arguments name). The read-back below checks it.
  const recorded = redis.commands.filter(({ name }) => {
    const lower = name.toLowerCase();
    try {
      return hasFlag(lower, "write") && !["multi", "exec", "watch", "unwatch", "discard", "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "script"].includes(lower);
    } catch {
      return false;
    }
  });
  const templateSpelled = ENCODINGS.some(([, encode]) => recorded.some((c) => c.args.some((a) => a.includes(encode(template.id)))));
  if (!templateSpelled) return undefined;

  const ids = [first.id, template.id];
  const merged = new Map<string, { name: string; key: string; rest: string[] }>();
  const keys = new Set<string>();
  let pipeline = redis.client.pipeline();
  let queued = 0;
  const flushMerged = async () => {
    for (const { name, key, rest } of merged.values()) {
      for (let i = 0; i < rest.length; i += 20_000) await (redis.client as unknown as Record<string, (...a: string[]) => Promise<unknown>>)[name.toLowerCase()]!(key, ...rest.slice(i, i + 20_000));
    }
    merged.clear();
  };
  const replayUpTo = async (end: number) => {
    while (ids.length < end) {
      const parent = ids.at(-1)!;
      const next = makeCheckpoint({ i: ids.length });
      const rewrite = rewriter([
        [template.id, next.id],
        [first.id, parent],
        [template.ts, next.ts],
        [String(Date.parse(template.ts)), String(Date.parse(next.ts))],
      ]);
      for (const command of recorded) {
        const args = command.args.map(rewrite);
        for (const index of safeKeyIndexes(command.name, args)) keys.add(args[index]!);
        if ((command.name === "ZADD" || command.name === "SADD") && args.length >= 2 && !args.slice(1).some((a) => /^(NX|XX|GT|LT|CH|INCR)$/i.test(a))) {
          const id = `${command.name}\u0000${args[0]}`;
          const entry = merged.get(id) ?? { name: command.name, key: args[0]!, rest: [] };
          entry.rest.push(...args.slice(1));
          merged.set(id, entry);
        } else {
          pipeline.call(command.name, ...args);
          if (++queued >= 5000) {
            await pipeline.exec();
            pipeline = redis.client.pipeline();
            queued = 0;
          }
        }
      }
      ids.push(next.id);
    }
    await pipeline.exec();
    pipeline = redis.client.pipeline();
    queued = 0;
    await flushMerged();
  };
  // A few first, read back through the answer itself: a replay it cannot read is no replay.
  await replayUpTo(5);
  fixture.track(keys);
  const newest = (await saver.getTuple({ threadId, checkpointNs: "" }))?.config.checkpointId;
  const listed = ids_(await collect(saver.list({ threadId, checkpointNs: "" }, { limit: 3 })));
  const middle = await saver.getTuple({ threadId, checkpointNs: "", checkpointId: ids[3]! });
  const readable =
    newest === ids[4] && JSON.stringify(listed) === JSON.stringify([ids[4], ids[3], ids[2]]) && middle?.checkpoint.id === ids[3] && middle?.parentConfig?.checkpointId === ids[2];
  if (!readable) return undefined;
  await replayUpTo(count);
  fixture.track(keys);
  return ids;
}

const ids_ = ids;

function safeKeyIndexes(name: string, args: string[]): number[] {
  try {
    return getKeyIndexes(name.toLowerCase(), args);
  } catch {
    return [];
  }
}

/**
 * Unrelated keys in the shapes a shared Redis holds: other savers' checkpoint
 * and writes keys, index-like sorted sets' names, and plain application keys,
 * spread over the whole key order (so SCAN pages hold none of a thread's keys
 * before, between and after its own). Written unrecorded; tracked for cleanup.
 */
export async function loadNoise(fixture: Fixture, count: number, random: () => number): Promise<void> {
  const prefixes = ["checkpoint$", "writes$", "cpindex$", "blob$", "app:", "session:", "a", "k", "t", "z", "~"];
  const written: string[] = [];
  for (let start = 0; start < count; start += 10_000) {
    const args: string[] = [];
    for (let i = start; i < Math.min(count, start + 10_000); i++) {
      const prefix = prefixes[Math.floor(random() * prefixes.length)]!;
      const key = prefix.endsWith("$") ? `${prefix}${randomBytes(5).toString("hex")}$$${newCheckpointId()}` : `${prefix}${randomBytes(8).toString("hex")}`;
      written.push(key);
      args.push(key, "x");
    }
    await fixture.redis.client.mset(...args); // one command per 10,000 keys: the mock spends its time per command
  }
  fixture.track(written);
}

// ---------------------------------------------------------------- a put cut off part-way

const TRANSACTION_CONTROL = new Set(["multi", "exec", "watch", "unwatch", "discard"]);
const SCRIPT_CALLS = new Set(["eval", "evalsha", "fcall"]);

/** A command that writes data: write-flagged (but not MULTI/EXEC/WATCH), or a script call, which may write anything. */
export function isDataWrite({ name }: Pick<RecordedCommand, "name">): boolean {
  const lower = name.toLowerCase();
  if (SCRIPT_CALLS.has(lower)) return true;
  if (TRANSACTION_CONTROL.has(lower)) return false;
  try {
    return hasFlag(lower, "write");
  } catch {
    return false;
  }
}

export interface Cut {
  /** The command after which the process was killed, once it was. */
  readonly after: RecordedCommand | undefined;
  /** Stops watching (an outage, if it began, goes on until redis.setOutage(false)). */
  disarm(): void;
}

/**
 * Kills `victim` (SIGKILL) as the backend receives the first learner command (on the wire, not inside a
 * script) for which `when` returns true, and cuts every learner connection at the same instant
 * (redis.setOutage(true)): that command, and whatever else arrived in the same read, runs; its reply
 * never reaches the process, and nothing the process would have sent next is sent. A put cut there is
 * a put whose process died in the middle of it (its client cannot retry: it is gone).
 *
 * The harness records commands as they arrive, synchronously, into `redis.commands`, and has no hook of
 * its own: so the check wraps that array's push (both backends record through it).
 */
export function killAfter(redis: TestRedis, victim: LearnerProcess, when: (command: RecordedCommand) => boolean): Cut {
  const commands = redis.commands;
  let after: RecordedCommand | undefined;
  const push = (...items: RecordedCommand[]) => {
    const length = Array.prototype.push.apply(commands, items);
    if (after === undefined) {
      const hit = items.find((command) => !command.inScript && when(command));
      if (hit) {
        after = hit;
        redis.setOutage(true);
        victim.kill("SIGKILL");
      }
    }
    return length;
  };
  Object.defineProperty(commands, "push", { value: push, configurable: true, writable: true });
  return {
    get after() {
      return after;
    },
    disarm: () => void delete (commands as { push?: unknown }).push,
  };
}
