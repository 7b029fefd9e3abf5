/**
 * Adequate but not excellent: list() is correct, SCAN-only and batched, but has
 * no secondary index. Every call walks the whole keyspace with SCAN MATCH COUNT,
 * so list({ limit: 10 }) among 100,000 keys costs ~200 round trips.
 * Expected tier: adequate (fails the round-trip bound excellence check only).
 */
import { parseListOptions, type CheckpointTuple, type ListOptions, type RunnableConfig } from "#runtime";
import { planFilter, RedisSaver as ReferenceSaver } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";
import { decodeComponent, encodeComponent } from "../../../../../solutions/lesson-11/scan-indexing/keys.ts";

export { RedisSaverError, SUPPORTED_FILTER_KEYS, type RedisSaverOptions } from "../../../../../solutions/lesson-11/scan-indexing/index.ts";

export class RedisSaver extends ReferenceSaver {
  override async *list(config: RunnableConfig, options?: ListOptions): AsyncGenerator<CheckpointTuple> {
    const scope = { threadId: config.threadId, checkpointNs: config.checkpointNs ?? "" };
    const { beforeId, limit, filter } = parseListOptions(options);
    const plan = planFilter(filter);
    const pattern = `checkpoint$${encodeComponent(scope.threadId)}$${encodeComponent(scope.checkpointNs)}$*`;
    const found = new Set<string>(); // SCAN may repeat a key: a Set keeps one
    let cursor = "0";
    do {
      const [next, page] = await this.client.scan(cursor, "MATCH", pattern, "COUNT", 500);
      cursor = next;
      for (const key of page) found.add(decodeComponent(key.split("$")[3]!));
    } while (cursor !== "0");
    const ids = [...found]
      .filter((id) => (config.checkpointId === undefined || id === config.checkpointId) && (beforeId === undefined || id < beforeId))
      .sort()
      .reverse();
    let yielded = 0;
    for (let start = 0; start < ids.length; start += 50) {
      for (const tuple of await this.loadTuples(scope, ids.slice(start, start + 50))) {
        if (!plan.accepts(tuple)) continue;
        yield tuple;
        if (limit !== undefined && ++yielded >= limit) return;
      }
    }
  }
}
