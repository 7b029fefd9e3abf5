import { inListScope, matchesFilter, parseCheckpointConfig, parseConfig, parseListConfig, parseListOptions, parseLookupConfig } from "./config.ts";
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

interface StoredCheckpoint {
  threadId: string;
  checkpointNs: string;
  parentId: string | undefined;
  type: string;
  body: Uint8Array;
  /** Kept as JSON text, like the SQLite column, so callers never share objects with the store. */
  metadata: string;
}

interface StoredValue {
  type: string;
  bytes: Uint8Array;
}

interface StoredWrite extends StoredValue {
  taskId: string;
  idx: number;
  channel: string;
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
  /** key: thread \0 namespace \0 channel \0 version -> value (splitChannels) */
  private readonly blobs = new Map<string, StoredValue>();

  constructor(options: { serde?: SerializerProtocol } = {}) {
    this.serde = options.serde ?? new JsonSerializer();
  }

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const resolved = parseLookupConfig(config, "getTuple()");
    if (!resolved) return undefined;
    const thread = this.checkpoints.get(key(resolved.threadId, resolved.checkpointNs));
    const id = resolved.checkpointId ?? (thread && newestFirst(thread.keys())[0]);
    const stored = id === undefined ? undefined : thread?.get(id);
    return stored && this.toTuple(id!, stored);
  }

  async *list(config: ListConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const scope = parseListConfig(config);
    const { beforeId, limit, filter } = parseListOptions(options);
    // Newest first across every (thread, namespace) in scope: collect the candidates, then sort once.
    const candidates: Array<[id: string, stored: StoredCheckpoint]> = [];
    for (const thread of this.checkpoints.values()) {
      for (const [id, stored] of thread) {
        if (inListScope(scope, stored.threadId, stored.checkpointNs, id) && (beforeId === undefined || id < beforeId)) candidates.push([id, stored]);
      }
    }
    candidates.sort(([a], [b]) => compareStrings(b, a));
    let yielded = 0;
    for (const [id, stored] of candidates) {
      if (limit !== undefined && yielded >= limit) return;
      if (!matchesFilter(JSON.parse(stored.metadata) as CheckpointMetadata, filter)) continue;
      yielded++;
      yield this.toTuple(id, stored);
    }
  }

  async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions?: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, checkpointNs, checkpointId: parentId } = parseConfig(config, "put()");
    const threadKey = key(threadId, checkpointNs);
    const thread = this.checkpoints.get(threadKey) ?? new Map<string, StoredCheckpoint>();
    this.checkpoints.set(threadKey, thread);
    const { body, blobs } = splitChannels(checkpoint, newVersions);
    for (const { channel, version, value } of blobs) this.blobs.set(key(threadKey, channel, String(version)), this.dump(value));
    const { type, bytes } = this.dump(body);
    thread.set(checkpoint.id, { threadId, checkpointNs, parentId, type, body: bytes, metadata: JSON.stringify(metadata) });
    return { threadId, checkpointNs, checkpointId: checkpoint.id };
  }

  async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs, checkpointId } = parseCheckpointConfig(config, "putWrites()");
    const writesKey = key(threadId, checkpointNs, checkpointId);
    const stored = this.writes.get(writesKey) ?? new Map<string, StoredWrite>();
    this.writes.set(writesKey, stored);
    writes.forEach(([channel, value], position) => {
      const idx = writeIndex(channel, position);
      const slot = key(taskId, String(idx));
      // Same rule as SQL's INSERT OR IGNORE / INSERT OR REPLACE in SqliteSaver.
      if (stored.has(slot) && !isSpecialChannel(channel)) return;
      stored.set(slot, { taskId, idx, channel, ...this.dump(value) });
    });
  }

  async deleteThread(threadId: string): Promise<void> {
    const prefix = `${threadId}\u0000`;
    for (const map of [this.checkpoints, this.writes, this.blobs]) {
      for (const mapKey of [...map.keys()]) if (mapKey.startsWith(prefix)) map.delete(mapKey);
    }
  }

  private dump(value: unknown): StoredValue {
    const [type, bytes] = this.serde.dumpsTyped(value);
    return { type, bytes };
  }

  private load({ type, bytes }: StoredValue): unknown {
    return this.serde.loadsTyped(type, bytes);
  }

  private toTuple(id: string, stored: StoredCheckpoint): CheckpointTuple {
    const { threadId, checkpointNs, parentId } = stored;
    const writes = [...(this.writes.get(key(threadId, checkpointNs, id))?.values() ?? [])].sort(
      (a, b) => compareStrings(a.taskId, b.taskId) || a.idx - b.idx,
    );
    const body = this.load({ type: stored.type, bytes: stored.body }) as Checkpoint;
    const found = blobRefs(body).map(([channel, version]) => {
      const blob = this.blobs.get(key(threadId, checkpointNs, channel, String(version)));
      return blob && { value: this.load(blob) };
    });
    return {
      config: { threadId, checkpointNs, checkpointId: id },
      checkpoint: joinChannels(body, found),
      metadata: JSON.parse(stored.metadata) as CheckpointMetadata,
      ...(parentId !== undefined && { parentConfig: { threadId, checkpointNs, checkpointId: parentId } }),
      pendingWrites: writes.map((w): PendingWrite => [w.taskId, w.channel, this.load(w)]),
    };
  }
}

function key(...parts: string[]): string {
  return parts.join("\u0000");
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function newestFirst(ids: Iterable<string>): string[] {
  return [...ids].sort((a, b) => compareStrings(b, a));
}
