/** Parses `npm run grade` arguments into validated options (zod), with errors that say what to type. */
import { parseArgs } from "node:util";
import { z } from "zod";
import { TierSchema } from "../grading/report.ts";

export const USAGE = `Usage: npm run grade <lesson> [unit ...] -- [options]

  --solutions            grade the reference solutions instead of exercises/
  --submission PATH      grade a returned submission (folder or .tgz bundle), with hidden checks
  --submissions DIR      grade every submission in DIR (batch); writes summary.csv and summary.json
  --out DIR              where --submissions writes its files (default: DIR/grading-report)
  --hidden               include hidden checks (interviewer grading)
  --json                 print the JSON report instead of the readable one
  --junit FILE           also write a JUnit XML report to FILE
  --min-tier TIER        exit 1 unless every unit reaches TIER (needs-improvement|adequate|excellent)
  --watch                re-grade on save (h: next hint, r: re-run, q: quit)
  --seed N               replay a run's random inputs
  --concurrency N        units (or submissions) graded at once (default: number of cores)
  --time-limit SECONDS   hard limit per unit (default 240)

Examples:
  npm run grade lesson-11
  npm run grade lesson-11 serde -- --watch
  npm run grade lesson-11 -- --submission ~/returned/alice.tgz --json > alice.json`;

export const GradeOptionsSchema = z
  .strictObject({
    lesson: z.string({ error: "name a lesson, e.g. `npm run grade lesson-11`" }),
    units: z.array(z.string()),
    solutions: z.boolean(),
    submission: z.string().optional(),
    submissions: z.string().optional(),
    out: z.string().optional(),
    hidden: z.boolean(),
    json: z.boolean(),
    junit: z.string().optional(),
    minTier: TierSchema.optional(),
    watch: z.boolean(),
    seed: z.coerce.number().int().min(0, "--seed takes a whole number ≥ 0").optional(),
    concurrency: z.coerce.number().int().min(1, "--concurrency takes a whole number ≥ 1").optional(),
    timeLimit: z.coerce.number().positive("--time-limit takes a number of seconds > 0").optional(),
  })
  .refine((o) => [o.solutions, o.submission !== undefined, o.submissions !== undefined].filter(Boolean).length <= 1, {
    message: "choose one of --solutions, --submission and --submissions",
  })
  .refine((o) => !(o.watch && (o.submission || o.submissions || o.json)), {
    message: "--watch grades your own exercises; it does not combine with --submission(s) or --json",
  });

export type GradeOptions = z.infer<typeof GradeOptionsSchema>;

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseGradeArgs(argv: string[]): GradeOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        solutions: { type: "boolean", default: false },
        submission: { type: "string" },
        submissions: { type: "string" },
        out: { type: "string" },
        hidden: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        junit: { type: "string" },
        "min-tier": { type: "string" },
        watch: { type: "boolean", default: false },
        seed: { type: "string" },
        concurrency: { type: "string" },
        "time-limit": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError(USAGE);
  const result = GradeOptionsSchema.safeParse({
    lesson: positionals[0],
    units: positionals.slice(1),
    solutions: values.solutions,
    submission: values.submission,
    submissions: values.submissions,
    out: values.out,
    hidden: values.hidden,
    json: values.json,
    junit: values.junit,
    minTier: values["min-tier"],
    watch: values.watch,
    seed: values.seed,
    concurrency: values.concurrency,
    timeLimit: values["time-limit"],
  });
  if (!result.success) throw new UsageError(`${z.prettifyError(result.error)}\n\n${USAGE}`);
  return result.data;
}
