/**
 * Planted mistake: putWrites numbers each write after the writes already stored
 * for the checkpoint (a running counter) instead of writeIndex(channel, position).
 * A retried task lands on new keys, so its writes are duplicated, and special
 * channels never replace. Expected tier: needs-improvement (the putWrites idempotency core check).
 */
import type { RunnableConfig } from "#runtime";
import { RedisSaver as ReferenceSaver } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";
import { keys } from "../../../../../solutions/lesson-11/scan-indexing/keys.ts";

export { RedisSaverError, SUPPORTED_FILTER_KEYS, type RedisSaverOptions } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";

export class RedisSaver extends ReferenceSaver {
  override async putWrites(config: RunnableConfig, writes: Array<[channel: string, value: unknown]>, taskId: string): Promise<void> {
    const { threadId, checkpointNs = "", checkpointId } = config;
    if (checkpointId === undefined) throw new Error("putWrites() needs config.checkpointId.");
    const setKey = keys.writeSet(threadId, checkpointNs, checkpointId);
    const alreadyStored = await this.client.scard(setKey);
    const tx = this.client.multi();
    const writeKeys = writes.map(([channel, value], position) => {
      const key = keys.write(threadId, checkpointNs, checkpointId, taskId, alreadyStored + position);
      const [type, bytes] = this.serde.dumpsTyped(value);
      tx.set(key, JSON.stringify({ channel, type, value: Buffer.from(bytes).toString("base64") }));
      return key;
    });
    if (writeKeys.length > 0) tx.sadd(setKey, ...writeKeys);
    this.expire(tx, [setKey, ...writeKeys]);
    await tx.exec();
  }
}
