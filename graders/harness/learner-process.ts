/**
 * How a harness starts a child process that runs learner code (a crash-test
 * child, a server): plain `node` with TypeScript hooks (tsx would start esbuild,
 * a subprocess the sandbox forbids) and the same confinement as the grader,
 * which a child process does not inherit on its own.
 */
import { fork, type ChildProcess } from "node:child_process";
import { KIT_ROOT } from "./implementation.ts";

const cachedTypescriptHooks = new URL("./typescript-hooks-cached.mjs", import.meta.url).href;

/** The Node permission flags the engine confines learner code with (empty when grading trusted code). */
export function sandboxFlags(): string[] {
  const raw = process.env.CHECKPOINT_KIT_SANDBOX_FLAGS;
  if (!raw) return [];
  const flags: unknown = JSON.parse(raw);
  if (!Array.isArray(flags) || !flags.every((flag) => typeof flag === "string")) {
    throw new Error("CHECKPOINT_KIT_SANDBOX_FLAGS must be a JSON array of Node flags.");
  }
  if (flags.length === 0) return [];
  // The TypeScript hooks run on a worker thread of their own.
  return flags.includes("--allow-worker") ? flags : [...flags, "--allow-worker"];
}

/** execArgv for a child running learner code: TypeScript hooks, a heap limit, the sandbox. */
export function learnerExecArgv(memoryMb = 256): string[] {
  return ["--import", cachedTypescriptHooks, `--max-old-space-size=${memoryMb}`, ...sandboxFlags()];
}

const STDERR_KEEP = 4096;

/**
 * Forks `entry` as a child running learner code, with an IPC channel and the end
 * of its stderr kept for failure messages (stdout is ignored: results travel over IPC).
 */
export function forkLearnerProcess(entry: string, options: { env: NodeJS.ProcessEnv; memoryMb?: number }): { child: ChildProcess; stderr: () => string } {
  const child = fork(entry, [], { cwd: KIT_ROOT, env: options.env, execArgv: learnerExecArgv(options.memoryMb), stdio: ["ignore", "ignore", "pipe", "ipc"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  return { child, stderr: () => stderr };
}
