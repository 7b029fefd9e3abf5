/**
 * site/dist/index.html: the page to open. It links to each edition that has
 * been built (candidate: lessons, contracts and public rubric; interviewer: also
 * reference solutions, model answers and hidden checks) and says which is which.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { escapeHtml } from "./html.ts";
import { EDITIONS, SITE_NAME, type Edition } from "./pages.ts";

const ABOUT: Record<Edition, string> = {
  candidate: "The lessons with their diagrams, each exercise's contract and the public rubric. Safe to share with candidates and self-learners.",
  interviewer: "Everything in the candidate edition, plus the reference solutions, model answers, hidden checks and the interviewer guide. Do not share.",
};

export function startPageHtml(built: readonly Edition[]): string {
  const items = EDITIONS.map((edition) =>
    built.includes(edition)
      ? `<li><a href="${edition}/index.html"><strong>${edition[0]!.toUpperCase()}${edition.slice(1)} edition</strong></a><br>${escapeHtml(ABOUT[edition])}</li>`
      : `<li><strong>${edition[0]!.toUpperCase()}${edition.slice(1)} edition</strong>: not built; run <code>npm run site -- --edition ${edition}</code>.<br>${escapeHtml(ABOUT[edition])}</li>`,
  ).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${SITE_NAME}</title>
<style>
body { max-width: 42rem; margin: 3rem auto; padding: 0 1.25rem; font: 17px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", sans-serif; color: #1d2733; }
li { margin: 0 0 1.1rem; }
a { color: #2f5f96; }
</style>
</head>
<body>
<h1>${SITE_NAME}</h1>
<p>Checkpointing and recovery for LLM agent workflows. The site comes in two editions; open one:</p>
<ul>
${items}
</ul>
</body>
</html>
`;
}

/** Writes `<outDir>/index.html` for the editions whose folders hold a built site. */
export function writeStartPage(outDir: string): string {
  const built = EDITIONS.filter((edition) => existsSync(join(outDir, edition, "index.html")));
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, "index.html");
  writeFileSync(file, startPageHtml(built));
  return file;
}
