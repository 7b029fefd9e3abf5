import { createHash } from "node:crypto";
import { v7 as uuidv7 } from "uuid";

/**
 * UUIDv7 starts with the millisecond timestamp (and uuid keeps a counter within
 * one millisecond), so string order is creation order: "newest first" is a
 * descending sort and `before` is a string comparison, as with LangGraph's uuid6.
 */
export function newCheckpointId(): string {
  return uuidv7();
}

/**
 * The same (checkpoint, node) always gets the same task id, so a retried or
 * resumed task rewrites its own pending writes instead of adding new ones.
 * A random id here would make every retry look like a new task.
 */
export function taskIdFor(checkpointId: string, node: string): string {
  return createHash("sha256").update(`${checkpointId}\u0000${node}`).digest("hex").slice(0, 32);
}
