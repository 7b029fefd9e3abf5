/**
 * Child process of the multi-process check (started through the crash harness's runChild, so
 * it runs the submission under the same loader and confinement as the grader). It opens its
 * own SqliteVersionedStore on the shared file, marks itself ready, waits for the parent's "go"
 * file so all writers start together, then does read-modify-write increments with a pause
 * between read and write, re-reading on VersionConflictError.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { childMain } from "#harness/crash.ts";
import { loadImplementation } from "#harness/implementation.ts";
import type * as Api from "../../../solutions/lesson-11/locking/index.ts";

export interface WriterArgs {
  file: string;
  /** Folder of the ready-* and go files (beside the database). */
  barrierDir: string;
  threadId: string;
  increments: number;
  name: string;
}

export interface WriterReport {
  done: number;
  conflicts: number;
}

childMain<WriterArgs, WriterReport>(async ({ file, barrierDir, threadId, increments, name }) => {
  const api = await loadImplementation<typeof Api>("lesson-11", "locking", ["SqliteVersionedStore", "VersionConflictError"]);
  const store = new api.SqliteVersionedStore<{ count: number; writer: string }>(file);
  writeFileSync(join(barrierDir, `ready-${name}`), "");
  while (!existsSync(join(barrierDir, "go"))) await sleep(2);

  let done = 0;
  let conflicts = 0;
  for (let attempts = 0; done < increments; attempts++) {
    if (attempts > increments * 200) throw new Error(`gave up after ${attempts} attempts (${conflicts} conflicts)`);
    const current = await store.get(threadId);
    await sleep(1); // the window in which another process writes
    try {
      await store.put(threadId, { count: (current?.state.count ?? 0) + 1, writer: name }, current?.version ?? 0);
      done++;
    } catch (error) {
      if (!(error instanceof api.VersionConflictError)) throw error;
      conflicts++;
    }
  }
  return { done, conflicts };
});
