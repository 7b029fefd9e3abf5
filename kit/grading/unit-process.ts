/**
 * Grades one unit in a process of its own (spawned by engine.ts). Runs the unit's
 * grader with Vitest; the checks start learner processes for the code under test
 * (kit/sandbox/), so no learner code runs in this process or its worker. Sends the signed
 * results to the engine on fd 3. The engine owns the time limit:
 * it can kill this whole process group, which a per-test timeout cannot do.
 *
 * It starts on plain JavaScript, bundled by the engine (compiledUnitProcess), and in the kit's
 * root as its working folder: the bundle lives in a cache folder, so it cannot find the root from
 * its own path.
 *
 * argv: <grader file, relative to the kit root> <worker memory limit in MB>
 * stdin: the signing key (hex), then EOF.
 */
import { readFileSync, writeSync } from "node:fs";
import { createVitest } from "vitest/node";
import type { Reporter, TestModule, SerializedError } from "vitest/node";
import { RESULT_FD, signLine, type RawCheck, type UnitMessage } from "./channel.ts";

const OUTPUT_CAP = 500;
type UserConsoleLog = Parameters<NonNullable<Reporter["onUserConsoleLog"]>>[0];

const KIT_ROOT = process.cwd();
const key = Buffer.from(readFileSync(0, "utf8").trim(), "hex");
const [graderFile, memoryMb = "768"] = process.argv.slice(2);
if (!graderFile || key.length < 16) {
  process.stderr.write("unit-process: expected a grader path argument and a key on stdin\n");
  process.exit(2);
}

function send(message: UnitMessage): void {
  writeSync(RESULT_FD, signLine(key, message));
}

function describeError(error: SerializedError | { message?: string; name?: string }): string {
  const name = error.name && error.name !== "Error" && error.name !== "AssertionError" ? `${error.name}: ` : "";
  return `${name}${error.message ?? String(error)}`;
}

const outputByTest = new Map<string, string>();

const reporter: Reporter = {
  onUserConsoleLog(log: UserConsoleLog) {
    if (!log.taskId) return;
    const previous = outputByTest.get(log.taskId) ?? "";
    if (previous.length <= OUTPUT_CAP) outputByTest.set(log.taskId, previous + log.content);
  },
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>) {
    const checks: RawCheck[] = [];
    const moduleErrors = unhandledErrors.map(describeError);
    for (const module of modules) {
      moduleErrors.push(...module.errors().map(describeError));
      for (const test of module.children.allTests()) {
        const result = test.result();
        // The learner's own output (its processes' stdout and stderr), then anything the check itself printed.
        const output = `${test.meta().learnerOutput ?? ""}${outputByTest.get(test.id) ?? ""}`;
        checks.push({
          id: test.id,
          title: test.name,
          meta: test.meta().check as Record<string, unknown> | undefined,
          state: result.state,
          errors: (result.errors ?? []).map(describeError),
          output: output.length > OUTPUT_CAP ? `${output.slice(0, OUTPUT_CAP)}… (output capped at ${OUTPUT_CAP} characters)` : output,
          durationMs: test.diagnostic()?.duration ?? 0,
          ...(test.meta().note && { note: test.meta().note }),
        });
      }
    }
    send({ kind: "done", checks, moduleErrors });
  },
};

const vitest = await createVitest(
  "test",
  {
    config: `${KIT_ROOT}/graders/vitest.config.ts`,
    root: KIT_ROOT,
    watch: false,
    reporters: [reporter],
    maxWorkers: 1,
    execArgv: [`--max-old-space-size=${memoryMb}`],
  },
  { logLevel: "silent" },
);
try {
  await vitest.start([graderFile]);
} finally {
  await vitest.close();
}
process.exit(0);
