/**
 * Planted mistake: deleteThread builds its MATCH pattern from the raw thread id
 * and deletes whatever matches. For "run-7*" the pattern also matches
 * "run-7x"'s keys, so deleting one thread deletes its neighbours.
 * Expected tier: adequate (every core check passes; the glob-id excellence check fails).
 */
import { RedisSaver as ReferenceSaver } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";

export { RedisSaverError, SUPPORTED_FILTER_KEYS, type RedisSaverOptions } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";

export class RedisSaver extends ReferenceSaver {
  override async deleteThread(threadId: string): Promise<void> {
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", `*$${threadId}$*`, "COUNT", 500);
      cursor = next;
      if (page.length > 0) await this.client.unlink(...page);
    } while (cursor !== "0");
  }
}
