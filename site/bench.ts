/**
 * Site figures for `npm run bench`: how long `npm run site` takes when nothing
 * changed (the everyday rebuild, caches warm), and how long a full render of
 * every diagram takes per diagram, browser start included.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { chromiumAvailability } from "./chromium.ts";
import { diagramStatuses, renderDiagrams } from "./diagrams.ts";
import type { Edition } from "./pages.ts";

export interface SiteFigure {
  name: string;
  value: number;
  unit: string;
  goal?: string;
}

const ROUNDS = 3;

/** Wall time of one `npm run site -- --edition <edition>` (a fresh process, as a user runs it), in ms. */
function timeSiteBuild(edition: Edition): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ["--import", "tsx", "site/build.ts", "--edition", edition], { cwd: KIT_ROOT, stdio: "pipe" });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`npm run site -- --edition ${edition} failed:\n${result.stderr.toString().slice(0, 2000)}`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function benchSite(): Promise<SiteFigure[]> {
  const figures: SiteFigure[] = [];
  for (const edition of ["candidate", "interviewer"] as const) {
    timeSiteBuild(edition); // fills the rubric and highlight caches, as any earlier build would have
    const rebuild = median(Array.from({ length: ROUNDS }, () => timeSiteBuild(edition)));
    figures.push({ name: `site rebuild, ${edition} edition, nothing changed (median of ${ROUNDS})`, value: rebuild / 1000, unit: "s", goal: "<= 1.5 s" });
  }

  const diagrams = diagramStatuses().filter((status) => status.state !== "orphan").length;
  if (diagrams > 0 && chromiumAvailability().available) {
    const outDir = mkdtempSync(join(tmpdir(), "bench-diagrams-"));
    try {
      const { rendered, elapsedMs } = await renderDiagrams({ force: true, outDir });
      figures.push({ name: `full render of ${rendered.length} diagrams, per diagram (one browser, start included)`, value: elapsedMs / rendered.length / 1000, unit: "s", goal: "<= 1 s" });
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }
  return figures;
}
