/**
 * HTML templates: the page layout (top bar, unit sidebar, previous / next) and
 * the generated blocks (rubric tables, the question map). Plain functions over
 * strings; every value that comes from content is escaped here or was rendered
 * by markdown-it.
 */
import { posix } from "node:path";
import type { Lesson } from "../kit/manifest.ts";
import { escapeHtml } from "./html.ts";
import type { Heading } from "./markdown.ts";
import type { CollectedCheck } from "./rubric.ts";

export type Edition = "candidate" | "interviewer";

export const EDITIONS: readonly Edition[] = ["candidate", "interviewer"];

/** A page of the built site. `path` is relative to the edition's folder, with forward slashes. */
export interface PageRef {
  path: string;
  title: string;
}

/** A link from the page at `from` to the page at `to` (both edition-relative), working from file:// too. */
export function hrefBetween(from: string, to: string, fragment = ""): string {
  const relativePath = posix.relative(posix.dirname(from), to) || posix.basename(to);
  return fragment ? `${relativePath}#${fragment}` : relativePath;
}

export interface NavLesson {
  lesson: Lesson;
  overview: PageRef;
  units: PageRef[];
}

export interface Layout {
  edition: Edition;
  page: PageRef;
  home: PageRef;
  lessons: NavLesson[];
  guide?: PageRef;
  /** Sections of the current page listed under it in the sidebar (its h2 headings). */
  toc: Heading[];
  previous?: PageRef;
  next?: PageRef;
  main: string;
  description: string;
}

function navList(layout: Layout): string {
  const link = (target: PageRef, label: string, className = "") => {
    const current = target.path === layout.page.path;
    const attributes = `${className ? ` class="${className}"` : ""}${current ? ' aria-current="page"' : ""}`;
    return `<a href="${hrefBetween(layout.page.path, target.path)}"${attributes}>${escapeHtml(label)}</a>`;
  };
  const toc = layout.toc.length
    ? `<ul class="nav-toc">${layout.toc.map((h) => `<li><a href="#${h.id}">${escapeHtml(h.text)}</a></li>`).join("")}</ul>`
    : "";
  const lessons = layout.lessons
    .map(({ lesson, overview, units }) => {
      const unitItems = units
        .map((unit, i) => `<li>${link(unit, `${i + 1}. ${unit.title}`)}${unit.path === layout.page.path ? toc : ""}</li>`)
        .join("");
      return `<div class="nav-lesson">${link(overview, lesson.title, "nav-lesson-title")}${overview.path === layout.page.path ? toc : ""}<ol class="nav-units">${unitItems}</ol></div>`;
    })
    .join("");
  const guide = layout.guide ? `<div class="nav-guide">${link(layout.guide, layout.guide.title)}</div>` : "";
  return `${link(layout.home, "Home", "nav-home")}${lessons}${guide}`;
}

function pager(layout: Layout): string {
  if (!layout.previous && !layout.next) return "";
  const side = (target: PageRef | undefined, rel: "prev" | "next", label: string) =>
    target
      ? `<a class="pager-${rel}" rel="${rel}" href="${hrefBetween(layout.page.path, target.path)}"><span class="pager-label">${label}</span><span class="pager-title">${escapeHtml(target.title)}</span></a>`
      : `<span class="pager-${rel}"></span>`;
  return `<nav class="pager" aria-label="Previous and next page">${side(layout.previous, "prev", "Previous")}${side(layout.next, "next", "Next")}</nav>`;
}

export const SITE_NAME = "checkpoint-kit";

/** "Page · checkpoint-kit", or the site's name alone on the page that bears it. */
export function pageTitle(title: string): string {
  return title === SITE_NAME ? SITE_NAME : `${title} · ${SITE_NAME}`;
}

export function renderLayout(layout: Layout): string {
  const asset = (name: string) => hrefBetween(layout.page.path, `assets/${name}`);
  const editionLabel =
    layout.edition === "interviewer"
      ? `<span class="edition edition-interviewer" title="Contains reference solutions, model answers and hidden checks">Interviewer edition</span>`
      : `<span class="edition edition-candidate">Candidate edition</span>`;
  const nav = navList(layout);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(pageTitle(layout.page.title))}</title>
<meta name="description" content="${escapeHtml(layout.description)}">
<link rel="icon" href="${asset("favicon.svg")}" type="image/svg+xml">
<link rel="stylesheet" href="${asset("style.css")}">
</head>
<body data-edition="${layout.edition}">
<a class="skip-link" href="#main">Skip to the content</a>
<header class="topbar">
<a class="brand" href="${hrefBetween(layout.page.path, layout.home.path)}">checkpoint-kit</a>
${editionLabel}
</header>
<div class="layout">
<nav class="sidebar" aria-label="Contents">${nav}</nav>
<main id="main">
<details class="mobile-nav"><summary>Contents</summary><nav aria-label="Contents">${nav}</nav></details>
<article>
${layout.main}
</article>
${pager(layout)}
</main>
</div>
<footer class="footer">checkpoint-kit · ${layout.edition} edition · built from the kit's lessons, starters and graders</footer>
</body>
</html>
`;
}

const TIER_LABEL: Record<CollectedCheck["tier"], string> = { core: "core", excellence: "excellence" };

export interface RubricView {
  checks: CollectedCheck[];
  edition: Edition;
  /** Heading text for each section slug of the lesson page, to label the "read" links. */
  sectionTitle(slug: string): string;
  /** href of a lesson section from the page the table is on. */
  sectionHref(slug: string): string;
}

function weightOf(checks: CollectedCheck[]): number {
  return checks.reduce((sum, check) => sum + check.weight, 0);
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/**
 * The rubric as graded. The candidate edition lists public checks and only
 * counts the hidden ones; the interviewer edition describes every check with its hint.
 */
export function rubricTable({ checks, edition, sectionTitle, sectionHref }: RubricView): string {
  const shown = edition === "interviewer" ? checks : checks.filter((check) => check.visibility === "public");
  const hidden = checks.filter((check) => check.visibility === "hidden");
  const rows = shown
    .map((check, i) => {
      const hint = edition === "interviewer" ? `<div class="check-hint">${escapeHtml(check.hint)}</div>` : "";
      const badge = check.visibility === "hidden" ? ` <span class="badge badge-hidden">hidden · ${escapeHtml(check.category)}</span>` : "";
      return `<tr${check.visibility === "hidden" ? ' class="hidden-check"' : ""}>
<td class="num">${i + 1}</td>
<td><span class="check-title">${escapeHtml(check.title)}</span>${badge}${hint}</td>
<td><span class="tier tier-${check.tier}">${TIER_LABEL[check.tier]}</span></td>
<td class="num">${check.weight}</td>
<td><a href="${sectionHref(check.section)}">${escapeHtml(sectionTitle(check.section))}</a></td>
</tr>`;
    })
    .join("\n");
  const hiddenNote =
    edition === "candidate" && hidden.length > 0
      ? `<p class="rubric-hidden">+ ${plural(hidden.length, "hidden check")} (categories: ${[...new Set(hidden.map((c) => c.category))].sort().join(", ")}), run when an interviewer grades a returned submission. They count toward the tier like the others.</p>`
      : "";
  const core = checks.filter((check) => check.tier === "core");
  const excellence = checks.filter((check) => check.tier === "excellence");
  const summary = `<ul class="rubric-tiers">
<li><strong>Adequate</strong>: all ${plural(core.length, "core check")} pass (weight ${weightOf(core)}).</li>
<li><strong>Excellent</strong>: adequate, and all ${plural(excellence.length, "excellence check")} pass (weight ${weightOf(excellence)}).</li>
<li><strong>Needs improvement</strong>: the code does not load, or a core check fails.</li>
</ul>`;
  return `<div class="table-scroll"><table class="rubric">
<thead><tr><th class="num">#</th><th>Check</th><th>Tier</th><th class="num">Weight</th><th>Read</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>
${hiddenNote}
${summary}`;
}

export interface MappedQuestion {
  id: string;
  question: string;
  /** The question rendered as inline markdown. */
  questionHtml: string;
  unit: PageRef & { id: string };
}

/** The seed question -> unit map, used when the lesson has no index.md of its own. */
export function questionMapTable(questions: MappedQuestion[], fromPage: string): string {
  const rows = questions
    .map(
      (q) =>
        `<tr><td class="num">${escapeHtml(q.id)}</td><td>${q.questionHtml}</td><td><a class="cell-link" href="${hrefBetween(fromPage, q.unit.path)}">${escapeHtml(q.unit.id)}</a></td></tr>`,
    )
    .join("\n");
  return `<div class="table-scroll"><table class="question-map">
<thead><tr><th class="num">#</th><th>Question</th><th>Unit</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>`;
}
