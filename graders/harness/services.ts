/**
 * The folder where a unit's trusted services (Redis sockets, HTTP forwarders) put the
 * endpoints learner processes connect to. Every learner process of the unit sees it
 * read-only at the same path; nothing else of the grading side is visible to them.
 */
import { chmodSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let dir: string | undefined;

export function servicesDir(): string {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), "svc-"));
    chmodSync(dir, 0o755);
  }
  return dir;
}

/**
 * Activity of the learner's code as the trusted side sees it: messages from its
 * processes, commands its Redis connections send, requests its servers answer.
 * A check's deadline is extended while this moves (see check.ts): a slow machine
 * shows activity, stuck code none.
 */
export const activity = { count: 0 };

export function noteActivity(): void {
  activity.count++;
}
