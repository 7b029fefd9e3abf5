/**
 * The learner process: the only place learner code runs. It is started by the
 * trusted grading process (kit/sandbox/learner.ts), inside the OS sandbox where
 * one is available, and serves that process's requests over the IPC channel:
 * import a module, call a function, construct a class, read a property.
 *
 * It is bundled to plain JavaScript with the learner's code, so it starts
 * without a TypeScript loader. Nothing here knows which check runs or why.
 */
import { pathToFileURL } from "node:url";
import { Peer, type Message } from "./rpc.ts";

type RedisCtor = new (options: Record<string, unknown>) => { disconnect(): void; on(event: "error", listener: () => void): unknown };
let Redis: RedisCtor | undefined;
const connections: Array<{ disconnect(): void }> = [];

async function loadRedis(): Promise<RedisCtor> {
  // Resolved from the dependencies next to this file, only when a Redis endpoint crosses.
  Redis ??= ((await import("ioredis")) as unknown as { Redis: RedisCtor }).Redis;
  return Redis;
}

const send = (message: Message) => {
  sendMutantCoverage(false);
  process.send!(message);
};

/**
 * Mutation testing only (`npm run mutation`, kit/mutation/): when Stryker has
 * instrumented the reference solution, its code counts here which mutants it
 * reached (globalThis.__stryker__.mutantCoverage). During Stryker's coverage run
 * (no __STRYKER_ACTIVE_MUTANT__) those counts go to the trusted side ahead of
 * every message, so they are credited to the check that caused them; what ran
 * while a module was being imported is marked as load-time ("static") coverage.
 * Without Stryker there is no such object and nothing is sent.
 */
function sendMutantCoverage(atLoad: boolean): void {
  const coverage = (globalThis as { __stryker__?: { mutantCoverage?: { static: Record<string, number> } } }).__stryker__?.mutantCoverage;
  if (!coverage || process.env.__STRYKER_ACTIVE_MUTANT__ || Object.keys(coverage.static).length === 0) return;
  const reached = coverage.static;
  coverage.static = {};
  process.send!({ op: "stryker-coverage", atLoad, reached });
}

const RECONNECT_MS = 20;

const peer: Peer = new Peer({
  send,
  decodeSpecial(tag, payload) {
    if (tag === "redis") {
      // A connection to the Redis the other side provides (a Unix socket it owns).
      const { path, options } = payload as { path: string; options?: Record<string, unknown> };
      if (!Redis) throw new Error("Redis client not loaded");
      // The socket is local, so a lost connection is retried every 20 ms: ioredis's default backoff
      // (50 ms more per attempt, up to 2 s) made each command during a simulated outage wait seconds.
      const client = new Redis({ path, maxRetriesPerRequest: 1, retryStrategy: () => RECONNECT_MS, ...options });
      // Failed commands still reject; without a listener ioredis would also print every failed
      // reconnect (after a check closes its server) into the output the report shows the learner.
      client.on("error", () => undefined);
      connections.push(client);
      return client;
    }
    return undefined;
  },
  async custom(name, args) {
    switch (name) {
      case "ping":
        return "pong";
      case "import": {
        const [file] = args as [string];
        const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
        sendMutantCoverage(true);
        return module;
      }
      case "prepare-redis":
        await loadRedis();
        return true;
      default:
        throw new Error(`unknown request ${name}`);
    }
  },
});

process.on("message", (message) => {
  // A liveness ping is answered at once and outside the channel's calls, so it never counts as the code's work.
  if ((message as { op?: string }).op === "ping") {
    // Mutation testing: work that sent no message (an HTTP request served, a timer) reports its coverage here.
    sendMutantCoverage(false);
    process.send!({ op: "pong", id: (message as { id: number }).id });
    return;
  }
  void peer.receive(message as Message);
});
process.on("disconnect", () => {
  for (const connection of connections) connection.disconnect();
  process.exit(0);
});
// An unhandled rejection in learner code is reported as output, like a server would log it; it
// does not take the process down in the middle of another call.
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`Unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
});
send({ op: "reply", id: 0, ok: true, value: "ready" });
