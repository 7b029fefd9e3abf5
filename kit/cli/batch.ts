/**
 * --submissions DIR: grades every submission in DIR (folders, .tgz and .zip
 * bundles) with bounded concurrency. One broken submission never stops the
 * batch. Writes one JSON report per candidate plus summary.csv and
 * summary.json, into DIR/grading-report/ unless told otherwise; that folder
 * (and any earlier one) is never taken for a candidate.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, join, resolve } from "node:path";
import pLimit from "p-limit";
import { z } from "zod";
import { findLesson, loadManifest } from "../manifest.ts";
import { gradeLesson, newSeed } from "../grading/engine.ts";
import { TIER_LABEL, TierSchema } from "../grading/report.ts";
import { submissionTarget } from "../grading/targets.ts";
import { finishReport } from "../report/finish.ts";
import { EXIT_BELOW_MIN_TIER, EXIT_OK, meetsMinTier } from "./grade.ts";
import { UsageError, type GradeOptions } from "./options.ts";

export const BatchRowSchema = z.strictObject({
  candidate: z.string(),
  status: z.enum(["graded", "error"]),
  error: z.string().optional(),
  tier: TierSchema.optional(),
  score: z.number().optional(),
  units: z.record(z.string(), z.strictObject({ tier: TierSchema, score: z.number(), failed: z.array(z.string()) })),
});
export const BatchSummarySchema = z.strictObject({ lesson: z.string(), seed: z.number(), rows: z.array(BatchRowSchema) });
export type BatchRow = z.infer<typeof BatchRowSchema>;

const BUNDLE = /\.(tgz|tar\.gz|zip)$/i;
const DEFAULT_OUT = "grading-report";

/** A folder, or a bundle file; never a folder of this command's own output (it holds summary.json). */
function isSubmission(path: string): boolean {
  const stat = statSync(path);
  if (!stat.isDirectory()) return BUNDLE.test(path);
  return basename(path) !== DEFAULT_OUT && !existsSync(join(path, "summary.json")) && !basename(path).startsWith(".");
}
const candidateName = (file: string) => basename(file).replace(BUNDLE, "");

function csvField(value: string | number | undefined): string {
  const text = value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(rows: BatchRow[], unitIds: string[]): string {
  const header = ["candidate", "status", "tier", "score", ...unitIds.flatMap((u) => [`${u} tier`, `${u} score`]), "failed checks", "error"];
  const lines = rows.map((r) =>
    [
      r.candidate,
      r.status,
      r.tier,
      r.score,
      ...unitIds.flatMap((u) => [r.units[u]?.tier, r.units[u]?.score]),
      Object.entries(r.units).flatMap(([u, x]) => x.failed.map((f) => `${u}: ${f}`)).join("; "),
      r.error,
    ].map(csvField).join(","),
  );
  return `${[header.join(","), ...lines].join("\n")}\n`;
}

export async function gradeBatch(options: GradeOptions): Promise<number> {
  const dir = resolve(options.submissions!);
  const lesson = findLesson(loadManifest(), options.lesson);
  const unitIds = options.units.length > 0 ? options.units : lesson.units.map((u) => u.id);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--submissions takes a folder of submissions; ${dir} is not a folder.`);
  const outDir = resolve(options.out ?? join(dir, DEFAULT_OUT));
  const entries = readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((p) => p !== outDir && isSubmission(p))
    .sort();
  if (entries.length === 0) {
    throw new UsageError(
      `No submissions in ${dir}: put each candidate's returned folder, .tgz or .zip bundle in it (e.g. ${join(dir, "alice.tgz")}), then run this again.`,
    );
  }
  mkdirSync(outDir, { recursive: true });
  const seed = options.seed ?? newSeed();
  const limit = pLimit(options.concurrency ?? availableParallelism());
  let allMeet = true;

  const rows = await Promise.all(
    entries.map((entry) =>
      limit(async (): Promise<BatchRow> => {
        const candidate = candidateName(entry);
        try {
          const target = await submissionTarget(entry);
          try {
            const report = finishReport(await gradeLesson({
              lesson: lesson.id,
              units: unitIds,
              implementationDir: (u) => target.implementationDir(lesson.id, u),
              target: { kind: "submission", path: entry },
              hidden: true,
              seed,
              concurrency: 1,
              sandbox: options.allowUnsandboxed ? true : "require",
              limits: options.timeLimit ? { unitMs: options.timeLimit * 1000 } : undefined,
            }), { lesson: lesson.id, seed, targetArgs: ["--submission", entry] });
            writeFileSync(join(outDir, `${candidate}.json`), `${JSON.stringify(report, null, 2)}\n`);
            allMeet &&= meetsMinTier(report, options);
            process.stderr.write(`graded ${candidate}: ${TIER_LABEL[report.tier]}\n`);
            return {
              candidate,
              status: "graded",
              tier: report.tier,
              score: report.score,
              units: Object.fromEntries(
                report.units.map((u) => [u.unit, { tier: u.tier, score: u.score, failed: u.tests.filter((t) => t.status !== "pass").map((t) => t.name) }]),
              ),
            };
          } finally {
            target.dispose();
          }
        } catch (error) {
          if (options.minTier) allMeet = false; // an ungradable submission meets no tier
          process.stderr.write(`could not grade ${candidate}: ${(error as Error).message}\n`);
          return { candidate, status: "error", error: (error as Error).message, units: {} };
        }
      }),
    ),
  );

  writeFileSync(join(outDir, "summary.json"), `${JSON.stringify(BatchSummarySchema.parse({ lesson: lesson.id, seed, rows }), null, 2)}\n`);
  writeFileSync(join(outDir, "summary.csv"), toCsv(rows, unitIds));
  const width = Math.max(9, ...rows.map((r) => r.candidate.length));
  const table = [
    `${"candidate".padEnd(width)}  ${"tier".padEnd(17)}  score  ${unitIds.join("  ")}`,
    ...rows.map((r) =>
      r.status === "error"
        ? `${r.candidate.padEnd(width)}  ${"error".padEnd(17)}      -  ${r.error}`
        : `${r.candidate.padEnd(width)}  ${TIER_LABEL[r.tier!].padEnd(17)}  ${String(r.score).padStart(5)}  ${unitIds.map((u) => (r.units[u]?.tier ?? "-").padEnd(u.length)).join("  ")}`,
    ),
  ];
  process.stdout.write(`${table.join("\n")}\n\nwrote ${join(outDir, "summary.csv")}, summary.json and one report per candidate\n`);
  return allMeet ? EXIT_OK : EXIT_BELOW_MIN_TIER;
}
