/**
 * Starts a learner process (kit/sandbox/host.ts, compiled) and talks to it.
 *
 * On Linux with bubblewrap the process runs in an OS sandbox: user nobody when
 * grading runs as root, its own user, PID, network, IPC and UTS namespaces (so
 * only its own loopback, and it can see or signal no process outside), a
 * read-only view of the kit's dependencies and the compiled code only (no
 * solutions, graders, calibration answers or other units), a private writable
 * scratch folder, a clean environment, and the whole tree dies with it.
 * Without bubblewrap the same process runs unconfined (see sandboxMode()).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { Peer, type Message } from "./rpc.ts";
import { KIT_ROOT, type Build } from "./compile.ts";

export type SandboxMode = "bwrap" | "none";

const NOBODY = 65534;
const PAGE_SIZE = 4096;
const OUTPUT_KEEP = 64 * 1024;

let detected: { mode: SandboxMode; asNobody: boolean; reason?: string } | undefined;

/** Which OS sandbox this machine offers (checked once per process by starting one). */
export function detectSandbox(): { mode: SandboxMode; asNobody: boolean; reason?: string } {
  if (detected) return detected;
  if (process.platform !== "linux") return (detected = { mode: "none", asNobody: false, reason: `no OS sandbox on ${process.platform}` });
  const probe = (asNobody: boolean) =>
    // The probe binds what a real learner process binds from the kit, so a kit nobody may read is noticed here.
    spawnSync("bwrap", [...baseArgs(asNobody), "--ro-bind", realpathSync(join(KIT_ROOT, "node_modules")), "/probe-modules", "--ro-bind", realpathSync(process.execPath), "/probe-node", "/probe-node", "-e", "0"], {
      stdio: "ignore",
      timeout: 20_000,
      ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
    });
  const root = process.getuid?.() === 0;
  if (root && probe(true).status === 0) return (detected = { mode: "bwrap", asNobody: true });
  const plain = probe(false);
  if (plain.status === 0) return (detected = { mode: "bwrap", asNobody: false });
  const why = plain.error ? "bubblewrap (bwrap) is not installed" : "bubblewrap could not create its namespaces here";
  return (detected = { mode: "none", asNobody: false, reason: why });
}

function baseArgs(asNobody: boolean): string[] {
  const system = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/ssl"];
  return [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    ...(asNobody || process.getuid?.() !== 0 ? [] : ["--uid", String(NOBODY), "--gid", String(NOBODY)]),
    ...system.flatMap((path) => ["--ro-bind-try", path, path]),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
  ];
}

export interface LearnerOptions {
  build: Build;
  /**
   * Read-write folder shared by the unit's learner processes (its SQLite files and the like). Under
   * bubblewrap it appears at DATA_IN_SANDBOX, and every string crossing the channel is rewritten
   * between the two paths (see sandboxPaths), so no path the learner sees says "temporary" or "grading".
   */
  scratch: string;
  sandbox: SandboxMode;
  /** Heap limit of the learner's Node process. */
  memoryMb?: number;
  /** Folders the process may read (e.g. the folder holding a Redis socket); under bubblewrap at /run/app, /run/app1, ... */
  readable?: string[];
  /** Called with everything the learner process prints. */
  onOutput?: (text: string) => void;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class LearnerProcess {
  readonly peer: Peer;
  readonly exited: Promise<Exit>;
  readonly startedMs: number;
  private output = "";
  private exit: Exit | undefined;
  /** Set when the trusted side killed it on purpose (a crash test), so the exit is not reported as the learner's. */
  killedOnPurpose = false;

  /** The processes running now (for flushLearnerCoverage). */
  static readonly live = new Set<LearnerProcess>();

  private constructor(
    readonly child: ChildProcess,
    private readonly options: LearnerOptions,
  ) {
    this.startedMs = Date.now();
    LearnerProcess.live.add(this);
    const paths = options.sandbox === "none" ? [] : sandboxPaths(options);
    const inner = (text: string) => translate(text, paths, 0);
    const outer = (text: string) => translate(text, paths, 1);
    this.peer = new Peer({
      send: (message) => {
        // After a kill nothing more may reach it: under bwrap the inner node outlives the signalled bwrap for a moment.
        if (!child.connected || this.killedOnPurpose || this.exit) throw new Error("the learner process is not running");
        child.send(message);
      },
      encodeSpecial: (value) => (value instanceof RedisEndpoint ? ["redis", { path: inner(value.path), options: value.options }] : undefined),
      outgoingString: inner,
      incomingString: outer,
    });
    const keep = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      this.output = (this.output + text).slice(-OUTPUT_KEEP);
      options.onOutput?.(text);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        LearnerProcess.live.delete(this);
        this.peer.close(new LearnerExitError(this.describeExit()));
        resolve(this.exit);
      });
    });
    child.on("message", (message) => {
      if ((message as { op?: string }).op === "pong") {
        this.pings.get((message as { id: number }).id)?.();
        this.pings.delete((message as { id: number }).id);
        return;
      }
      // Mutation testing only: coverage of the instrumented reference (see kit/mutation/setup.ts and host.ts).
      if (mutationHooks.onCoverage && (message as { op?: string }).op === "stryker-coverage") {
        const { atLoad, reached } = message as { atLoad: boolean; reached: Record<string, number> };
        return mutationHooks.onCoverage(reached, atLoad || sharedSetups > 0);
      }
      void this.peer.receive(message as Message);
    });
  }

  static async start(options: LearnerOptions): Promise<LearnerProcess> {
    const { command, args, spawnOptions } = learnerCommand(options);
    const child = spawn(command, args, { ...spawnOptions, stdio: ["ignore", "pipe", "pipe", "ipc"], serialization: "advanced" });
    let markReady!: () => void;
    let fail!: (error: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      fail = reject;
    });
    const learner = new LearnerProcess(child, options);
    const onFirst = (message: Message) => {
      if (message.op === "reply" && message.id === 0) markReady();
    };
    child.once("message", onFirst);
    child.once("error", (error) => fail(new Error(`could not start the learner process: ${error.message}`)));
    // Later errors (a send to a process that just died: EPIPE) surface as the exit, not as an unhandled event.
    child.on("error", () => undefined);
    void learner.exited.then(() => fail(new LearnerExitError(`${learner.describeExit()} while starting`)));
    await ready;
    return learner;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** What the process printed (the last 64 KB). */
  get printed(): string {
    return this.output;
  }

  describeExit(): string {
    if (!this.exit) return "the learner process is running";
    const tail = this.output.trim().split("\n").slice(-8).join("\n");
    const how = this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
    return `the process running your code ${how}${tail ? `; its last output:\n${tail}` : ""}`;
  }

  /** Imports a compiled module (the learner's unit, or a fixture) and returns its exports as handles. */
  import<T = Record<string, unknown>>(file: string): Promise<T> {
    return this.peer.custom("import", file) as Promise<T>;
  }

  private readonly pings = new Map<number, () => void>();
  private nextPing = 1;

  /** Resolves when the process answers a liveness ping (its event loop runs); never rejects. */
  ping(): Promise<void> {
    const id = this.nextPing++;
    return new Promise<void>((resolve) => {
      this.pings.set(id, resolve);
      try {
        if (this.child.connected && !this.killedOnPurpose && !this.exit) this.child.send({ op: "ping", id });
      } catch {
        // gone: never answers
      }
    });
  }

  /** True when the process answers within `ms`: its event loop is not blocked. */
  async responsive(ms = 1_000): Promise<boolean> {
    if (!this.running) return false;
    const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
    return Promise.race([this.ping().then(() => true), timer]);
  }

  /** A Redis connection the learner's code receives as an ioredis client, served by `socketPath`. */
  async redisEndpoint(socketPath: string, options: Record<string, unknown> = {}): Promise<RedisEndpoint> {
    await this.peer.custom("prepare-redis");
    return new RedisEndpoint(socketPath, options);
  }

  /** Resident memory of the process and everything it started (Linux; 0 elsewhere). */
  residentBytes(): number {
    return treeStats(this.child.pid!).residentBytes;
  }

  /** CPU seconds used so far by the process and everything it started. */
  cpuSeconds(): number {
    return treeStats(this.child.pid!).cpuSeconds;
  }

  /** Kills the process and, at the same instant, everything it started (a crash is a crash of the whole tree). */
  kill(signal: NodeJS.Signals = "SIGKILL", onPurpose = true): void {
    if (onPurpose) this.killedOnPurpose = true;
    const pids = this.running ? treeStats(this.child.pid!).pids : [];
    for (const pid of [this.child.pid!, ...pids]) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.kill("SIGKILL");
      await this.exited;
    }
  }
}

/** A Redis endpoint crossing to the learner process: there it becomes `new Redis({ path })`. */
export class RedisEndpoint {
  constructor(
    readonly path: string,
    readonly options: Record<string, unknown>,
  ) {}
}

export class LearnerExitError extends Error {
  override name = "LearnerExitError";
}

/**
 * Where the data folder appears inside the sandbox: where a service keeps its data. A path under
 * the host's temporary folder (what the trusted side creates) would tell learner code that it runs
 * under a test; the rewrite is at the channel, so the grader's code keeps using host paths.
 */
export const DATA_IN_SANDBOX = "/var/lib/app";

/** [host path, path inside the sandbox] for the data folder and each readable folder. */
function sandboxPaths(options: Pick<LearnerOptions, "scratch" | "readable">): Array<[string, string]> {
  return [[options.scratch, DATA_IN_SANDBOX], ...(options.readable ?? []).map((path, index): [string, string] => [path, `/run/app${index === 0 ? "" : index}`])];
}

/** Rewrites a string that starts with one of the folders, from side `from` (0 host, 1 sandbox) to the other. */
function translate(text: string, paths: Array<[string, string]>, from: 0 | 1): string {
  for (const pair of paths) {
    const prefix = pair[from];
    if (text === prefix || (text.startsWith(prefix) && text[prefix.length] === "/")) return pair[1 - from] + text.slice(prefix.length);
  }
  return text;
}

function learnerEnv(scratch: string, sandboxed: boolean): NodeJS.ProcessEnv {
  // Nothing that names the kit, the grader, a check or a test runner.
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: scratch,
    TMPDIR: sandboxed ? "/tmp" : scratch,
    LANG: "C.UTF-8",
    NODE_ENV: "production",
    // The one exception, for mutation testing only: Stryker's code switches to the mutant this names.
    // It is set (by kit/mutation/setup.ts) only while Stryker grades its instrumented copy of a reference.
    ...(process.env.__STRYKER_ACTIVE_MUTANT__ ? { __STRYKER_ACTIVE_MUTANT__: process.env.__STRYKER_ACTIVE_MUTANT__ } : {}),
  };
}

/**
 * Mutation testing only: kit/mutation/setup.ts sets onCoverage while Stryker measures
 * coverage, to credit the mutants a learner process reached to the running check.
 * Unset otherwise, and then such a message is an ordinary (unknown) message.
 */
export const mutationHooks: { onCoverage?: (reached: Record<string, number>, atLoad: boolean) => void } = {};

let sharedSetups = 0;

/**
 * Runs `build`, a call into a learner process that sets up something later checks
 * share (a server the independent checks all talk to). Mutation testing only: what
 * the learner's code reached meanwhile is credited like load-time coverage, to every
 * check, because every check that uses the shared thing depends on how it was built;
 * credited to the one check that happened to build it, a mutant in the server's
 * options would be tried against that check alone. Otherwise it just runs `build`.
 */
export async function sharedSetup<T>(build: () => Promise<T>): Promise<T> {
  sharedSetups += 1;
  try {
    return await build();
  } finally {
    sharedSetups -= 1;
  }
}

/**
 * Mutation testing only: asks every running learner process for the coverage it has not
 * sent yet (its answer to a ping carries it), so that what a check caused without a message
 * on the channel (HTTP requests its server answered, timers) is credited to that check and
 * not to whichever check next exchanges a message with the process, or to none.
 */
export async function flushLearnerCoverage(ms = 2_000): Promise<void> {
  await Promise.all([...LearnerProcess.live].map((learner) => learner.responsive(ms)));
}

function learnerCommand(options: LearnerOptions): { command: string; args: string[]; spawnOptions: Parameters<typeof spawn>[2] } {
  const node = realpathSync(process.execPath);
  const nodeFlags = [`--max-old-space-size=${options.memoryMb ?? 512}`, "--enable-source-maps", "--disable-warning=ExperimentalWarning"];
  if (options.sandbox === "none") {
    return {
      command: node,
      args: [...nodeFlags, join(options.build.dir, "main.mjs")],
      spawnOptions: { cwd: options.scratch, env: learnerEnv(options.scratch, false) },
    };
  }
  const sandbox = detectSandbox();
  if (sandbox.mode !== "bwrap") throw new Error(`an OS sandbox was required but ${sandbox.reason}`);
  const app = "/app";
  const dependencies = realpathSync(join(KIT_ROOT, "node_modules"));
  const nodeDir = dirname(node);
  const args = [
    ...baseArgs(sandbox.asNobody),
    ...(nodeDir.startsWith("/usr/") || nodeDir === "/bin" ? [] : ["--ro-bind", dirname(nodeDir), dirname(nodeDir)]),
    "--ro-bind",
    dependencies,
    `${app}/node_modules`,
    "--ro-bind",
    options.build.dir,
    `${app}/lib`,
    ...sandboxPaths(options).flatMap(([host, inside], index) => [index === 0 ? "--bind" : "--ro-bind", host, inside]),
    "--chdir",
    DATA_IN_SANDBOX,
    "--hostname",
    "app",
    node,
    ...nodeFlags,
    `${app}/lib/main.mjs`,
  ];
  if (sandbox.asNobody) chmodSync(options.scratch, 0o777);
  return {
    command: "bwrap",
    args,
    spawnOptions: { cwd: "/", env: learnerEnv(DATA_IN_SANDBOX, true), ...(sandbox.asNobody ? { uid: NOBODY, gid: NOBODY } : {}) },
  };
}

/** Where a compiled file appears inside the learner process. */
export function pathInLearner(build: Build, file: string, sandbox: SandboxMode): string {
  return sandbox === "none" ? file : file.replace(build.dir, "/app/lib");
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** A process and all its descendants, from /proc: their pids, resident memory and CPU time (empty where there is no /proc). */
export function treeStats(rootPid: number): { pids: number[]; residentBytes: number; cpuSeconds: number } {
  const stats = { pids: [] as number[], residentBytes: 0, cpuSeconds: 0 };
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return stats;
  }
  const parent = new Map<number, number>();
  const usage = new Map<number, { rss: number; cpu: number }>();
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(pid), Number(fields[1]));
      usage.set(Number(pid), { rss: Number(fields[21]) * PAGE_SIZE, cpu: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS });
    } catch {
      // ended while we looked
    }
  }
  for (const [pid, use] of usage) {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; p = parent.get(p), hops++) {
      if (p === rootPid) {
        stats.pids.push(pid);
        stats.residentBytes += use.rss;
        stats.cpuSeconds += use.cpu;
        break;
      }
    }
  }
  return stats;
}
