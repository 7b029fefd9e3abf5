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

interface StoredCheckpoint {
  parentId: string | undefined;
  type: string;
  body: Uint8Array;
  /** Kept as JSON text, like the SQLite column, so callers never share objects with the store. */
  metadata: string;
}

interface StoredWrite {
  taskId: string;
  idx: number;
  channel: string;
  type: string;
  value: Uint8Array;
}

/**
 * Checkpoints in Maps, for tests and demos. Values go through the serializer
 * exactly as in a real store, so what works here also works on disk.
 */
export class MemorySaver implements CheckpointSaver {
  private readonly serde: SerializerProtocol;
  /** key: thread \0 namespace -> checkpoint id -> checkpoint */
  private readonly checkpoints = new Map<string, Map<string, StoredCheckpoint>>();
  /** key: thread \0 namespace \0 checkpoint id -> task id \0 idx -> write */
  private readonly writes = new Map<string, Map<string, StoredWrite>>();

  constructor(options: { serde?: SerializerProtocol } = {}) {
    this.serde = options.serde ?? new JsonSerializer();
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "getTuple()");
    const thread = this.checkpoints.get(threadKey(threadId, checkpointNs));
    if (!thread) return undefined;
    const id = checkpointId ?? newestFirst(thread.keys())[0];
    const stored = id === undefined ? undefined : thread.get(id);
    return stored && this.toTuple(threadId, checkpointNs, id!, stored);
  }

  async *list(config: RunnableConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const { threadId, checkpointNs, checkpointId } = parseConfig(config, "list()");
    const { beforeId, limit, filter } = parseListOptions(options);
    const thread = this.checkpoints.get(threadKey(threadId, checkpointNs));
    if (!thread) return;
    let yielded = 0;
    for (const id of newestFirst(thread.keys())) {
      if (limit !== undefined && yielded >= limit) return;
      if (checkpointId !== undefined && id !== checkpointId) continue;
      if (beforeId !== undefined && id >= beforeId) continue;
      const tuple = this.toTuple(threadId, checkpointNs, id, thread.get(id)!);
      if (!matchesFilter(tuple.metadata, filter)) continue;
      yielded++;
      yield tuple;
    }
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    const key = threadKey(threadId, checkpointNs);
    const thread = this.checkpoints.get(key) ?? new Map<string, StoredCheckpoint>();
    this.checkpoints.set(key, thread);
    const [type, body] = this.serde.dumpsTyped(checkpoint);
    thread.set(checkpoint.id, { parentId, type, body, metadata: JSON.stringify(metadata) });
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    const key = writesKey(threadId, checkpointNs, checkpointId);
    const stored = this.writes.get(key) ?? new Map<string, StoredWrite>();
    this.writes.set(key, stored);
    writes.forEach(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const slot = `${taskId}\u0000${idx}`;
      // Same rule as SQL's INSERT OR IGNORE / INSERT OR REPLACE in SqliteSaver.
      if (stored.has(slot) && !isSpecialChannel(channel)) return;
      const [type, bytes] = this.serde.dumpsTyped(value);
      stored.set(slot, { taskId, idx, channel, type, value: bytes });
    });
  }

  async deleteThread(threadId: string): Promise<void> {
    const prefix = `${threadId}\u0000`;
    for (const map of [this.checkpoints, this.writes]) {
      for (const key of [...map.keys()]) if (key.startsWith(prefix)) map.delete(key);
    }
  }

  private toTuple(threadId: string, checkpointNs: string, id: string, stored: StoredCheckpoint): CheckpointTuple {
    const writes = [...(this.writes.get(writesKey(threadId, checkpointNs, id))?.values() ?? [])].sort(
      (a, b) => compareStrings(a.taskId, b.taskId) || a.idx - b.idx,
    );
    return {
      config: { threadId, checkpointNs, checkpointId: id },
      checkpoint: this.serde.loadsTyped(stored.type, stored.body) as Checkpoint,
      metadata: JSON.parse(stored.metadata) as CheckpointMetadata,
      ...(stored.parentId !== undefined && { parentConfig: { threadId, checkpointNs, checkpointId: stored.parentId } }),
      pendingWrites: writes.map((w): PendingWrite => [w.taskId, w.channel, this.serde.loadsTyped(w.type, w.value)]),
    };
  }
}

function threadKey(threadId: string, checkpointNs: string): string {
  return `${threadId}\u0000${checkpointNs}`;
}

function writesKey(threadId: string, checkpointNs: string, checkpointId: string): string {
  return `${threadId}\u0000${checkpointNs}\u0000${checkpointId}`;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function newestFirst(ids: Iterable<string>): string[] {
  return [...ids].sort((a, b) => compareStrings(b, a));
}
