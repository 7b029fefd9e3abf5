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

/**
 * Stops this process's clock at `ms`: Date.now() and new Date() both return it from now on,
 * so every save in this process happens "in the same millisecond". A new Date is still a
 * plain Date; only the reading of the current time changes.
 */
export function stopClock(ms: number): void {
  const RealDate = Date;
  const Stopped: DateConstructor = new Proxy(RealDate, {
    construct(target, args, newTarget): object {
      return Reflect.construct(target, args.length === 0 ? [ms] : args, newTarget === Stopped ? target : newTarget);
    },
    apply(target, thisArg, args) {
      return args.length === 0 ? new RealDate(ms).toString() : Reflect.apply(target, thisArg, args);
    },
    get(target, prop, receiver) {
      if (prop === "now") return () => ms;
      return Reflect.get(target, prop, receiver === Stopped ? target : receiver);
    },
  });
  globalThis.Date = Stopped;
}
