/**
 * Planted mistake: deleteThread finds the thread's keys with KEYS. Correct on a
 * test database, but KEYS walks the whole keyspace in one blocking call.
 * Expected tier: needs-improvement (the "never issues KEYS" core check).
 */
import { RedisSaver as ReferenceSaver } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";
import { encodeComponent } from "../../../../../solutions/lesson-11/scan-indexing/keys.ts";

export { RedisSaverError, SUPPORTED_FILTER_KEYS, type RedisSaverOptions } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";

export class RedisSaver extends ReferenceSaver {
  override async deleteThread(threadId: string): Promise<void> {
    const thread = encodeComponent(threadId);
    const doomed = await this.client.keys(`*$${thread}$*`);
    const own = doomed.filter((key) => key.split("$")[1] === thread);
    if (own.length > 0) await this.client.unlink(...own);
  }
}
