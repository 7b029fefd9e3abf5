/**
 * Parses `npm run grade` arguments into validated options, with errors that
 * name the option and say what to type. Also the habits every command of the
 * kit shares: paths are relative to where the user ran the command (INIT_CWD
 * under npm), and options npm swallowed because `--` was forgotten are caught.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";
import { KIT_ROOT } from "../../graders/harness/implementation.ts";
import { TIERS } from "../grading/report.ts";

export const USAGE = `Usage: npm run grade <lesson> [unit ...] -- [options]

  --solutions            grade the reference solutions instead of exercises/ (interviewer)
  --submission PATH      grade a returned submission (folder, .tgz or .zip), with hidden checks (interviewer)
  --submissions DIR      grade every submission in DIR (batch); writes summary.csv and summary.json (interviewer)
  --out DIR              where --submissions writes its files (default: DIR/grading-report)
  --hidden               include hidden checks (interviewer)
  --json [FILE.json]     write the JSON report to FILE.json; without a file, print it (with npm, use npm run --silent)
  --report FILE          write the JSON report to FILE
  --junit FILE           also write a JUnit XML report to FILE
  --min-tier TIER        exit 1 unless every unit reaches TIER (needs-improvement|adequate|excellent)
  --verbose              show every failing check with its message and hint (default: the first per unit)
  --watch                re-grade the unit you save (h: next hint, r: re-run, n: next unit, q: quit)
  --seed N               replay a run's random inputs (also CHECKPOINT_KIT_SEED=N)
  --concurrency N        units (or submissions) graded at once (default: number of cores)
  --time-limit SECONDS   hard limit per unit (default 600; a check stops hung code within seconds)
  --allow-unsandboxed    grade a submission even without the OS sandbox (bubblewrap): its code runs with your rights
  --help                 this text

Relative paths are relative to the folder you run the command in.

Examples:
  npm run grade lesson-11
  npm run grade lesson-11 serde -- --watch
  npm run grade lesson-11 serde -- --seed 1234
  npm run grade lesson-11 -- --submission ~/returned/alice.tgz --json alice.json`;

export class UsageError extends Error {
  override name = "UsageError";
}

/** --help: the usage text goes to stdout and the command exits 0. */
export class HelpRequested extends Error {
  override name = "HelpRequested";
}

/**
 * How a command ends on an error: --help's text on stdout, exit 0; a UsageError or one of the
 * command's own expected errors as its message alone, exit 2; anything else (a bug) with its
 * stack, exit 2.
 */
export function exitWithError(error: unknown, expected: ReadonlyArray<abstract new (...args: never[]) => Error> = []): never {
  if (error instanceof HelpRequested) {
    process.stdout.write(`${error.message}\n`);
    process.exit(0);
  }
  const known = error instanceof UsageError || expected.some((type) => error instanceof type);
  process.stderr.write(`${known ? (error as Error).message : (error as Error).stack}\n`);
  process.exit(2);
}

/** A path the user typed, resolved against the folder they ran the command in (npm runs scripts from the kit root). */
export function userPath(path: string): string {
  return resolve(process.env.INIT_CWD ?? process.cwd(), path);
}

/**
 * Options npm took for itself: `npm run grade lesson-11 --solutions` (no `--`)
 * hands `--solutions` to npm, which exports it as npm_config_solutions=true and
 * runs the script without it. Returns the swallowed options, as the user typed them.
 */
export function swallowedOptions(names: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (!env.npm_lifecycle_event) return [];
  // npm reads --verbose as its own --loglevel verbose.
  const verbose = names.includes("verbose") && env.npm_config_loglevel === "verbose" ? ["verbose"] : [];
  return [...verbose, ...names.filter((name) => {
    const value = env[`npm_config_${name.replace(/-/g, "_")}`];
    return value !== undefined && value !== "" && value !== "false";
  })];
}

/** The usage error for swallowed options, with the command that works. */
export function forgottenSeparator(swallowed: string[], positionals: string[], env: NodeJS.ProcessEnv = process.env): UsageError {
  const script = env.npm_lifecycle_event ?? "grade";
  const flags = swallowed.map((name) => `--${name}`).join(" ");
  return new UsageError(
    `npm took ${flags} for itself, so the kit never saw ${swallowed.length === 1 ? "it" : "them"}: options go after \`--\`.\n` +
      `did you mean \`-- ${flags}\`? e.g.\n  npm run ${script} ${positionals.join(" ")} -- ${flags}${swallowed.some((n) => VALUE_OPTIONS.has(n)) ? " <value>" : ""}`,
  );
}

/** Options that take a value: when npm swallows one, the value becomes a stray positional. */
const VALUE_OPTIONS = new Set(["submission", "submissions", "out", "report", "junit", "min-tier", "seed", "concurrency", "time-limit"]);

/** Set in a candidate bundle by `npm run pack` (see kit/cli/pack.ts). */
export const BUNDLE_MARKER = join("kit", "bundle.json");

export function isCandidateBundle(root = KIT_ROOT): boolean {
  return existsSync(join(root, BUNDLE_MARKER));
}

const wholeNumber = (option: string, min: number) =>
  z
    .string()
    .regex(/^\d+$/, `${option} takes a whole number${min > 0 ? ` ≥ ${min}` : ""}`)
    .transform(Number)
    .refine((n) => n >= min, `${option} takes a whole number ≥ ${min}`);

export const GradeOptionsSchema = z
  .strictObject({
    lesson: z.string({ error: "name a lesson, e.g. `npm run grade lesson-11`" }),
    units: z.array(z.string()),
    solutions: z.boolean(),
    submission: z.string().optional(),
    submissions: z.string().optional(),
    out: z.string().optional(),
    hidden: z.boolean(),
    /** Print the JSON report on stdout. */
    json: z.boolean(),
    /** Write the JSON report to these files (--json FILE.json and/or --report FILE). */
    reports: z.array(z.string()),
    junit: z.string().optional(),
    minTier: z.enum(TIERS, { error: "--min-tier takes needs-improvement, adequate or excellent" }).optional(),
    watch: z.boolean(),
    verbose: z.boolean(),
    /** Run a stranger's submission without the OS sandbox (refused otherwise when there is none). */
    allowUnsandboxed: z.boolean(),
    seed: wholeNumber("--seed", 0).optional(),
    concurrency: wholeNumber("--concurrency", 1).optional(),
    timeLimit: z
      .string()
      .regex(/^\d+(\.\d+)?$/, "--time-limit takes a number of seconds > 0")
      .transform(Number)
      .refine((n) => n > 0, "--time-limit takes a number of seconds > 0")
      .optional(),
  })
  .refine((o) => [o.solutions, o.submission !== undefined, o.submissions !== undefined].filter(Boolean).length <= 1, {
    message: "choose one of --solutions, --submission and --submissions",
  })
  .refine((o) => !(o.watch && (o.submission || o.submissions || o.json || o.reports.length > 0)), {
    message: "--watch grades your own exercises; it does not combine with --submission(s), --json or --report",
  });

export type GradeOptions = z.infer<typeof GradeOptionsSchema>;

const OPTIONS = {
  solutions: { type: "boolean", default: false },
  submission: { type: "string" },
  submissions: { type: "string" },
  out: { type: "string" },
  hidden: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  report: { type: "string" },
  junit: { type: "string" },
  "min-tier": { type: "string" },
  watch: { type: "boolean", default: false },
  verbose: { type: "boolean", short: "v", default: false },
  "allow-unsandboxed": { type: "boolean", default: false },
  seed: { type: "string" },
  concurrency: { type: "string" },
  "time-limit": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** npm's own configs that share a name with ours: only ours are listed in OPTIONS. */
export const GRADE_OPTION_NAMES = Object.keys(OPTIONS);

/** `--json FILE.json` (or `--json=FILE.json`): the file is --json's value, so the report never goes through stdout. */
function splitJsonFile(argv: string[]): { args: string[]; file?: string } {
  const args: string[] = [];
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith("--json=")) {
      file = arg.slice("--json=".length);
      args.push("--json");
    } else if (arg === "--json" && argv[i + 1] !== undefined && /\.json$/i.test(argv[i + 1]!)) {
      file = argv[++i];
      args.push("--json");
    } else {
      args.push(arg);
    }
  }
  return { args, file };
}

/** A zod issue as a sentence about an option (zod's field names never reach the user). */
function issueText(issue: z.core.$ZodIssue): string {
  const field = String(issue.path[0] ?? "");
  if (field === "lesson" || field === "" || issue.message.startsWith("--")) return issue.message;
  const option = `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return `${option}: ${issue.message}`;
}

/**
 * node:util's parseArgs for the kit's commands: its errors (an unknown option, a missing value,
 * an argument the command does not take) become a UsageError in the user's words, followed by
 * the command's usage. Node's own text for an unknown option suggests "--" tricks that make no
 * sense under npm.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (!code?.startsWith("ERR_PARSE_ARGS_")) throw error;
    const option = /'([^']+)'/.exec(message)?.[1];
    const what = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option ? `Unknown option ${option}.` : message;
    throw new UsageError(`${what}\n\n${usage}`);
  }
}

export function parseGradeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): GradeOptions {
  const { args, file: jsonFile } = splitJsonFile(argv);
  const { values, positionals } = parseCommandArgs({ args, allowPositionals: true, options: OPTIONS }, USAGE);
  if (values.help) throw new HelpRequested(USAGE);
  const swallowed = swallowedOptions(GRADE_OPTION_NAMES, env).filter((name) => !(name === "json" && values.json));
  if (swallowed.length > 0) throw forgottenSeparator(swallowed, positionals.filter((p) => /^[a-z][\w-]*$/.test(p)), env);
  const result = GradeOptionsSchema.safeParse({
    lesson: positionals[0],
    units: positionals.slice(1),
    solutions: values.solutions,
    submission: values.submission,
    submissions: values.submissions,
    out: values.out,
    hidden: values.hidden,
    json: values.json && jsonFile === undefined,
    reports: [jsonFile, values.report].filter((f): f is string => f !== undefined),
    junit: values.junit,
    minTier: values["min-tier"],
    watch: values.watch,
    verbose: values.verbose,
    allowUnsandboxed: values["allow-unsandboxed"],
    seed: values.seed ?? seedFromEnv(env),
    concurrency: values.concurrency,
    timeLimit: values["time-limit"],
  });
  if (!result.success) throw new UsageError(`${result.error.issues.map(issueText).join("\n")}\n\n${USAGE}`);
  const options = result.data;
  if (isCandidateBundle()) {
    const interviewerOnly = [options.solutions && "--solutions", options.hidden && "--hidden"].filter(Boolean);
    if (interviewerOnly.length > 0) {
      throw new UsageError(
        `${interviewerOnly.join(" and ")} ${interviewerOnly.length === 1 ? "is an interviewer option" : "are interviewer options"}: ` +
          "this candidate bundle has no reference solutions and no hidden checks. Grade your own exercises with `npm run grade " +
          `${options.lesson}\`; the interviewer runs the hidden checks on your returned work.`,
      );
    }
  }
  // npm runs scripts from the kit root: paths are the user's, relative to where they typed the command.
  for (const key of ["submission", "submissions", "out", "junit"] as const) {
    if (options[key] !== undefined) options[key] = userPath(options[key]);
  }
  options.reports = options.reports.map(userPath);
  if (options.json && env.npm_lifecycle_event && env.npm_config_loglevel !== "silent") {
    throw new UsageError(
      "--json without a file prints the report on stdout, where npm first prints its own banner, so `> file` would not be valid JSON.\n" +
        `Let the kit write the file:  npm run grade ${[options.lesson, ...options.units].join(" ")} -- --json report.json\n` +
        `or silence npm:              npm run --silent grade ${[options.lesson, ...options.units].join(" ")} -- --json > report.json`,
    );
  }
  return options;
}

/** CHECKPOINT_KIT_SEED replays a run like --seed does (the option wins when both are given). */
function seedFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.CHECKPOINT_KIT_SEED;
  return value === undefined || value === "" ? undefined : value;
}
