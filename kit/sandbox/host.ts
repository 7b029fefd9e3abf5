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

type RedisCtor = new (options: Record<string, unknown>) => { disconnect(): void };
let Redis: RedisCtor | undefined;
const connections: Array<{ disconnect(): void }> = [];

async function loadRedis(): Promise<RedisCtor> {
  // Resolved from the dependencies next to this file, only when a Redis endpoint crosses.
  Redis ??= ((await import("ioredis")) as unknown as { Redis: RedisCtor }).Redis;
  return Redis;
}

const send = (message: Message) => {
  process.send!(message);
};

const peer: Peer = new Peer({
  send,
  decodeSpecial(tag, payload) {
    if (tag === "redis") {
      // A connection to the Redis the other side provides (a Unix socket it owns).
      const { path, options } = payload as { path: string; options?: Record<string, unknown> };
      if (!Redis) throw new Error("Redis client not loaded");
      const client = new Redis({ path, maxRetriesPerRequest: 1, ...options });
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
        return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
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
