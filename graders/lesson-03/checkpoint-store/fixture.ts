/**
 * What the checkpoint-store checks share: opaque file names and task ids, seeded states with
 * the values JSON loses, a store opened in a learner process, and the comparisons every check
 * makes. Nothing here names a check: files and task ids are random hex.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { inspect, isDeepStrictEqual } from "node:util";
import type { CheckContext } from "#harness/check.ts";
import { failWithSeed as fail } from "#harness/seed.ts";
import type * as Reference from "../../../solutions/lesson-03/checkpoint-store/index.ts";

export type StoreApi = typeof Reference;
export type State = Record<string, unknown>;
export type Checkpoint = Reference.Checkpoint<unknown>;
export type Stored = Reference.StoredCheckpoint<unknown>;
/** A store as the trusted side holds it: every method is a call into a learner process. */
export type Store = Reference.SqliteCheckpointStore<unknown>;

export const END = "__end__";

export function show(value: unknown): string {
  return inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 8, maxStringLength: 60 });
}

export { fail };

/** The error a call threw (or rejected with), or undefined when it returned. */
export async function thrown(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return undefined;
}

export const opaque = (bytes = 6): string => randomBytes(bytes).toString("hex");

/** The checkpoint ids of a list() result, newest first; a result that is not an array is handed back as it is, for the message to show. */
export function checkpointIds(list: unknown): unknown {
  return Array.isArray(list) ? list.map((c) => (c as { checkpointId?: unknown } | null)?.checkpointId) : list;
}

/** A fresh SQLite file in the unit's scratch folder (every learner process sees it at this path). */
export function newFile(check: CheckContext<StoreApi>): string {
  return join(check.scratch, `${opaque()}.db`);
}

/** Opens a store on `file` through `api` (the shared learner process's, or a spawned one's). */
export async function openStore(api: StoreApi, file: string): Promise<Store> {
  return (await new api.SqliteCheckpointStore(file)) as Store;
}

/** A second learner process with its own store on the same file: nothing the writer remembers helps it. */
export async function reader(check: CheckContext<StoreApi>, file: string): Promise<{ store: Store; api: StoreApi; kill(): Promise<void> }> {
  const other = await check.spawn();
  return {
    store: await openStore(other.api, file),
    api: other.api,
    async kill() {
      other.learner.kill("SIGKILL");
      await other.learner.exited;
    },
  };
}

/** A state with the values JSON.stringify loses, varied by the seed. */
export function richState(random: () => number, step: number): State {
  const at = new Date(Date.UTC(2026, 2, 1 + Math.floor(random() * 27), Math.floor(random() * 24), Math.floor(random() * 60), 0, Math.floor(random() * 1000)));
  return {
    step,
    documentId: `doc-${Math.floor(random() * 1e6)}`,
    fetchedAt: at,
    pages: new Map<unknown, unknown>([
      [1, { chars: Math.floor(random() * 5000), at }],
      [2, { chars: Math.floor(random() * 5000), at: new Date(at.getTime() + 1) }],
      [new Date(0), "epoch key"],
    ]),
    seen: new Set(["a", 1, null]),
    draft: undefined,
    retries: [undefined, null, 0],
    nested: { approval: { requestedAt: new Date(at.getTime() + 60_000), approvedBy: undefined } },
    note: "naïve café ✓",
  };
}

/** `count` checkpoints of one task, with distinct increasing timestamps. */
export function checkpointsFor(taskId: string, count: number, random: () => number, nodes: readonly string[] = ["split", "embed", "index", "review"]): Checkpoint[] {
  const start = Date.UTC(2026, 3, 1) + Math.floor(random() * 1e9);
  return Array.from({ length: count }, (_, i) => ({
    taskId,
    state: richState(random, i),
    currentNode: nodes[i % nodes.length]!,
    timestamp: new Date(start + i * 1000 + Math.floor(random() * 900)),
  }));
}

/** The id save() returned, or a failure saying what it returned instead. */
export async function saved(store: Store, taskId: string, checkpoint: Checkpoint, options?: Reference.SaveOptions): Promise<string> {
  let id: unknown;
  try {
    id = await (options === undefined ? store.save(taskId, checkpoint) : store.save(taskId, checkpoint, options));
  } catch (error) {
    fail(`save(${show(taskId)}, …) threw ${show(error)} for a valid checkpoint (node ${show(checkpoint.currentNode)}).`);
  }
  if (typeof id !== "string" || id.length === 0) fail(`save() must resolve with the new checkpoint's id (a non-empty string); it resolved with ${show(id)}.`);
  return id;
}

/** Fails unless `got` is the checkpoint saved as `want`, with this id and parent, every value intact. */
export function expectCheckpoint(got: unknown, want: Checkpoint, ids: { checkpointId: string; parentId: string | null }, what: string): void {
  if (got === null || typeof got !== "object") fail(`${what}: expected the checkpoint saved with node ${show(want.currentNode)}, got ${show(got)}.`);
  const c = got as Partial<Stored>;
  if (c.checkpointId !== ids.checkpointId) fail(`${what}: checkpointId is ${show(c.checkpointId)}; expected ${show(ids.checkpointId)}, the id save() returned for it.`);
  if (c.parentId !== ids.parentId) fail(`${what}: parentId is ${show(c.parentId)}; expected ${show(ids.parentId)}${ids.parentId === null ? " (a task's first checkpoint has no parent)" : ", the checkpoint saved before it"}.`);
  if (c.taskId !== want.taskId) fail(`${what}: taskId is ${show(c.taskId)}; expected ${show(want.taskId)}.`);
  if (c.currentNode !== want.currentNode) fail(`${what}: currentNode is ${show(c.currentNode)}; expected ${show(want.currentNode)}.`);
  if (!(c.timestamp instanceof Date)) fail(`${what}: timestamp came back as ${show(c.timestamp)} (${typeof c.timestamp}); it must be a Date again, not a string or a number.`);
  if (c.timestamp.getTime() !== want.timestamp.getTime()) fail(`${what}: timestamp is ${c.timestamp.toISOString()}; it was saved as ${want.timestamp.toISOString()} (keep the milliseconds).`);
  if (!isDeepStrictEqual(c.state, want.state)) fail(`${what}: the state came back changed.\n  saved:  ${show(want.state)}\n  loaded: ${show(c.state)}`);
}

/** Fails unless `list` is exactly these checkpoints (oldest first in `chain`), newest first, each naming its parent. */
export function expectHistory(list: unknown, chain: ReadonlyArray<{ id: string; checkpoint: Checkpoint }>, what: string): void {
  if (!Array.isArray(list)) fail(`${what}: list() must resolve with an array; got ${show(list)}.`);
  const got = list.map((c: Partial<Stored>) => c?.checkpointId);
  const want = chain.map((c) => c.id).reverse();
  if (!isDeepStrictEqual(got, want)) {
    const reason =
      got.length < want.length
        ? ` It has ${got.length} of the ${want.length} checkpoints saved: every save must add one, never replace the last.`
        : isDeepStrictEqual([...got].sort(), [...want].sort())
          ? " The same checkpoints in another order: newest first means the reverse of the save order."
          : "";
    fail(`${what}: list() gave the ids ${show(got)}; expected ${show(want)} (newest first).${reason}`);
  }
  for (let i = 0; i < want.length; i++) {
    const j = want.length - 1 - i; // position in chain (oldest first)
    expectCheckpoint(list[i], chain[j]!.checkpoint, { checkpointId: chain[j]!.id, parentId: j === 0 ? null : chain[j - 1]!.id }, `${what}, entry ${i} (saved ${j === want.length - 1 ? "last" : `${want.length - j}th from the end`})`);
  }
}

/** Fails unless `error` is the learner's CheckpointStoreError with a message that says something. */
export function expectStoreError(api: StoreApi, error: unknown, what: string): void {
  if (error === undefined) fail(`${what} was accepted; it must be refused with CheckpointStoreError.`);
  if (!(error instanceof api.CheckpointStoreError)) fail(`${what} was refused with ${show(error)}; throw your CheckpointStoreError instead (a caller catches one type).`);
  if (typeof error.message !== "string" || error.message.length < 10) fail(`The CheckpointStoreError for ${what} needs a message that says what was wrong.`);
}
