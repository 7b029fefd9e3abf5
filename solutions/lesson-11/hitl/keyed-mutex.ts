/**
 * One-at-a-time execution per key (here: per thread). Two resumes of one
 * review, a double click or a retried request, queue up instead of both
 * reading "pending" and both running the side effect. This holds within one
 * process; several server instances need a lease in the store (see the
 * locking unit).
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      // Forget the key once nobody queued behind us, so the map does not grow with every session.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
