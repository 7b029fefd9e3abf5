/**
 * Lets the trusted side reach a TCP port that learner code opened inside its
 * sandbox. A sandboxed learner process has its own network namespace (only its
 * own loopback), so `127.0.0.1:<port>` there is not `127.0.0.1:<port>` here.
 *
 *   const bridge = await forwardToLearner(learner, port);  // learner listens on 127.0.0.1:port inside
 *   await fetch(`${bridge.url}/path`);                      // http://127.0.0.1:<host port>
 *
 * How: we listen on 127.0.0.1:0 here (the host's namespace) and start a tiny
 * forwarder with `nsenter --target <pid> --net node -e ...`: it lives in the
 * learner's network namespace but receives our listening socket as an
 * inherited fd 3, so it accepts host connections and connects each one to
 * 127.0.0.1:<port> over the learner's loopback. The forwarder is our code,
 * not the learner's; it dies when the learner process exits (it polls the pid
 * and we kill it), and when we go away (its stdin closes).
 *
 * When the learner process is not sandboxed (CHECKPOINT_KIT_SANDBOX=none),
 * it shares our network namespace and we connect to its port directly.
 */
import { spawn } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import type { LearnerProcess } from "./learner.ts";

export interface Forward {
  /** `http://127.0.0.1:<port>` as seen from the trusted side. */
  url: string;
  port: number;
  /** Stops forwarding (idempotent); done on its own when the learner process exits. */
  close(): void;
}

/** Runs inside the learner's network namespace. Arguments: learner port, pid to outlive not. */
const FORWARDER = `
import net from "node:net";
const [port, watched] = process.argv.slice(-2).map(Number);
const server = net.createServer((client) => {
  const upstream = net.connect(port, "127.0.0.1");
  const drop = () => { client.destroy(); upstream.destroy(); };
  client.on("error", drop).on("close", drop);
  upstream.on("error", drop).on("close", drop);
  client.pipe(upstream).pipe(client);
});
server.listen({ fd: 3 }, () => process.stdout.write("ready\\n"));
process.stdin.on("end", () => process.exit(0)).resume();
setInterval(() => { try { process.kill(watched, 0); } catch { process.exit(0); } }, 100);
`;

/** A process inside the learner's sandbox: any descendant of bwrap (bwrap itself stays in our namespaces). */
function sandboxedPid(rootPid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${rootPid}/task/${rootPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    return children.length > 0 ? Number(children[0]) : undefined;
  } catch {
    return undefined;
  }
}

function netNamespace(pid: number | "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

export async function forwardToLearner(learner: LearnerProcess, port: number): Promise<Forward> {
  const rootPid = learner.child.pid!;
  const inner = sandboxedPid(rootPid);
  const direct = netNamespace(rootPid) === netNamespace("self") && (inner === undefined || netNamespace(inner) === netNamespace("self"));
  if (direct) return { url: `http://127.0.0.1:${port}`, port, close() {} };
  if (inner === undefined) throw new Error("could not find the sandboxed learner process to forward a port into");

  const listener = createServer();
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(0, "127.0.0.1", () => resolve());
  });
  const hostPort = (listener.address() as AddressInfo).port;
  const forwarder = spawn("nsenter", ["--target", String(inner), "--net", process.execPath, "--input-type=module", "-e", FORWARDER, String(port), String(rootPid)], {
    // fd 3 of the forwarder is a duplicate of our listening socket's fd.
    stdio: ["pipe", "pipe", "pipe", (listener as unknown as { _handle: { fd: number } })._handle.fd],
  });
  // The forwarder holds its own copy of the socket now: we must not accept on ours.
  listener.close();
  let stderr = "";
  forwarder.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    forwarder.stdout!.once("data", () => resolve());
    forwarder.once("error", (error) => reject(new Error(`could not start the port forwarder: ${error.message}`)));
    forwarder.once("exit", (code, signal) => reject(new Error(`the port forwarder exited (${signal ?? code}) before it was ready: ${stderr.trim()}`)));
  });
  const close = () => {
    if (forwarder.exitCode === null && forwarder.signalCode === null) forwarder.kill("SIGKILL");
  };
  void learner.exited.then(close);
  // Neither the forwarder nor its pipes keep the trusted process alive.
  forwarder.unref();
  for (const stream of [forwarder.stdin, forwarder.stdout, forwarder.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
  return { url: `http://127.0.0.1:${hostPort}`, port: hostPort, close };
}
