/**
 * Builds one edition of the site into `<outDir>/<edition>/`:
 *
 *   index.html                 home: what the kit is, how to start
 *   <lesson>/index.html        overview: the question -> unit map, grading, the take-home
 *   <lesson>/<unit>.html       lesson text, inline diagrams, contract, rubric
 *                              (+ reference solution and model answers, interviewer edition)
 *   interviewer-guide.html     printable rubrics and model answers (interviewer edition)
 *
 * Everything a page shows is read from the kit at build time: lessons and
 * diagrams, the starter's contract, the grader's checks. No network, no
 * browser; caches under `<outDir>/.cache/` keep a rebuild fast.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, posix, relative, sep } from "node:path";
import { z } from "zod";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { loadManifest, unitPaths, type Lesson, type Unit } from "../kit/manifest.ts";
import { loadReferenceContent, loadUnitContent, type ReferenceContent, type UnitContent } from "./content.ts";
import { HighlightCache, type CodeBlock } from "./highlight.ts";
import { escapeHtml } from "./html.ts";
import { DiagramError, inlineDiagramHtml } from "./inline-svg.ts";
import { MarkdownRenderer, type Heading, type RenderContext } from "./markdown.ts";
import { hrefBetween, questionMapTable, renderLayout, rubricTable, type Edition, type MappedQuestion, type PageRef } from "./pages.ts";
import { collectFromGraders, loadRubrics, type CollectRubrics, type CollectedCheck } from "./rubric.ts";
import { SlugRegistry, slugify } from "./slug.ts";

export type { Edition };

/** Ids the page templates use themselves; lesson headings never take them. */
export const RESERVED_IDS = ["main", "kit-exercise", "kit-rubric", "kit-reference", "kit-answers"] as const;

const SITE_SRC = join(KIT_ROOT, "site", "src");
const ASSETS = ["style.css", "favicon.svg"];

export class SiteBuildError extends Error {
  override name = "SiteBuildError";
}

export interface BuildOptions {
  edition: Edition;
  /** The kit to build from (default: this kit). */
  root?: string;
  /** Parent of the edition folders and of the caches (default: `<root>/site/dist`). */
  outDir?: string;
  /** Where rubrics come from (default: the graders, through Vitest). */
  collect?: CollectRubrics;
}

export interface BuildResult {
  edition: Edition;
  /** The edition's folder. */
  dir: string;
  /** Pages written, relative to `dir`. */
  pages: string[];
  elapsedMs: number;
  /** Code blocks shiki had to highlight (0 when no code changed since the last build). */
  highlighted: number;
}

const QuestionMapSchema = z.strictObject({
  lesson: z.string(),
  questions: z.record(
    z.string().regex(/^[A-Z]\d+$/, "seed ids look like B1, A3, M2"),
    z.strictObject({ unit: z.string(), question: z.string().min(1) }),
  ),
});
export type QuestionMap = z.infer<typeof QuestionMapSchema>;

/** The seed question -> unit maps (site/src/question-map.json). */
export function loadQuestionMaps(): QuestionMap[] {
  const file = join(SITE_SRC, "question-map.json");
  const parsed = QuestionMapSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new SiteBuildError(`${relative(KIT_ROOT, file)} is not a valid question map:\n${z.prettifyError(parsed.error)}`);
  return [parsed.data];
}

interface UnitPage extends PageRef {
  lesson: LessonPages;
  content: UnitContent;
  reference?: ReferenceContent;
  checks: CollectedCheck[];
}

interface LessonPages {
  lesson: Lesson;
  overview: PageRef & { indexFile?: string };
  units: UnitPage[];
  questions?: QuestionMap;
}

interface BuiltPage {
  html: string;
  ids: Set<string>;
}

function toPosix(path: string): string {
  return path.split(sep).join("/");
}

export async function buildSite(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const root = options.root ?? KIT_ROOT;
  const outDir = options.outDir ?? join(root, "site", "dist");
  const dir = join(outDir, options.edition);

  // Read every part first: a missing file fails the build before anything is written.
  const manifest = loadManifest(join(root, "lessons", "manifest.json"));
  const units = manifest.lessons.flatMap((lesson) => lesson.units.map((unit): [string, string] => [lesson.id, unit.id]));
  const contents = new Map(manifest.lessons.flatMap((lesson) => lesson.units.map((unit) => [`${lesson.id}/${unit.id}`, loadUnitContent(root, lesson, unit)] as const)));
  const rubrics = await loadRubrics({ root, units, collect: options.collect ?? collectFromGraders, cacheFile: join(outDir, ".cache", "rubrics.json") });
  const questionMaps = loadQuestionMaps();

  const lessons = manifest.lessons.map((lesson): LessonPages => {
    const indexFile = join(root, "lessons", lesson.id, "index.md");
    const pages: LessonPages = {
      lesson,
      overview: { path: `${lesson.id}/index.html`, title: lesson.title, indexFile: existsSync(indexFile) ? indexFile : undefined },
      units: [],
      questions: questionMaps.find((map) => map.lesson === lesson.id),
    };
    pages.units = lesson.units.map((unit: Unit) => ({
      path: `${lesson.id}/${unit.id}.html`,
      title: unit.title,
      lesson: pages,
      content: contents.get(`${lesson.id}/${unit.id}`)!,
      reference: options.edition === "interviewer" ? loadReferenceContent(root, lesson.id, unit.id) : undefined,
      checks: rubrics.get(`${lesson.id}/${unit.id}`)!,
    }));
    return pages;
  });

  const highlight = new HighlightCache(join(outDir, ".cache", `highlight-${options.edition}.json`));
  const site = new SiteBuild(root, options.edition, lessons, highlight);
  await site.highlightCode();
  const pages = site.renderAll();

  rmSync(dir, { recursive: true, force: true });
  for (const [path, { html }] of pages) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), html);
  }
  mkdirSync(join(dir, "assets"), { recursive: true });
  for (const asset of ASSETS) cpSync(join(SITE_SRC, asset), join(dir, "assets", asset));
  highlight.save();

  return { edition: options.edition, dir, pages: [...pages.keys()], elapsedMs: performance.now() - started, highlighted: highlight.highlightedNow };
}

/** One edition's pages, rendered in memory from content already read. */
class SiteBuild {
  private readonly markdown: MarkdownRenderer;
  private readonly home: PageRef = { path: "index.html", title: "checkpoint-kit" };
  private readonly guide?: PageRef;
  /** Every page in reading order: previous / next follow it. */
  private readonly order: PageRef[];
  /** Kit files that have a page of their own (lesson markdown), for rewriting links. */
  private readonly pageOfFile = new Map<string, string>();
  /** Heading id -> text of each unit's lesson, for the rubric's "read" links. */
  private readonly lessonSections = new Map<string, Map<string, string>>();
  private readonly pages = new Map<string, BuiltPage>();

  constructor(
    private readonly root: string,
    private readonly edition: Edition,
    private readonly lessons: LessonPages[],
    private readonly highlight: HighlightCache,
  ) {
    this.markdown = new MarkdownRenderer(highlight);
    if (edition === "interviewer") this.guide = { path: "interviewer-guide.html", title: "Interviewer guide" };
    this.order = [this.home, ...lessons.flatMap((l) => [l.overview, ...l.units]), ...(this.guide ? [this.guide] : [])];
    for (const l of lessons) {
      this.pageOfFile.set(join(root, "lessons", l.lesson.id, "index.md"), l.overview.path);
      for (const u of l.units) this.pageOfFile.set(unitPaths(l.lesson.id, u.content.unit.id, root).lesson, u.path);
    }
  }

  /** Highlights every code block the edition shows, so that shiki starts at most once per build. */
  async highlightCode(): Promise<void> {
    const documents = [this.siteText("home.md"), this.siteText("take-home.md")];
    const sources: CodeBlock[] = [];
    for (const l of this.lessons) {
      if (l.overview.indexFile) documents.push(readFileSync(l.overview.indexFile, "utf8"));
      for (const u of l.units) {
        documents.push(u.content.lessonPage.text, u.content.contract.text, gradeCommand(l.lesson, u.content.unit));
        if (u.reference) {
          documents.push(u.reference.answers.text);
          sources.push(...u.reference.files.map((file) => sourceBlock(file.text)));
        }
      }
    }
    if (this.guide) documents.push(this.siteText("interviewer-guide.md"));
    await this.highlight.prepare([...documents.flatMap((doc) => this.markdown.codeBlocks(doc)), ...sources]);
  }

  renderAll(): Map<string, BuiltPage> {
    this.renderHome();
    for (const l of this.lessons) {
      this.renderOverview(l);
      for (const u of l.units) this.renderUnit(u);
    }
    if (this.guide) this.renderGuide(this.guide);
    this.checkInternalLinks();
    return this.pages;
  }

  private siteText(name: string): string {
    return readFileSync(join(SITE_SRC, name), "utf8");
  }

  /** How one markdown document is rendered onto `page`; documents on one page share `slugs` and `figures`. */
  private context(page: PageRef, sourceFile: string, slugs: SlugRegistry, figures: Map<string, number>, extra: Partial<RenderContext> = {}): RenderContext {
    const root = this.root;
    const source = toPosix(relative(root, sourceFile));
    return {
      sourceFile,
      displayPath: source,
      slugs,
      resolveLink: (absolutePath, fragment) => {
        const target = this.pageOfFile.get(absolutePath);
        return target ? hrefBetween(page.path, target, fragment) : null;
      },
      renderDiagram: (absolutePath, alt, caption) => {
        const shown = toPosix(relative(root, absolutePath));
        if (!absolutePath.startsWith(join(root, "diagrams") + sep)) {
          throw new DiagramError(`${source} embeds ${shown}; diagrams live under diagrams/ (write the .mmd there and run \`npm run diagrams\`).`);
        }
        if (!existsSync(absolutePath)) {
          throw new DiagramError(`${source} embeds ${shown}, which does not exist. Add ${shown.replace(/\.svg$/, ".mmd")} and run \`npm run diagrams\`.`);
        }
        const base = slugify(basename(absolutePath, ".svg"));
        const seen = figures.get(base) ?? 0;
        figures.set(base, seen + 1);
        const idPrefix = `fig-${base}${seen > 0 ? `-${seen + 1}` : ""}`;
        return inlineDiagramHtml({ svg: readFileSync(absolutePath, "utf8"), file: shown, idPrefix, alt, caption });
      },
      ...extra,
    };
  }

  /** A fresh page: its heading registry and figure counter, and a renderer bound to both. */
  private page(page: PageRef) {
    const slugs = new SlugRegistry(RESERVED_IDS);
    const figures = new Map<string, number>();
    const render = (markdown: string, sourceFile: string, extra: Partial<RenderContext> = {}) =>
      this.markdown.render(markdown, this.context(page, sourceFile, slugs, figures, extra));
    return { slugs, render };
  }

  private write(page: PageRef, main: string, headings: Heading[], description: string): void {
    const index = this.order.indexOf(page);
    const html = renderLayout({
      edition: this.edition,
      page,
      home: this.home,
      lessons: this.lessons.map((l) => ({ lesson: l.lesson, overview: l.overview, units: l.units })),
      guide: this.guide,
      toc: headings.filter((h) => h.level === 2),
      previous: this.order[index - 1],
      next: this.order[index + 1],
      main,
      description,
    });
    this.pages.set(page.path, { html, ids: new Set(Array.from(html.matchAll(/\sid="([^"]+)"/g), (m) => m[1]!)) });
  }

  private renderHome(): void {
    const home = this.home;
    const { slugs, render } = this.page(home);
    const intro = render(this.siteText("home.md"), join(SITE_SRC, "home.md"));
    const cards = this.lessons
      .map((l) => {
        const units = l.units
          .map((u) => `<li><a href="${hrefBetween(home.path, u.path)}">${escapeHtml(u.title)}</a><span class="unit-summary">${escapeHtml(u.content.unit.summary)}</span></li>`)
          .join("");
        return `<section class="lesson-card"><h3><a href="${hrefBetween(home.path, l.overview.path)}">${escapeHtml(l.lesson.title)}</a></h3>
<p>${escapeHtml(l.lesson.summary)}</p>
<ol>${units}</ol></section>`;
      })
      .join("\n");
    const lessonsId = slugs.claim("Lessons");
    this.write(
      home,
      `${intro.html}\n<h2 id="${lessonsId}">Lessons</h2>\n${cards}`,
      [...intro.headings, { level: 2, id: lessonsId, text: "Lessons" }],
      "A training and interview kit on checkpointing and recovery for LLM agent workflows.",
    );
  }

  /** The lesson's own index.md when it has one; otherwise the manifest summary, the question map and the grading rules. */
  private renderOverview(l: LessonPages): void {
    const page = l.overview;
    const { slugs, render } = this.page(page);
    if (l.overview.indexFile) {
      // Unit ids in the overview's tables (the unit list, the question map) link to the unit pages.
      const cellLinks = new Map(l.units.map((u) => [u.content.unit.id, hrefBetween(page.path, u.path)]));
      const rendered = render(readFileSync(l.overview.indexFile, "utf8"), l.overview.indexFile, { cellLinks });
      this.write(page, rendered.html, rendered.headings, l.lesson.summary);
      return;
    }
    const questions = this.mappedQuestions(l);
    const unitsId = slugs.claim("The units");
    const mapId = slugs.claim("Where each interview question is answered");
    const grading = render(this.siteText("take-home.md"), join(SITE_SRC, "take-home.md"));
    const unitList = l.units.map((u) => `<li><a href="${hrefBetween(page.path, u.path)}">${escapeHtml(u.title)}</a>: ${escapeHtml(u.content.unit.summary)}</li>`).join("");
    const map = questions.length ? `<h2 id="${mapId}">Where each interview question is answered</h2>\n${questionMapTable(questions, page.path)}` : "";
    this.write(
      page,
      `<h1>${escapeHtml(l.lesson.title)}</h1>\n<p class="lead">${escapeHtml(l.lesson.summary)}</p>\n<h2 id="${unitsId}">The units</h2>\n<ol>${unitList}</ol>\n${map}\n${grading.html}`,
      [
        { level: 2, id: unitsId, text: "The units" },
        ...(questions.length ? [{ level: 2, id: mapId, text: "Where each interview question is answered" }] : []),
        ...grading.headings,
      ],
      l.lesson.summary,
    );
  }

  private renderUnit(u: UnitPage): void {
    const { content } = u;
    const l = u.lesson;
    const { render } = this.page(u);
    const lesson = render(content.lessonPage.text, content.lessonPage.absolutePath);
    const sections = new Map(lesson.headings.map((h) => [h.id, h.text]));
    this.lessonSections.set(u.path, sections);
    for (const check of u.checks) {
      if (!sections.has(check.section)) {
        throw new SiteBuildError(
          `The check "${check.title}" of ${l.lesson.id}/${content.unit.id} points its hint at section "${check.section}", ` +
            `but ${content.lessonPage.path} has no heading with that slug. Its headings: ${[...sections.keys()].join(", ")}.`,
        );
      }
    }
    const contractFile = join(this.root, content.contract.path);
    const contract = render(content.contract.text, contractFile, { headingOffset: 3 });
    const grade = render(gradeCommand(l.lesson, content.unit), contractFile);
    const title = lesson.headings.some((h) => h.level === 1) ? "" : `<h1>${escapeHtml(content.unit.title)}</h1>\n`;
    const rubric = rubricTable({ checks: u.checks, edition: this.edition, sectionTitle: (slug) => sections.get(slug)!, sectionHref: (slug) => `#${slug}` });

    const parts = [
      `<p class="eyebrow"><a href="${hrefBetween(u.path, l.overview.path)}">${escapeHtml(l.lesson.title)}</a> · unit ${content.number} of ${l.units.length}</p>`,
      `${title}${lesson.html}`,
      `<section class="kit-section" aria-labelledby="kit-exercise"><h2 id="kit-exercise">The exercise</h2>
<p>Complete <code>${escapeHtml(content.contract.path)}</code>. Its opening comment is the contract:</p>
<div class="contract">${contract.html}</div>
${grade.html}</section>`,
      `<section class="kit-section" aria-labelledby="kit-rubric"><h2 id="kit-rubric">Rubric</h2>
<p>The checks the grader runs, in the order it runs them. Each links to the section of this lesson it tests.</p>
${rubric}</section>`,
    ];
    const headings: Heading[] = [...lesson.headings, { level: 2, id: "kit-exercise", text: "The exercise" }, { level: 2, id: "kit-rubric", text: "Rubric" }];
    if (u.reference) {
      const files = u.reference.files
        .map((file) => `<figure class="source-file"><figcaption><code>${escapeHtml(file.path)}</code></figcaption>${this.highlight.html(sourceBlock(file.text))}</figure>`)
        .join("\n");
      // Model answers share the page with the lesson: their anchors get a prefix so the lesson's stay as graders name them.
      const answers = render(u.reference.answers.text, u.reference.answers.absolutePath, { idPrefix: "answers-", headingOffset: 2, dropTitle: true });
      parts.push(
        `<section class="kit-section" aria-labelledby="kit-reference"><h2 id="kit-reference">Reference solution</h2>\n${files}</section>`,
        `<section class="kit-section" aria-labelledby="kit-answers"><h2 id="kit-answers">Model answers</h2>\n${answers.html}</section>`,
      );
      headings.push({ level: 2, id: "kit-reference", text: "Reference solution" }, { level: 2, id: "kit-answers", text: "Model answers" });
    }
    this.write(u, parts.join("\n"), headings, content.unit.summary);
  }

  /** Printable: how to grade, then per unit its questions, full rubric and model answers. */
  private renderGuide(guide: PageRef): void {
    const { slugs, render } = this.page(guide);
    const intro = render(this.siteText("interviewer-guide.md"), join(SITE_SRC, "interviewer-guide.md"));
    const headings = [...intro.headings];
    const units: string[] = [];
    for (const l of this.lessons) {
      const questions = this.mappedQuestions(l);
      for (const u of l.units) {
        const unitId = u.content.unit.id;
        const id = slugs.claim(`unit ${unitId}`);
        const sections = this.lessonSections.get(u.path)!;
        const own = questions.filter((q) => q.unit.id === unitId);
        const questionList = own.length
          ? `<h3>Questions</h3>\n<ul class="guide-questions">${own.map((q) => `<li><strong>${escapeHtml(q.id)}</strong> ${q.questionHtml}</li>`).join("")}</ul>`
          : "";
        const answers = render(u.reference!.answers.text, u.reference!.answers.absolutePath, { idPrefix: `${unitId}-answers-`, headingOffset: 3, dropTitle: true });
        const rubric = rubricTable({
          checks: u.checks,
          edition: this.edition,
          sectionTitle: (slug) => sections.get(slug)!,
          sectionHref: (slug) => hrefBetween(guide.path, u.path, slug),
        });
        units.push(`<section class="guide-unit" aria-labelledby="${id}">
<h2 id="${id}">${u.content.number}. ${escapeHtml(u.title)}</h2>
<p class="guide-links"><a href="${hrefBetween(guide.path, u.path)}">Lesson, contract and reference solution</a></p>
${questionList}
<h3>Rubric</h3>
${rubric}
<h3>Model answers</h3>
${answers.html}
</section>`);
        headings.push({ level: 2, id, text: `${u.content.number}. ${u.title}` });
      }
    }
    this.write(guide, `${intro.html}\n${units.join("\n")}`, headings, "Rubrics with hidden checks and model answers, for grading and the live interview.");
  }

  private mappedQuestions(l: LessonPages): MappedQuestion[] {
    if (!l.questions) return [];
    return Object.entries(l.questions.questions).map(([id, { unit, question }]) => {
      const page = l.units.find((u) => u.content.unit.id === unit);
      if (!page) throw new SiteBuildError(`site/src/question-map.json maps ${id} to unit "${unit}", which ${l.lesson.id} does not have.`);
      return { id, question, questionHtml: this.markdown.renderInline(question), unit: { id: unit, path: page.path, title: page.title } };
    });
  }

  /** Every href between pages must land on a page, and on an element when it names one. */
  private checkInternalLinks(): void {
    const broken: string[] = [];
    for (const [path, { html }] of this.pages) {
      for (const [, href] of html.matchAll(/\shref="([^"]*)"/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(href!) || href!.startsWith("//")) continue;
        const [target, fragment] = href!.split("#") as [string, string | undefined];
        const resolved = target === "" ? path : posix.normalize(posix.join(posix.dirname(path), target));
        if (resolved.startsWith("assets/")) {
          if (!ASSETS.includes(resolved.slice("assets/".length))) broken.push(`${path}: ${href} (no such asset)`);
          continue;
        }
        const page = this.pages.get(resolved);
        if (!page) broken.push(`${path}: ${href} (no such page)`);
        else if (fragment && !page.ids.has(decodeURIComponent(fragment))) broken.push(`${path}: ${href} (no element with id "${fragment}")`);
      }
    }
    if (broken.length > 0) throw new SiteBuildError(`Broken links between pages:\n  ${broken.join("\n  ")}`);
  }
}

function sourceBlock(text: string): CodeBlock {
  return { code: text.replace(/\n$/, ""), lang: "ts" };
}

function gradeCommand(lesson: Lesson, unit: Unit): string {
  return `Grade it, and keep it graded while you work:\n\n\`\`\`bash\nnpm run grade ${lesson.id} ${unit.id}\nnpm run grade ${lesson.id} ${unit.id} -- --watch\n\`\`\`\n`;
}
