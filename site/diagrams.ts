/**
 * Renders diagrams/**\/*.mmd to SVG beside each source, with mermaid-cli driving
 * Debian's Chromium (one browser for every diagram). Each SVG starts with a stamp
 * holding the SHA-256 of its source and of the render settings, so
 *
 *   npm run diagrams            re-renders only the diagrams whose source changed
 *   npm run diagrams -- --force re-renders all of them
 *   npm run diagrams -- --check lists stale or missing SVGs and exits 1 (no Chromium needed)
 *
 * The SVGs are committed, so the site builds on a machine without Chromium, and
 * test/diagrams.test.ts fails when one is stale.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import pLimit from "p-limit";
import { globSync } from "tinyglobby";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumAvailability } from "./chromium.ts";

/**
 * Everything besides the source that changes the SVG. Part of the hash, so a
 * change here marks every diagram stale. Ids are deterministic so that an
 * unchanged source re-renders to identical bytes; the site prefixes them per page.
 */
export const RENDER_SETTINGS = {
  svgId: "diagram",
  backgroundColor: "white",
  mermaidConfig: {
    theme: "base",
    deterministicIds: true,
    deterministicIDSeed: "checkpoint-kit",
    fontFamily: "'DejaVu Sans', Verdana, Arial, sans-serif",
    themeVariables: {
      fontFamily: "'DejaVu Sans', Verdana, Arial, sans-serif",
      fontSize: "15px",
      primaryColor: "#e8f0fa",
      primaryBorderColor: "#3f6fa8",
      primaryTextColor: "#1c2733",
      secondaryColor: "#fdf3e1",
      tertiaryColor: "#f4f6f8",
      lineColor: "#56657a",
      noteBkgColor: "#fff8d8",
      noteBorderColor: "#c9a93b",
    },
  },
} as const;

const STAMP = /^<!-- checkpoint-kit diagram source-sha256: ([0-9a-f]{64}) -->\n/;

export class DiagramRenderError extends Error {
  override name = "DiagramRenderError";
}

export function diagramsDir(root: string = KIT_ROOT): string {
  return join(root, "diagrams");
}

export function sourceHash(source: string): string {
  return createHash("sha256").update(JSON.stringify(RENDER_SETTINGS)).update("\0").update(source).digest("hex");
}

/** The hash stamped into an SVG, or undefined when it carries none. */
export function stampedHash(svg: string): string | undefined {
  return STAMP.exec(svg)?.[1];
}

export function stampSvg(svg: string, hash: string): string {
  return `<!-- checkpoint-kit diagram source-sha256: ${hash} -->\n${svg}\n`;
}

export type DiagramState = "fresh" | "stale" | "missing" | "orphan";

export interface DiagramStatus {
  /** Path of the .mmd source relative to the kit root (of the .svg, for an orphan). */
  source: string;
  svg: string;
  state: DiagramState;
}

/** Every diagram and whether its committed SVG matches its source. Reads files only. */
export function diagramStatuses(root: string = KIT_ROOT): DiagramStatus[] {
  const dir = diagramsDir(root);
  if (!existsSync(dir)) return [];
  const sources = globSync(["**/*.mmd"], { cwd: dir }).sort();
  const statuses: DiagramStatus[] = sources.map((name) => {
    const sourcePath = join(dir, name);
    const svgPath = sourcePath.replace(/\.mmd$/, ".svg");
    const entry = { source: relative(root, sourcePath), svg: relative(root, svgPath) };
    if (!existsSync(svgPath)) return { ...entry, state: "missing" };
    const fresh = stampedHash(readFileSync(svgPath, "utf8")) === sourceHash(readFileSync(sourcePath, "utf8"));
    return { ...entry, state: fresh ? "fresh" : "stale" };
  });
  const withSource = new Set(sources.map((name) => name.replace(/\.mmd$/, ".svg")));
  for (const name of globSync(["**/*.svg"], { cwd: dir }).sort()) {
    if (!withSource.has(name)) statuses.push({ source: relative(root, join(dir, name)), svg: relative(root, join(dir, name)), state: "orphan" });
  }
  return statuses;
}

export interface RenderOptions {
  root?: string;
  /** Render every diagram, not only the stale and missing ones. */
  force?: boolean;
  /** Write the SVGs under this directory (same relative paths) instead of beside their sources. */
  outDir?: string;
  /** Diagrams rendered at the same time in the one browser. */
  concurrency?: number;
}

export interface RenderResult {
  rendered: string[];
  upToDate: number;
  /** Wall time including the browser's start, in ms; 0 when nothing needed rendering. */
  elapsedMs: number;
}

/** Renders what is stale or missing (everything, with `force`). Needs Chromium when anything is to render. */
export async function renderDiagrams(options: RenderOptions = {}): Promise<RenderResult> {
  const root = options.root ?? KIT_ROOT;
  const statuses = diagramStatuses(root).filter((status) => status.state !== "orphan");
  const todo = statuses.filter((status) => options.force || status.state !== "fresh");
  if (todo.length === 0) return { rendered: [], upToDate: statuses.length, elapsedMs: 0 };

  const chromium = chromiumAvailability();
  if (!chromium.available) throw new DiagramRenderError(`Cannot render ${todo.length} diagram(s): ${chromium.reason}.`);

  const started = performance.now();
  // Imported here so that checking freshness (the test, the site build) never loads puppeteer.
  const [{ default: puppeteer }, { renderMermaid }] = await Promise.all([import("puppeteer-core"), import("@mermaid-js/mermaid-cli")]);
  const browser = await puppeteer.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  try {
    const limit = pLimit(options.concurrency ?? 2);
    await Promise.all(
      todo.map((status) =>
        limit(async () => {
          const source = readFileSync(join(root, status.source), "utf8");
          let data: Uint8Array;
          try {
            ({ data } = await renderMermaid(browser, source, "svg", structuredClone(RENDER_SETTINGS) as Parameters<typeof renderMermaid>[3]));
          } catch (error) {
            throw new DiagramRenderError(`${status.source} did not render: ${error instanceof Error ? error.message : String(error)}`);
          }
          const target = options.outDir ? join(options.outDir, relative(diagramsDir(root), join(root, status.svg))) : join(root, status.svg);
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, stampSvg(new TextDecoder().decode(data), sourceHash(source)));
        }),
      ),
    );
  } finally {
    await browser.close();
  }
  return {
    rendered: todo.map((status) => status.source),
    upToDate: statuses.length - todo.length,
    elapsedMs: performance.now() - started,
  };
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((arg) => arg !== "--force" && arg !== "--check");
  if (unknown.length > 0) {
    console.error(`Unknown option ${unknown.join(" ")}. Usage: npm run diagrams [-- --force | --check]`);
    return 2;
  }
  const statuses = diagramStatuses();
  const orphans = statuses.filter((status) => status.state === "orphan");
  for (const orphan of orphans) console.error(`${orphan.svg} has no .mmd source beside it; delete it or add its source.`);

  if (argv.includes("--check")) {
    const outdated = statuses.filter((status) => status.state === "stale" || status.state === "missing");
    for (const status of outdated) console.error(`${status.svg} is ${status.state}; run \`npm run diagrams\`.`);
    if (outdated.length === 0 && orphans.length === 0) console.log(`${statuses.length} diagram(s), all SVGs match their sources.`);
    return outdated.length > 0 || orphans.length > 0 ? 1 : 0;
  }

  const todo = statuses.filter((status) => status.state === "stale" || status.state === "missing" || (argv.includes("--force") && status.state === "fresh"));
  const chromium = chromiumAvailability();
  if (todo.length > 0 && !chromium.available) {
    const message = `${todo.length} diagram(s) need rendering, but ${chromium.reason}.`;
    if (chromium.required) {
      console.error(message);
      return 1;
    }
    console.warn(`Skipped: ${message} The committed SVGs are used as they are.`);
    return 0;
  }
  const result = await renderDiagrams({ force: argv.includes("--force") });
  for (const source of result.rendered) console.log(`rendered ${source}`);
  const perDiagram = result.rendered.length > 0 ? ` (${Math.round(result.elapsedMs / result.rendered.length)} ms per diagram)` : "";
  console.log(`${result.rendered.length} rendered, ${result.upToDate} up to date${perDiagram}.`);
  return orphans.length > 0 ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
