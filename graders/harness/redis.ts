/**
 * Redis for graders, instrumented at the backend.
 *
 * Learner code gets a real ioredis client (`await redis.endpoint(learner)`)
 * connected over a Unix socket to a small RESP server that lives here, on the
 * trusted side. Every command of every connection the learner opens
 * (duplicates, pipelines and MULTI in every form, scripts) crosses that socket,
 * so it is recorded here, where learner code cannot reach the record.
 *
 * Behind the socket: ioredis-mock by default, where this server itself gives
 * the commands the lessons teach Redis's own semantics (SCAN with MATCH, COUNT,
 * TYPE and cursors; WATCH/MULTI/EXEC/DISCARD; SCRIPT LOAD/EVALSHA; one command
 * at a time, so MULTI and EVAL are atomic); or, when REDIS_URL is set, a real
 * server, reached through a recording proxy, in a database of its own (see
 * leaseDatabase): checks run side by side, and a design with one key for every
 * thread (a global index) must neither see another check's keys nor lose its
 * own to another check's cleanup.
 *
 * `redis.client` is the grader's own connection (fixtures, inspection): it is
 * never recorded.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getKeyIndexes, hasFlag, exists as isRedisCommand } from "@ioredis/commands";
import { Redis } from "ioredis";
import RedisMock from "ioredis-mock";
import { createRequire } from "node:module";
import RedisParser from "redis-parser";
import type { LearnerProcess, RedisEndpoint } from "../../kit/sandbox/learner.ts";
import { noteActivity, servicesDir } from "./services.ts";

export interface RecordedCommand {
  /** Uppercase command name. */
  name: string;
  args: string[];
  /** Which round trip carried it (1-based, counted over all learner connections). */
  roundTrip: number;
  /** Which learner connection sent it (1-based). */
  connection: number;
  /** Run by a script (EVAL, EVALSHA, FCALL) this connection sent, seen at the backend rather than on the wire. */
  inScript?: boolean;
}

export interface TestRedis {
  /** The grader's own client: not recorded. */
  client: Redis;
  /** Every command learner connections sent, in arrival order. */
  readonly commands: RecordedCommand[];
  /** Times a learner connection waited for replies before sending more (a pipeline or MULTI is one). */
  readonly roundTrips: number;
  /** Learner connections opened so far. */
  readonly connections: number;
  /** Learner connections open right now (e.g. to wait, after an outage, until the clients have reconnected). */
  readonly liveConnections: number;
  resetCounters(): void;
  /**
   * Resolves once every command learner connections sent so far is in `commands`, including the
   * ones their scripts ran (a real server reports those through MONITOR, a little later).
   */
  drain(): Promise<void>;
  /**
   * Real server only (the mock always sees inside scripts): records what scripts run from now on,
   * through a MONITOR connection, until turned off. MONITOR sees every client's every command, so
   * it is on only where a check needs it.
   */
  recordScripts(on: boolean): Promise<void>;
  /** What to hand the learner's code: it arrives there as an ioredis client connected here. */
  endpoint(learner: LearnerProcess, options?: Record<string, unknown>): Promise<RedisEndpoint>;
  /** While on, learner connections are cut and new ones refused (the grader's client keeps working). */
  setOutage(on: boolean): void;
  /** Delays each reply to learner connections by up to `maxMs` (seeded), so concurrent writers interleave. */
  setJitter(maxMs: number, random?: () => number): void;
  /** Turns jitter off and sends every reply it is still delaying now (a check that held a reply until its moment came). */
  releaseDelayed(): void;
  backend: "ioredis-mock" | "redis-server";
  /** Empties this run's database (real server) or the whole mock, and stops the server. */
  close(): Promise<void>;
}

export interface TestRedisOptions {
  /** Mock only: each SCAN page after the first repeats the previous page's last key, as a real SCAN may during a rehash. */
  duplicateScanResults?: boolean;
  /** A mock of its own even when REDIS_URL is set: for a check that needs a server holding nothing but its own keys. */
  privateMock?: boolean;
}

type Reply = null | undefined | number | string | Buffer | Reply[] | Error | { [key: string]: Reply } | boolean;

class ReplyError extends Error {}

/** Commands that take elements out of a set, sorted set, hash or list (and may leave it empty). */
const REMOVES_ELEMENTS = new Set(["srem", "spop", "smove", "zrem", "zremrangebyscore", "zremrangebylex", "zremrangebyrank", "zpopmin", "zpopmax", "bzpopmin", "bzpopmax", "zmpop", "hdel", "hgetdel", "lpop", "rpop", "lrem", "ltrim", "lmove", "rpoplpush", "blpop", "brpop", "lmpop", "getdel"]);

/** Each command's arity from Redis's own COMMAND table: n means exactly n words with the name, -n at least n. */
const COMMAND_TABLE = createRequire(import.meta.url)("@ioredis/commands/built/commands.json") as Record<string, { arity: number }>;

/** Redis refuses a command with the wrong number of arguments before running it (ioredis-mock often runs it anyway: MGET with no key). */
function arityError(name: string, words: number): ReplyError | undefined {
  const arity = COMMAND_TABLE[name]?.arity;
  if (arity === undefined || (arity >= 0 ? words === arity : words >= -arity)) return undefined;
  return new ReplyError(`ERR wrong number of arguments for '${name}' command`);
}

function encodeReply(reply: Reply): Buffer {
  if (reply === null || reply === undefined) return Buffer.from("$-1\r\n");
  if (reply instanceof Error) {
    const text = reply.message.replace(/\r?\n/g, " ");
    return Buffer.from(`-${/^[A-Z]{2,}\b/.test(text) ? text : `ERR ${text}`}\r\n`);
  }
  if (typeof reply === "boolean") return Buffer.from(`:${reply ? 1 : 0}\r\n`);
  if (typeof reply === "number") return Number.isInteger(reply) ? Buffer.from(`:${reply}\r\n`) : encodeReply(String(reply));
  if (typeof reply === "string" || Buffer.isBuffer(reply)) {
    const bytes = Buffer.isBuffer(reply) ? reply : Buffer.from(reply, "latin1");
    return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n")]);
  }
  if (Array.isArray(reply)) return Buffer.concat([Buffer.from(`*${reply.length}\r\n`), ...reply.map(encodeReply)]);
  if (reply instanceof Map) return encodeReply([...(reply as Map<string, Reply>)].flat());
  return encodeReply(Object.entries(reply).flat());
}

/** Bytes cross the mock as latin1 strings, so binary values (serialized checkpoints) keep every byte. */
const toMock = (arg: Buffer) => arg.toString("latin1");

interface Connection {
  id: number;
  socket: Socket;
  queue: string[][] | undefined;
  /** A command of the open MULTI was refused when queued (wrong arity): EXEC then aborts, as on a real server. */
  queueFailed?: boolean;
  watched: Map<string, string> | undefined;
  /** The grader's own connection: not recorded, not counted. */
  trusted: boolean;
  /** Until its first other command, a connection's client handshake (CLIENT SETINFO, INFO ready check) is not the learner's. */
  handshaking: boolean;
  outstanding: number;
  /** Replies delayed by jitter still leave in the order their commands came (RESP has no reply ids). */
  replies: Promise<void>;
}

let mockDatabaseCounter = 0;
/** What ioredis sends on its own when it connects. */
const HANDSHAKE = new Set(["CLIENT", "INFO", "SELECT", "AUTH", "HELLO", "READONLY"]);

export async function createTestRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const url = options.privateMock ? undefined : process.env.REDIS_URL;
  const dir = mkdtempSync(join(servicesDir(), "r"));
  chmodSync(dir, 0o755);
  const socketPath = join(dir, "s");
  const commands: RecordedCommand[] = [];
  const lease = url ? await leaseDatabase(url) : undefined;
  let roundTrips = 0;
  let connectionCount = 0;
  let outage = false;
  let jitter: { maxMs: number; random: () => number } | undefined;
  /** Replies jitter is holding back, each with the way to send it at once. */
  const delayed = new Set<() => void>();
  const sockets = new Set<Socket>();
  const ownSockets = new Set<Socket>();

  // ioredis-mock shares data between instances with the same host and port: a fresh pair per TestRedis isolates checks.
  const mockKey = { host: `m${randomBytes(6).toString("hex")}`, port: 40_000 + (mockDatabaseCounter++ % 20_000) };
  const mock = url ? undefined : (new RedisMock(mockKey) as unknown as Record<string, (...args: unknown[]) => Promise<Reply>> & Redis);

  const record = (connection: Connection, argv: Buffer[]) => {
    const name = argv[0]!.toString("utf8").toUpperCase();
    const args = argv.slice(1).map((a) => a.toString("utf8"));
    commands.push({ name, args, roundTrip: roundTrips, connection: connection.id });
  };
  /** A command a script ran: on the mock from the script's own log, on a real server from MONITOR. */
  const recordInScript = (connectionId: number, name: string, args: string[]) => {
    commands.push({ name: name.toUpperCase(), args, roundTrip: roundTrips, connection: connectionId, inScript: true });
  };

  // ---- the mock backend: one command at a time, with Redis's semantics where the lessons need them ----
  const versions = new Map<string, number>();
  let epoch = 0;
  const scripts = new Map<string, string>();
  const scanWalks = new Map<number, string[]>();
  let serial: Promise<unknown> = Promise.resolve();

  const bump = (name: string, args: string[]) => {
    if (name === "flushall" || name === "flushdb") {
      epoch++;
      return;
    }
    let isWrite = false;
    try {
      isWrite = hasFlag(name, "write") || name === "eval" || name === "evalsha";
    } catch {
      return;
    }
    if (!isWrite) return;
    try {
      for (const index of getKeyIndexes(name, args)) versions.set(args[index]!, (versions.get(args[index]!) ?? 0) + 1);
    } catch {
      // no keys
    }
  };
  const versionOf = (key: string) => `${epoch}:${versions.get(key) ?? 0}`;

  /**
   * Redis deletes a set, sorted set, hash or list when its last element goes (so SCAN, EXISTS and DBSIZE no
   * longer see it); ioredis-mock keeps the empty key. After a command that removes elements, drop what it emptied.
   */
  const dropEmptied = async (name: string, args: string[]) => {
    if (!REMOVES_ELEMENTS.has(name)) return;
    let indexes: number[] = [];
    try {
      indexes = getKeyIndexes(name, args);
    } catch {
      return;
    }
    for (const key of new Set(indexes.map((i) => args[i]!))) {
      const type = (await mock!.type(key)) as unknown as string;
      const size = type === "zset" ? await mock!.zcard(key) : type === "set" ? await mock!.scard(key) : type === "hash" ? await mock!.hlen(key) : type === "list" ? await mock!.llen(key) : 1;
      if (size === 0) await mock!.del(key);
    }
  };

  /**
   * A script's commands never cross the wire, and ioredis-mock runs them without a hook: so the
   * script runs wrapped. The mock's redis.call and redis.pcall go through its global `call`,
   * which the wrapper replaces with one that logs each command's name and arguments; after the
   * script (even one that fails) the log is written under a random key that the harness reads
   * and deletes before the next command runs (the mock runs one command at a time).
   */
  const runScriptOnMock = async (m: NonNullable<typeof mock>, script: string, rest: string[], onCommand: (name: string, args: string[]) => void): Promise<Reply> => {
    const logKey = `${randomBytes(12).toString("hex")}`;
    const wrapped = `local __kit_raw, __kit_log = call, {}
call = function(returnError, ...)
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  __kit_log[#__kit_log + 1] = table.concat(parts, "\\31")
  return __kit_raw(returnError, ...)
end
local __kit_ok, __kit_result = pcall(function()
${script}
end)
__kit_raw(false, "SET", "${logKey}", table.concat(__kit_log, "\\30"))
if not __kit_ok then error(__kit_result, 0) end
return __kit_result`;
    try {
      return luaFalseToNil(await (m.eval as unknown as (...a: unknown[]) => Promise<Reply>)(wrapped, ...rest));
    } finally {
      const log = (await m.get(logKey)) as string | null;
      await m.del(logKey);
      for (const entry of log ? String(log).split("\x1e") : []) {
        const [command, ...args] = entry.split("\x1f");
        if (command) onCommand(command, args);
      }
    }
  };

  const runOnMock = async (name: string, args: string[], onScriptCommand: (name: string, args: string[]) => void = () => undefined): Promise<Reply> => {
    const m = mock!;
    switch (name) {
      case "eval": {
        const [script = "", ...rest] = args;
        scripts.set(createHash("sha1").update(script).digest("hex"), script);
        return runScriptOnMock(m, script, rest, onScriptCommand);
      }
      case "scan":
        return faithfulScan(m, args, options, scanWalks);
      case "script": {
        const sub = (args[0] ?? "").toLowerCase();
        if (sub === "load") {
          const sha = createHash("sha1").update(args[1] ?? "").digest("hex");
          scripts.set(sha, args[1] ?? "");
          return sha;
        }
        if (sub === "exists") return args.slice(1).map((sha) => (scripts.has(sha.toLowerCase()) ? 1 : 0));
        if (sub === "flush") {
          scripts.clear();
          return "OK";
        }
        throw new ReplyError(`ERR unknown subcommand '${sub}'`);
      }
      case "evalsha": {
        const script = scripts.get((args[0] ?? "").toLowerCase());
        if (script === undefined) throw new ReplyError("NOSCRIPT No matching script. Please use EVAL.");
        return runOnMock("eval", [script, ...args.slice(1)], onScriptCommand);
      }
      case "select":
        if (args[0] !== "0") throw new ReplyError("ERR this test server has only database 0");
        return "OK";
      case "client":
        return (args[0] ?? "").toLowerCase() === "getname" ? null : "OK";
      case "hello":
        throw new ReplyError("ERR unknown command 'hello'");
      default: {
        const method = m[name];
        if (typeof method !== "function" || !isRedisCommand(name)) throw new ReplyError(`ERR unknown command '${name}'`);
        return await method.apply(m, args);
      }
    }
  };

  const executeMock = async (connection: Connection, argv: Buffer[]): Promise<Reply> => {
    const name = argv[0]!.toString("utf8").toLowerCase();
    const args = argv.slice(1).map(toMock);
    const refused = arityError(name, argv.length);
    if (refused) {
      if (connection.queue) connection.queueFailed = true;
      return refused;
    }
    if (connection.queue && !["exec", "discard", "multi", "watch"].includes(name)) {
      connection.queue.push([name, ...args]);
      return "QUEUED";
    }
    switch (name) {
      case "multi":
        if (connection.queue) return new ReplyError("ERR MULTI calls can not be nested");
        connection.queue = [];
        connection.queueFailed = false;
        return "OK";
      case "watch":
        if (connection.queue) return new ReplyError("ERR WATCH inside MULTI is not allowed");
        connection.watched ??= new Map();
        for (const key of args) if (!connection.watched.has(key)) connection.watched.set(key, versionOf(key));
        return "OK";
      case "unwatch":
        connection.watched = undefined;
        return "OK";
      case "discard":
        if (!connection.queue) return new ReplyError("ERR DISCARD without MULTI");
        connection.queue = undefined;
        connection.watched = undefined;
        return "OK";
      case "exec": {
        if (!connection.queue) return new ReplyError("ERR EXEC without MULTI");
        const queued = connection.queue;
        const watched = connection.watched;
        connection.queue = undefined;
        connection.watched = undefined; // EXEC always clears WATCH, whatever its outcome (real Redis)
        if (connection.queueFailed) return new ReplyError("EXECABORT Transaction discarded because of previous errors.");
        if (watched && [...watched].some(([key, version]) => versionOf(key) !== version)) return null;
        const replies: Reply[] = [];
        for (const [queuedName, ...queuedArgs] of queued) {
          try {
            replies.push(await runOnMock(queuedName!, queuedArgs, (n, a) => recordInScript(connection.id, n, a)));
            bump(queuedName!, queuedArgs);
            await dropEmptied(queuedName!, queuedArgs);
          } catch (error) {
            replies.push(error as Error);
          }
        }
        return replies;
      }
      case "quit":
        setImmediate(() => connection.socket.end());
        return "OK";
      default: {
        const result = await runOnMock(name, args, (n, a) => recordInScript(connection.id, n, a));
        bump(name, args);
        await dropEmptied(name, args);
        return result;
      }
    }
  };

  /** Our proxy's upstream connections to a real server, by the address the server sees ("ip:port"). */
  const upstreamOf = new Map<string, number>();
  /**
   * On a real server, a script's commands are visible only to MONITOR: each line names the client
   * ("ip:port") or, for a command a script ran, "lua". Redis runs one command at a time, so the
   * "lua" lines that follow an EVAL, EVALSHA or FCALL line belong to that script (Redis 7.0
   * logs the script call first); they are recorded for the learner connection that sent it.
   */
  const watchScripts = async (trustedClient: Redis, target: URL) => {
    // A plain socket, not ioredis's monitor(): MONITOR's reply is a stream of status lines, and
    // ioredis took some of them for replies to its own handshake ("Command queue state error").
    const socket = createConnection({ host: target.hostname, port: Number(target.port || 6379) });
    socket.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const auth = authCommand(target);
    if (auth) socket.write(auth);
    socket.write("MONITOR\r\n");
    const SCRIPT_CALLS = new Set(["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]);
    let owner: number | undefined;
    const markers = new Map<string, () => void>();
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    const onLine = (line: string) => {
      if (line === "OK") return started();
      // 1796174686.608165 [3 127.0.0.1:55200] "set" "kitx" "1"   (or [3 lua] for a script's command; 3 is the database)
      const match = /^\d+\.\d+ \[(\d+) ([^\]]+)\] (.*)$/.exec(line);
      if (!match || Number(match[1]) !== lease!.db) return; // another check's database
      const source = match[2]!;
      const [name = "", ...args] = [...match[3]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => unescapeMonitorArg(m[1]!));
      if (source === "lua") {
        if (owner !== undefined) recordInScript(owner, name, args);
        return;
      }
      owner = SCRIPT_CALLS.has(name.toLowerCase()) ? upstreamOf.get(source) : undefined;
      if (name.toLowerCase() === "echo" && args[0] && markers.has(args[0])) markers.get(args[0])!();
    };
    const parser = new RedisParser({ returnReply: (reply: string) => onLine(String(reply)), returnError: () => undefined });
    socket.on("data", (chunk: Buffer) => parser.execute(chunk));
    await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    return {
      /** MONITOR delivers lines a little after the commands ran: a marker sent now comes after all of them. */
      drain: async () => {
        const marker = `drain-${randomBytes(8).toString("hex")}`;
        const seen = new Promise<void>((resolve) => markers.set(marker, resolve));
        await trustedClient.echo(marker);
        await Promise.race([seen, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        markers.delete(marker);
      },
      stop: () => socket.destroy(),
    };
  };

  const servers: Server[] = [];
  const accept = (socket: Socket, trusted: boolean) => {
    if (outage && !trusted) {
      socket.destroy();
      return;
    }
    const set = trusted ? ownSockets : sockets;
    set.add(socket);
    socket.on("close", () => set.delete(socket));
    socket.on("error", () => undefined);
    const connection: Connection = { id: trusted ? 0 : ++connectionCount, socket, queue: undefined, watched: undefined, outstanding: 0, trusted, handshaking: true, replies: Promise.resolve() };
    const inOrder = (deliver: () => void) => {
      if (!jitter) {
        connection.replies = connection.replies.then(deliver);
        return;
      }
      const due = Date.now() + Math.floor(jitter.random() * jitter.maxMs);
      const wait = () =>
        new Promise<void>((resolve) => {
          const send = () => {
            clearTimeout(timer);
            delayed.delete(send);
            resolve();
          };
          const timer = setTimeout(send, Math.max(0, due - Date.now()));
          delayed.add(send);
        });
      connection.replies = connection.replies.then(wait).then(deliver);
    };
    let upstream: Socket | undefined;
    if (url) {
      const target = new URL(url);
      upstream = createConnection({ host: target.hostname, port: Number(target.port || 6379) });
      const proxied = upstream;
      if (!connection.trusted) proxied.on("connect", () => upstreamOf.set(`${proxied.localAddress}:${proxied.localPort}`, connection.id));
      upstream.on("error", () => socket.destroy());
      socket.on("close", () => upstream!.destroy());
      // Count replies so that a round trip is "sent while nothing was outstanding".
      const replies = new RedisParser({ returnReply: () => void (connection.outstanding = Math.max(0, connection.outstanding - 1)), returnError: () => void (connection.outstanding = Math.max(0, connection.outstanding - 1)), returnBuffers: true });
      // The connection's first commands are ours (AUTH, SELECT of this run's database): their replies, one
      // status line each, are not the learner's to see.
      const preamble = [authCommand(target), encodeReply(["SELECT", String(lease!.db)])].filter((c): c is Buffer => c !== undefined);
      let ownReplies = preamble.length;
      let head = Buffer.alloc(0);
      upstream.on("data", (incoming: Buffer) => {
        let chunk = incoming;
        if (ownReplies > 0) {
          head = Buffer.concat([head, chunk]);
          while (ownReplies > 0) {
            const end = head.indexOf("\r\n");
            if (end < 0) return;
            if (head[0] === 0x2d /* "-" */) return void socket.destroy(); // refused: never run the learner's commands elsewhere
            head = head.subarray(end + 2);
            ownReplies--;
            connection.outstanding--;
          }
          chunk = head;
          head = Buffer.alloc(0);
          if (chunk.length === 0) return;
        }
        replies.execute(chunk);
        inOrder(() => void socket.write(chunk));
      });
      for (const command of preamble) {
        upstream.write(command);
        connection.outstanding++;
      }
    }
    let chunkCounted = false;
    const parser = new RedisParser({
      returnBuffers: true,
      returnReply(request: Buffer[] | Buffer) {
        const argv = Array.isArray(request) ? request : request.toString("utf8").trim().split(/\s+/).map((a) => Buffer.from(a));
        if (argv.length === 0) return;
        if (connection.handshaking && !HANDSHAKE.has(argv[0]!.toString("utf8").toUpperCase())) connection.handshaking = false;
        // The grader's own commands count too: while it loads fixtures, the check is not stuck.
        noteActivity();
        if (!connection.trusted && !connection.handshaking) {
          if (!chunkCounted && connection.outstanding === 0) roundTrips++;
          chunkCounted = true;
          record(connection, argv);
        }
        connection.outstanding++;
        if (upstream) return void upstream.write(encodeReply(confine(argv, lease!.db)));
        const run = serial.then(() => executeMock(connection, argv).catch((error: Error) => error));
        serial = run;
        void run.then((reply) => {
          const write = () => {
            connection.outstanding--;
            if (!socket.destroyed) socket.write(encodeReply(reply));
          };
          inOrder(write);
        });
      },
      returnError() {
        socket.destroy();
      },
    });
    socket.on("data", (chunk: Buffer) => {
      chunkCounted = false;
      parser.execute(chunk);
    });
  };
  const listen = async (path: string, trusted: boolean) => {
    const server = createServer((socket) => accept(socket, trusted));
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
  };
  await listen(socketPath, false);
  chmodSync(socketPath, 0o777); // the sandboxed learner runs as another user
  // The grader's own client: on the mock it goes through this server too (so bytes are stored the same way), on
  // a socket learner code cannot see; on a real server it connects directly.
  const trustedDir = mkdtempSync(join(tmpdir(), "redis-own-"));
  const trustedPath = join(trustedDir, "s");
  if (!url) await listen(trustedPath, true);
  const client: Redis = url ? new Redis(url, { db: lease!.db, maxRetriesPerRequest: 1 }) : new Redis({ path: trustedPath, maxRetriesPerRequest: 1 });
  await client.ping(); // fail fast on a bad REDIS_URL
  if (lease) await client.flushdb("ASYNC"); // what a crashed run left in its database
  let monitor: Awaited<ReturnType<typeof watchScripts>> | undefined;

  return {
    client,
    get commands() {
      return commands;
    },
    get roundTrips() {
      return roundTrips;
    },
    get connections() {
      return connectionCount;
    },
    get liveConnections() {
      return sockets.size;
    },
    resetCounters() {
      commands.length = 0;
      roundTrips = 0;
    },
    drain: async () => {
      if (monitor) await monitor.drain();
    },
    recordScripts: async (on) => {
      if (!url) return;
      if (on) monitor ??= await watchScripts(client, new URL(url));
      else {
        monitor?.stop();
        monitor = undefined;
      }
    },
    endpoint: (learner, endpointOptions = {}) => learner.redisEndpoint(socketPath, endpointOptions),
    setOutage(on) {
      outage = on;
      if (on) for (const socket of sockets) socket.destroy();
    },
    setJitter(maxMs, random = Math.random) {
      jitter = maxMs > 0 ? { maxMs, random } : undefined;
    },
    releaseDelayed() {
      jitter = undefined;
      for (const send of [...delayed]) send();
    },
    backend: url ? "redis-server" : "ioredis-mock",
    async close() {
      monitor?.stop();
      if (lease) await lease.release(client);
      else await client.flushall();
      client.disconnect();
      for (const socket of [...sockets, ...ownSockets]) socket.destroy();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      (mock as unknown as Redis | undefined)?.disconnect();
      rmSync(dir, { recursive: true, force: true });
      rmSync(trustedDir, { recursive: true, force: true });
    },
  };
}

/**
 * A learner connection's command as it goes to the real server, kept inside the run's database:
 * SELECT 0 means this database (as on the mock, which has only database 0), any other SELECT and
 * the commands that reach other databases fail, and FLUSHALL empties only this one.
 */
function confine(argv: Buffer[], db: number): Buffer[] {
  const name = argv[0]!.toString("latin1").toUpperCase();
  if (name === "SELECT") return [argv[0]!, Buffer.from(argv[1]?.toString("latin1") === "0" ? String(db) : "-1")];
  if (name === "FLUSHALL") return [Buffer.from("FLUSHDB"), ...argv.slice(1)];
  if (name === "SWAPDB") return [argv[0]!, Buffer.from("-1"), Buffer.from("-1")];
  if (name === "MOVE") return [argv[0]!, argv[1] ?? Buffer.alloc(0), Buffer.from("-1")];
  return argv;
}

const LEASE_MS = 60_000;
const LEASE_WAIT_MS = 300_000;
const leaseKey = (db: number) => `checkpoint-kit:test-db:${db}:lease`;
/** Set once the kit first takes an empty database: from then on, whatever is in it is the kit's to delete. */
const ownedKey = (db: number) => `checkpoint-kit:test-db:${db}:owned`;

/**
 * A database of REDIS_URL's server for one TestRedis, leased in the URL's own database (SET NX PX,
 * renewed while the run lives, so a crashed run's lease runs out). Only a database that was empty
 * when the kit first took it is ever used, so a developer's own data in another database is never
 * touched. The run empties it on its own client before it starts and in release() (FLUSHDB ASYNC:
 * the keys are gone at once, their memory is freed in the background).
 */
async function leaseDatabase(url: string): Promise<{ db: number; release(client: Redis): Promise<void> }> {
  const registry = new Redis(url, { maxRetriesPerRequest: 1 });
  const home = (registry.options.db ?? 0) as number;
  const token = randomBytes(12).toString("hex");
  let count = 16;
  try {
    const reply = (await registry.config("GET", "databases")) as string[];
    if (Number(reply[1]) > 0) count = Number(reply[1]);
  } catch {
    // CONFIG may be disabled (a managed server): Redis's default is 16
  }
  const foreign = new Set<number>([home]);
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const offset = Math.floor(Math.random() * count);
    for (let i = 0; i < count; i++) {
      const db = (offset + i) % count;
      if (foreign.has(db)) continue;
      if ((await registry.set(leaseKey(db), token, "PX", LEASE_MS, "NX")) !== "OK") continue;
      if (!(await registry.exists(ownedKey(db)))) {
        const probe = new Redis(url, { db, maxRetriesPerRequest: 1 });
        const empty = (await probe.dbsize()) === 0;
        probe.disconnect();
        if (!empty) {
          foreign.add(db);
          await registry.del(leaseKey(db));
          continue;
        }
        await registry.set(ownedKey(db), "1");
      }
      const renew = setInterval(() => {
        registry.eval(RENEW, 1, leaseKey(db), token, LEASE_MS).catch(() => undefined);
      }, LEASE_MS / 3);
      renew.unref();
      return {
        db,
        async release(client) {
          clearInterval(renew);
          await client.flushdb("ASYNC");
          await registry.eval(RELEASE, 1, leaseKey(db), token).catch(() => undefined);
          registry.disconnect();
        },
      };
    }
    if (foreign.size >= count) {
      registry.disconnect();
      throw new Error(`REDIS_URL's server has no database the tests may use: every one of its ${count} databases other than ${home} holds data the kit did not write. Point REDIS_URL at a server for tests, or start one with more databases (redis-server --databases 64).`);
    }
    if (Date.now() - started > LEASE_WAIT_MS) {
      registry.disconnect();
      throw new Error(`All ${count - foreign.size} databases REDIS_URL's server lends to tests were in use by other checks for ${LEASE_WAIT_MS / 60_000} minutes. Start redis-server with more databases (--databases 64) or grade fewer units at once.`);
    }
    noteActivity(); // waiting for a database is the grader's delay, not the learner's
    await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * 2 ** Math.min(attempt, 5))));
  }
}

/**
 * A client on a leased, emptied database of `url`'s server, for tests outside a grader that need a
 * database nobody else writes to (LangGraph's conformance suite lists every thread). close()
 * empties and frees it.
 */
export async function leasedRedisClient(url: string): Promise<{ client: Redis; close(): Promise<void> }> {
  const lease = await leaseDatabase(url);
  const client = new Redis(url, { db: lease.db, maxRetriesPerRequest: 1 });
  await client.flushdb(); // a crashed run may have left keys behind
  return {
    client,
    async close() {
      await lease.release(client);
      await client.quit();
    },
  };
}

const RENEW = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`;

/** The AUTH command a connection to REDIS_URL sends first, if the URL carries credentials. */
function authCommand(target: URL): Buffer | undefined {
  if (!target.password && !target.username) return undefined;
  const auth = target.username ? ["AUTH", target.username, target.password] : ["AUTH", target.password];
  return encodeReply(auth.map((a) => Buffer.from(decodeURIComponent(a))));
}

/** MONITOR quotes each argument: backslash escapes for quotes, backslashes, control characters and \xHH bytes. */
function unescapeMonitorArg(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, escape: string) =>
    escape.length === 3 ? String.fromCharCode(parseInt(escape.slice(1), 16)) : ({ n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b" } as Record<string, string>)[escape] ?? escape,
  );
}

const luaFalseToNil = (reply: Reply): Reply => (reply === false ? null : Array.isArray(reply) ? reply.map(luaFalseToNil) : reply);

const WALK_SPAN = 10_000_000;
let nextWalk = 1;

/**
 * SCAN on the mock with Redis's semantics: MATCH with Redis's glob rules, COUNT
 * as a page size over a stable key order (so pages may be empty before the walk
 * ends), TYPE, and cursor "0" only when the walk is done.
 */
async function faithfulScan(raw: Record<string, (...args: unknown[]) => Promise<Reply>>, args: string[], options: TestRedisOptions, walks: Map<number, string[]>): Promise<Reply> {
  const [cursorArg, ...rest] = args;
  let pattern: string | undefined;
  let type: string | undefined;
  let count = 10;
  for (let i = 0; i < rest.length; i += 2) {
    const option = String(rest[i]).toUpperCase();
    const value = rest[i + 1];
    if (value === undefined) throw new ReplyError("ERR syntax error");
    if (option === "MATCH") pattern = value;
    else if (option === "COUNT") count = Number(value);
    else if (option === "TYPE") type = value.toLowerCase();
    else throw new ReplyError("ERR syntax error");
  }
  if (!Number.isInteger(count) || count < 1) throw new ReplyError("ERR value is out of range, must be positive");
  // Redis parses the cursor as an unsigned integer: "" or "abc" is refused, not read as 0.
  const cursor = /^\d+$/.test(cursorArg ?? "") ? Number(cursorArg) : Number.NaN;
  if (!Number.isSafeInteger(cursor)) throw new ReplyError("ERR invalid cursor");
  // A cursor is walk * WALK_SPAN + offset into that walk's key snapshot, so interleaved walks never disturb each other.
  let walk = Math.floor(cursor / WALK_SPAN);
  const start = cursor % WALK_SPAN;
  let all = walks.get(walk);
  if (cursor === 0 || all === undefined) {
    walk = nextWalk++;
    all = ((await raw.keys!("*")) as string[]).sort();
    walks.set(walk, all);
    if (walks.size > 64) walks.delete(walks.keys().next().value!);
  }
  const end = Math.min(start + count, all.length);
  const page = all.slice(start, end);
  if (options.duplicateScanResults && start > 0 && start <= all.length) page.unshift(all[start - 1]!);
  let matched = pattern === undefined ? page : page.filter((key) => redisGlobMatch(pattern!, key));
  if (type) {
    const kinds = await Promise.all(matched.map((key) => raw.type!(key)));
    matched = matched.filter((_, i) => kinds[i] === type);
  }
  if (end >= all.length) {
    walks.delete(walk);
    return ["0", matched];
  }
  return [String(walk * WALK_SPAN + end), matched];
}

/**
 * Redis's glob matcher (stringmatchlen in util.c): `*`, `?`, `[...]` with `^`
 * negation, ranges (either order) and `\` escapes inside and outside classes.
 */
export function redisGlobMatch(pattern: string, subject: string): boolean {
  return matchFrom(pattern, 0, subject, 0);
}

function matchFrom(p: string, pi: number, s: string, si: number): boolean {
  while (pi < p.length && si < s.length) {
    const c = p[pi]!;
    if (c === "*") {
      while (p[pi + 1] === "*") pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k <= s.length; k++) if (matchFrom(p, pi + 1, s, k)) return true;
      return false;
    }
    if (c === "?") {
      pi++;
      si++;
      continue;
    }
    if (c === "[") {
      pi++;
      const negate = p[pi] === "^";
      if (negate) pi++;
      let matched = false;
      for (;;) {
        if (pi >= p.length) {
          pi--; // unterminated class: Redis treats the end of the pattern as the closing bracket
          break;
        }
        if (p[pi] === "\\" && pi + 1 < p.length) {
          pi++;
          if (p[pi] === s[si]) matched = true;
        } else if (p[pi] === "]") {
          break;
        } else if (pi + 2 < p.length && p[pi + 1] === "-") {
          let low = p[pi]!;
          let high = p[pi + 2]!;
          if (low > high) [low, high] = [high, low];
          if (s[si]! >= low && s[si]! <= high) matched = true;
          pi += 2;
        } else if (p[pi] === s[si]) {
          matched = true;
        }
        pi++;
      }
      if (negate) matched = !matched;
      if (!matched) return false;
      pi++;
      si++;
      continue;
    }
    if (c === "\\" && pi + 1 < p.length) pi++;
    if (p[pi] !== s[si]) return false;
    pi++;
    si++;
  }
  if (si < s.length) return false;
  while (p[pi] === "*") pi++;
  return pi === p.length;
}
