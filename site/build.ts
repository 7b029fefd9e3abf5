/**
 * npm run site [-- --edition candidate|interviewer|all]
 *
 * Builds the site into site/dist/<edition>/ (default: the candidate edition,
 * which holds no reference code, no model answers and no hidden-check details),
 * and site/dist/index.html, the page to open, linking to each edition built.
 * Needs no browser: diagrams are the committed SVGs (see site/diagrams.ts).
 */
import { dirname, relative } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { buildSite, SiteBuildError } from "./builder.ts";
import { SiteContentError } from "./content.ts";
import { DiagramError } from "./inline-svg.ts";
import { MarkdownError } from "./markdown.ts";
import { RubricError } from "./rubric.ts";
import { EDITIONS, type Edition } from "./pages.ts";
import { writeStartPage } from "./start-page.ts";

const USAGE = "Usage: npm run site [-- --edition candidate|interviewer|all]";

export class SiteUsageError extends Error {
  override name = "SiteUsageError";
}

/** --help: the usage on stdout, exit 0. */
export class SiteHelp extends Error {
  override name = "SiteHelp";
}

export function parseSiteArgs(argv: string[]): Edition[] {
  let values: { edition?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { edition: { type: "string", default: "candidate" }, help: { type: "boolean", short: "h" } } }));
  } catch (error) {
    throw new SiteUsageError(`${(error as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new SiteHelp(USAGE);
  if (values.edition === "all") return [...EDITIONS];
  const edition = EDITIONS.find((e) => e === values.edition);
  if (!edition) throw new SiteUsageError(`Unknown edition "${values.edition}": choose candidate, interviewer or all.\n${USAGE}`);
  return [edition];
}

async function main(argv: string[]): Promise<void> {
  let outDir: string | undefined;
  for (const edition of parseSiteArgs(argv)) {
    const result = await buildSite({ edition });
    outDir = dirname(result.dir);
    const code = result.highlighted > 0 ? `, ${result.highlighted} code blocks highlighted` : "";
    console.log(`${edition}: ${result.pages.length} pages in ${relative(KIT_ROOT, result.dir)}/ (${Math.round(result.elapsedMs)} ms${code})`);
  }
  if (outDir) console.log(`open ${relative(KIT_ROOT, writeStartPage(outDir))} in a browser`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    if (error instanceof SiteHelp) {
      console.log(error.message);
      process.exit(0);
    }
    // A problem in the kit's content is a sentence about that content; anything else is a bug, shown with its stack.
    const contentProblems = [SiteUsageError, SiteBuildError, SiteContentError, DiagramError, MarkdownError, RubricError];
    const expected = contentProblems.some((kind) => error instanceof kind);
    console.error(expected ? `site: ${(error as Error).message}` : error);
    process.exit(error instanceof SiteUsageError ? 2 : 1);
  });
}
