/**
 * Learner-side: stops the clock of the process it runs in. Fixtures that run next to learner
 * code re-export it, so a check can make every save of a run happen "in the same millisecond",
 * as a fast loop on a coarse clock does in production.
 */

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
