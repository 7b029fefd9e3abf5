/**
 * runConformance(factory): LangGraph's own checkpointer conformance suite
 * (@langchain/langgraph-checkpoint-validation) run against a kit saver through
 * the bridge, as a plain async function that returns counts, so a grader can
 * report "N of M LangGraph conformance tests" from inside one of its checks.
 *
 * The suite is written for Vitest with `globals: true`: specTest() calls the
 * global describe/it/beforeAll... Here those globals are lent, for that
 * synchronous registration, to a small collector (and `expect` for the run:
 * one runConformance at a time per process); the
 * collected tests then run in order with Vitest's semantics (hooks per suite,
 * beforeEach/afterEach around each test, a failing beforeAll fails its tests).
 * Assertions use Vitest's `expect`, except `expect.soft`, which here fails at
 * once: a soft failure would otherwise be charged to the caller's own test.
 * (The kit's own tests run the suite with `validate()` in Vitest proper:
 * test/langgraph-conformance.test.ts; a test there checks both agree.)
 */
import { specTest } from "@langchain/langgraph-checkpoint-validation";
import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint";
import { expect as vitestExpect } from "vitest";
import { z } from "zod";
import type { CheckpointSaver } from "#runtime";
import { toLangGraphSaver } from "./bridge.ts";

export interface ConformanceFailure {
  /** Suite path and test title, as Vitest would print them. */
  name: string;
  message: string;
}

export interface ConformanceResult {
  passed: number;
  failed: number;
  /** Tests the suite itself skips for this saver's name (none for a name that is not one of LangGraph's savers). */
  skipped: number;
  total: number;
  failures: ConformanceFailure[];
}

const optionsSchema = z.object({
  /** Shown in test names; the suite skips some tests for LangGraph's own saver names, so avoid those. */
  name: z.string().min(1).default("kit saver"),
  /** Only these parts of the suite (all when absent): getTuple, list, put, putWrites, deleteThread. */
  parts: z.array(z.enum(["getTuple", "list", "put", "putWrites", "deleteThread"])).optional(),
  /** Per test and per hook. */
  timeoutMs: z.number().int().positive().default(10_000),
});

export type ConformanceOptions<S extends CheckpointSaver> = z.input<typeof optionsSchema> & {
  /** Tests not to run, by their full name ("suite > ... > test"): neither run nor counted in the total. */
  exclude?: (name: string) => boolean;
  /** Called with each saver the factory made, once the suite is done with it (close clients, remove files). */
  destroy?: (saver: S) => void | Promise<void>;
};

/**
 * Runs the suite: `factory` is called once per group of tests (the suite wants
 * a fresh, empty saver each time: its list() tests count every checkpoint the
 * saver holds, across threads).
 */
export async function runConformance<S extends CheckpointSaver>(factory: () => S | Promise<S>, options: ConformanceOptions<S> = {}): Promise<ConformanceResult> {
  const { name, parts, timeoutMs } = optionsSchema.parse({ name: options.name, parts: options.parts, timeoutMs: options.timeoutMs });
  const made = new Map<BaseCheckpointSaver, S>();
  const { root, release } = collect(() =>
    specTest(
      {
        checkpointerName: name,
        async createCheckpointer() {
          const saver = await factory();
          const bridged = toLangGraphSaver(saver);
          made.set(bridged, saver);
          return bridged;
        },
        async destroyCheckpointer(bridged) {
          const saver = made.get(bridged);
          made.delete(bridged);
          if (saver !== undefined) await options.destroy?.(saver);
        },
      },
      parts as Parameters<typeof specTest>[1],
    ),
  );
  const result: ConformanceResult = { passed: 0, failed: 0, skipped: 0, total: 0, failures: [] };
  try {
    if (options.exclude) prune(root, [], options.exclude);
    await runSuite(root, [], [], result, timeoutMs);
  } finally {
    release();
  }
  result.total = result.passed + result.failed + result.skipped;
  return result;
}

// --- a minimal Vitest-compatible collector and runner ---------------------------------------------

type Fn = (...args: unknown[]) => unknown;
type HookKind = "beforeAll" | "afterAll" | "beforeEach" | "afterEach";

interface Suite {
  kind: "suite";
  name: string;
  hooks: Record<HookKind, Fn[]>;
  children: Array<Suite | Test>;
}

interface Test {
  kind: "test";
  name: string;
  fn: Fn;
  skip: boolean;
}

const GLOBALS = ["describe", "it", "test", "beforeAll", "afterAll", "beforeEach", "afterEach", "expect"] as const;

function newSuite(name: string): Suite {
  return { kind: "suite", name, hooks: { beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] }, children: [] };
}

/** Vitest's title templates: `%s` takes the next argument, `$key` a field of an object row. */
function title(template: string, row: unknown): string {
  const args = Array.isArray(row) ? [...row] : [row];
  return template
    .replace(/%[sdifjo]/g, () => String(args.shift()))
    .replace(/\$([A-Za-z_][\w.]*)/g, (whole, key: string) =>
      typeof row === "object" && row !== null && key in row ? String((row as Record<string, unknown>)[key]) : whole,
    );
}

/**
 * Calls `register` with describe/it/hooks/expect bound to a collector and gives
 * the borrowed globals back, except `expect`, which the tests read when they run: `release()` returns it.
 */
function collect(register: () => void): { root: Suite; release(): void } {
  const root = newSuite("");
  let current = root;
  const describe = (name: string, body: () => void) => {
    const suite = newSuite(name);
    current.children.push(suite);
    const parent = current;
    current = suite;
    try {
      body();
    } finally {
      current = parent;
    }
  };
  const addTest = (skip: boolean) => (name: string, fn: Fn) => void current.children.push({ kind: "test", name, fn, skip });
  const each =
    (register: (name: string, fn: Fn) => void, spread: boolean) =>
    (rows: unknown[]) =>
    (name: string, fn: Fn) => {
      for (const row of rows) register(title(name, row), () => (spread && Array.isArray(row) ? fn(...row) : fn(row)));
    };
  const it = Object.assign(addTest(false), {
    skip: addTest(true),
    each: (rows: unknown[]) => each(addTest(false), true)(rows),
  });
  const describeGlobal = Object.assign(describe, {
    each: (rows: unknown[]) => (name: string, fn: Fn) => {
      for (const row of rows) describe(title(name, row), () => void (Array.isArray(row) ? fn(...row) : fn(row)));
    },
  });
  const hook = (kind: HookKind) => (fn: Fn) => void current.hooks[kind].push(fn);
  // expect.soft would report into whatever Vitest test is running the caller: make it an ordinary expect.
  const expect = new Proxy(vitestExpect, { get: (target, key, receiver) => (key === "soft" ? target : Reflect.get(target, key, receiver)) });
  const lent: Record<(typeof GLOBALS)[number], unknown> = {
    describe: describeGlobal,
    it,
    test: it,
    beforeAll: hook("beforeAll"),
    afterAll: hook("afterAll"),
    beforeEach: hook("beforeEach"),
    afterEach: hook("afterEach"),
    expect,
  };
  const saved = GLOBALS.map((key) => [key, Object.getOwnPropertyDescriptor(globalThis, key)] as const);
  for (const key of GLOBALS) Object.defineProperty(globalThis, key, { value: lent[key], configurable: true, writable: true });
  const giveBack = (keys: ReadonlyArray<string>) => {
    for (const [key, descriptor] of saved) {
      if (!keys.includes(key)) continue;
      if (descriptor) Object.defineProperty(globalThis, key, descriptor);
      else delete (globalThis as Record<string, unknown>)[key];
    }
  };
  try {
    register();
  } catch (error) {
    giveBack(GLOBALS);
    throw error;
  }
  giveBack(GLOBALS.filter((key) => key !== "expect"));
  return { root, release: () => giveBack(["expect"]) };
}

async function withTimeout(fn: Fn, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(() => fn()),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message.split("\n").slice(0, 6).join("\n") : String(error);
}

/** Drops the excluded tests (a suite left without tests keeps its hooks, which then run for nothing). */
function prune(suite: Suite, path: string[], exclude: (name: string) => boolean): void {
  const here = suite.name === "" ? path : [...path, suite.name];
  suite.children = suite.children.filter((child) => {
    if (child.kind === "suite") {
      prune(child, here, exclude);
      return countTests(child) > 0;
    }
    return !exclude([...here, child.name].join(" > "));
  });
}

function countTests(suite: Suite): number {
  return suite.children.reduce((sum, child) => sum + (child.kind === "test" ? 1 : countTests(child)), 0);
}

/** Runs one suite with Vitest's order of hooks; `eachHooks` are the enclosing suites' beforeEach/afterEach, outermost first. */
async function runSuite(suite: Suite, path: string[], eachHooks: Array<Suite["hooks"]>, result: ConformanceResult, timeoutMs: number): Promise<void> {
  const here = suite.name === "" ? path : [...path, suite.name];
  const hooks = [...eachHooks, suite.hooks];
  let setupError: unknown;
  for (const fn of suite.hooks.beforeAll) {
    try {
      await withTimeout(fn, timeoutMs, "beforeAll");
    } catch (error) {
      setupError = error;
      break;
    }
  }
  if (setupError !== undefined) {
    const failed = countTests(suite);
    result.failed += failed;
    result.failures.push({ name: [...here, `(${failed} tests)`].join(" > "), message: `beforeAll failed: ${message(setupError)}` });
  } else {
    for (const child of suite.children) {
      if (child.kind === "suite") {
        await runSuite(child, here, hooks, result, timeoutMs);
        continue;
      }
      if (child.skip) {
        result.skipped++;
        continue;
      }
      let failure: unknown;
      try {
        for (const level of hooks) for (const fn of level.beforeEach) await withTimeout(fn, timeoutMs, "beforeEach");
        await withTimeout(child.fn, timeoutMs, "test");
      } catch (error) {
        failure = error;
      }
      for (const level of [...hooks].reverse()) {
        for (const fn of level.afterEach) {
          try {
            await withTimeout(fn, timeoutMs, "afterEach");
          } catch (error) {
            failure ??= error;
          }
        }
      }
      if (failure === undefined) result.passed++;
      else {
        result.failed++;
        result.failures.push({ name: [...here, child.name].join(" > "), message: message(failure) });
      }
    }
  }
  for (const fn of suite.hooks.afterAll) {
    try {
      await withTimeout(fn, timeoutMs, "afterAll");
    } catch (error) {
      result.failures.push({ name: [...here, "afterAll"].join(" > "), message: message(error) });
    }
  }
}
