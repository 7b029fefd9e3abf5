/**
 * Learner-side fixture of the locking grader: trusted code that runs inside a learner process,
 * next to the code under test, where a loop must not pay an IPC round trip per step or where
 * errors must be of the learner's own classes.
 *
 * - `increment` is the grader's own optimistic read-modify-write loop (not the learner's retry
 *   helper, which is graded apart): each writer reads, yields, and writes count + 1 with the
 *   version it read, re-reading on a version conflict. All writers of all processes wait for
 *   `start()` (a barrier on the trusted side) first, so they really overlap.
 * - `conflictingStore` / `failingStore` / `clock` are stand-ins the retry and degradation
 *   checks hand to the learner's code.
 *
 * Nothing here names a check.
 */

type Ctor = abstract new (...args: never[]) => unknown;

interface Store {
  get(threadId: string): Promise<{ state: { count: number; writer: string }; version: number } | undefined>;
  put(threadId: string, state: { count: number; writer: string }, expectedVersion: number, options?: { fencingToken?: number }): Promise<number>;
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

export interface IncrementReport {
  done: number[];
  conflicts: number;
  unexpected: string[];
  /** Wall-clock start and end of this process's writers (ms since the epoch). */
  began: number;
  ended: number;
}

export async function increment(args: {
  stores: Store[];
  names: string[];
  threadId: string;
  increments: number;
  Conflict: Ctor;
  start: () => Promise<void>;
  seed: number;
  /** Told now and then that the loop is still going (the trusted side's deadline counts it as progress). */
  progress?: (done: number) => unknown;
}): Promise<IncrementReport> {
  const { stores, names, threadId, increments, Conflict, start } = args;
  const random = mulberry32(args.seed);
  const report: IncrementReport = { done: stores.map(() => 0), conflicts: 0, unexpected: [], began: 0, ended: 0 };
  const attemptCap = increments * 400; // a watchdog per writer, far above what a correct store needs
  await start();
  report.began = Date.now();
  await Promise.all(
    stores.map(async (store, index) => {
      for (let attempts = 0; report.done[index]! < increments; attempts++) {
        if (attempts > attemptCap) {
          report.unexpected.push(`writer ${names[index]} gave up after ${attempts} attempts`);
          return;
        }
        let current;
        try {
          current = await store.get(threadId);
        } catch (error) {
          report.unexpected.push(`get: ${describe(error)}`);
          return;
        }
        const pause = random();
        if (pause < 0.4) await new Promise<void>((resolve) => setImmediate(resolve));
        else if (pause < 0.6) await new Promise<void>((resolve) => setTimeout(resolve, 1));
        try {
          await store.put(threadId, { count: (current?.state.count ?? 0) + 1, writer: names[index]! }, current?.version ?? 0);
          report.done[index]!++;
          if (args.progress && report.done[index]! % 2 === 0) void Promise.resolve(args.progress(report.done[index]!)).catch(() => undefined);
        } catch (error) {
          if (error instanceof Conflict) report.conflicts++;
          else {
            report.unexpected.push(`put: ${describe(error)}`);
            return;
          }
        }
      }
    }),
  );
  report.ended = Date.now();
  return report;
}

/**
 * A store on which every put loses the race (throws the learner's own conflict error). After
 * `cap` puts its get() never settles, which parks an unbounded retry loop instead of letting it
 * spin for ever; `tripped()` resolves at that moment.
 */
export function conflictingStore(Conflict: new (threadId: string, expected: number, actual: number) => Error, cap: number) {
  let puts = 0;
  const delays: number[] = [];
  const putTimes: number[] = [];
  const tokens: Array<number | undefined> = [];
  // A sleep takes real time (a timer, however short), and a put while one is still pending means
  // the retry loop did not wait for it: a backoff that is asked for but never waited.
  let sleeping = 0;
  let putsWhileSleeping = 0;
  let trip!: () => void;
  const tripped = new Promise<void>((resolve) => (trip = resolve));
  return {
    get: async () => (puts >= cap ? new Promise<never>(() => {}) : { state: { count: puts, writer: "other" }, version: 10 + puts }),
    put: async (threadId: string, _state: unknown, expectedVersion: number, options?: { fencingToken?: number }) => {
      tokens.push(options?.fencingToken);
      putTimes.push(performance.now());
      if (sleeping > 0) putsWhileSleeping++;
      if (++puts >= cap) trip();
      throw new Conflict(threadId, expectedVersion, expectedVersion + 1);
    },
    sleep: async (ms: number) => {
      delays.push(ms);
      sleeping++;
      await new Promise((resolve) => setTimeout(resolve, 2));
      sleeping--;
    },
    tripped: () => tripped,
    stats: () => ({ puts, delays: [...delays], tokens: [...tokens], putsWhileSleeping, putTimes: [...putTimes] }),
  };
}

/** A store whose put fails with the learner's stale-token error, or with a connection error. */
export function failingStore(kind: "stale" | "connection", Stale: new (threadId: string, token: number, newest: number) => Error) {
  let puts = 0;
  return {
    get: async () => undefined,
    put: async () => {
      puts++;
      if (kind === "stale") throw new Stale("t", 3, 4);
      const error = new Error("Connection is closed.");
      (error as Error & { code?: string }).code = "ECONNRESET";
      throw error;
    },
    puts: () => puts,
  };
}

/**
 * A primary store (the trusted side switches it down and up) that keeps the store contract in
 * memory. `raceNextPut()` lets "another instance" write the thread just before the next put
 * lands, as when it reaches Redis between a reconcile's read and its write-back;
 * `failNextPut()` drops the connection under the next put only.
 */
export function flakyPrimary(Conflict: new (threadId: string, expected: number, actual: number) => Error) {
  const threads = new Map<string, { encoded: string; version: number }>();
  let down = false;
  // What the next put meets: another instance's write first, or a dropped connection.
  let nextPut: "race" | "fail" | undefined;
  const outage = () => Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:6379"), { code: "ECONNREFUSED" });
  return {
    get: async (threadId: string) => {
      if (down) throw outage();
      const entry = threads.get(threadId);
      return entry && { state: JSON.parse(entry.encoded) as unknown, version: entry.version };
    },
    put: async (threadId: string, state: unknown, expectedVersion: number) => {
      if (down) throw outage();
      const meets = nextPut;
      nextPut = undefined;
      if (meets === "fail") throw outage();
      if (meets === "race") {
        const theirs = threads.get(threadId)?.version ?? 0;
        threads.set(threadId, { encoded: JSON.stringify({ count: 100, writer: "other instance" }), version: theirs + 1 });
      }
      const actual = threads.get(threadId)?.version ?? 0;
      if (actual !== expectedVersion) throw new Conflict(threadId, expectedVersion, actual);
      threads.set(threadId, { encoded: JSON.stringify(state), version: expectedVersion + 1 });
      return expectedVersion + 1;
    },
    setDown: (value: boolean) => void (down = value),
    raceNextPut: () => void (nextPut = "race"),
    failNextPut: () => void (nextPut = "fail"),
    peek: (threadId: string) => threads.get(threadId),
  };
}

/** Fixed "random" numbers handed out in order (from the start again after the last). */
export function randomSequence(values: number[]) {
  let drawn = 0;
  return { random: () => values[drawn++ % values.length]!, drawn: () => drawn };
}

/** A clock the trusted side moves: `now` is handed to the learner's code, `advance` is called remotely. */
export function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}
