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
