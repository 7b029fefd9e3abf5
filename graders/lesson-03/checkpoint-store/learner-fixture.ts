/**
 * Learner-side fixture of the checkpoint-store grader: trusted code that runs in a learner
 * process, next to the code under test.
 */

/** Saves each checkpoint in turn, in this process (hundreds of saves without a round trip each). */
export async function saveEach(
  store: { save(taskId: string, checkpoint: unknown): unknown },
  checkpoints: ReadonlyArray<{ taskId: string }>,
): Promise<string[]> {
  const ids: string[] = [];
  for (const checkpoint of checkpoints) ids.push((await store.save(checkpoint.taskId, checkpoint)) as string);
  return ids;
}

export { stopClock } from "../../harness/stopped-clock.ts";
