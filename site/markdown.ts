/**
 * Markdown to HTML for the site: markdown-it with heading anchors (slugs from
 * ./slug.ts, unique per page), shiki highlighting through the build's cache,
 * diagrams inlined as SVG, and relative links between kit files turned into
 * links between pages (or into plain text when the target is not on the site).
 */
import { dirname, resolve } from "node:path";
import MarkdownIt from "markdown-it";
import type Token from "markdown-it/lib/token.mjs";
import type StateCore from "markdown-it/lib/rules_core/state_core.mjs";
import anchor from "markdown-it-anchor";
import type { CodeBlock, HighlightCache } from "./highlight.ts";
import { escapeHtml } from "./html.ts";
import { headingText, SlugRegistry } from "./slug.ts";

export class MarkdownError extends Error {
  override name = "MarkdownError";
}

export interface Heading {
  level: number;
  id: string;
  text: string;
}

/** What a page tells the renderer about the document it is rendering. */
export interface RenderContext {
  /** Absolute path of the markdown file: relative links and images resolve against it. */
  sourceFile: string;
  /** Path shown in error messages. */
  displayPath: string;
  /** The page's heading ids; shared by every document rendered onto the same page. */
  slugs: SlugRegistry;
  /** Prepended to this document's heading ids (model answers use `answers-`). */
  idPrefix?: string;
  /** Lowest heading level of this document on the page: 2 turns its `#` into `<h2>`. */
  headingOffset?: number;
  /** Leave out the document's leading `# Title` (the page has its own). */
  dropTitle?: boolean;
  /** Table cells whose whole text is a key become links to its href (unit ids in a lesson's tables). */
  cellLinks?: Map<string, string>;
  /** href for a kit file linked from the document, or null when it has no page on the site. */
  resolveLink(absolutePath: string, fragment: string): string | null;
  /** The HTML that replaces `![alt](path.svg)`. */
  renderDiagram(absolutePath: string, alt: string, caption: string | undefined): string;
}

interface Env {
  context: RenderContext;
  headings: Heading[];
}

const URL_WITH_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

function normalizedCode(content: string): string {
  return content.replace(/\n$/, "");
}

function fenceLang(info: string): string {
  return info.trim().split(/\s+/)[0] ?? "";
}

export class MarkdownRenderer {
  private readonly md: MarkdownIt;

  constructor(private readonly highlight: HighlightCache) {
    this.md = new MarkdownIt({ html: true, linkify: false, typographer: false });
    this.md.options.highlight = (code, lang) => this.highlight.html({ code: normalizedCode(code), lang: fenceLang(lang) });
    this.md.core.ruler.push("kit-headings", (state) => adjustHeadings(state));
    this.md.core.ruler.push("kit-cell-links", (state) => linkCells(state));
    this.md.use(anchor, {
      level: 1,
      tabIndex: false,
      slugifyWithState: (title: string, state: StateCore) => {
        const { context } = state.env as Env;
        return context.slugs.claim(title, context.idPrefix);
      },
      getTokensText: headingText,
      permalink: anchor.permalink.linkInsideHeader({ symbol: "#", placement: "after", ariaHidden: true, class: "anchor" }),
    });
    this.md.core.ruler.push("kit-collect-headings", (state) => collectHeadings(state));
    this.md.core.ruler.push("kit-figures", (state) => unwrapFigures(state));
    this.md.renderer.rules.image = (tokens, idx, _options, env: Env) => renderImage(tokens[idx]!, env.context);
    this.md.renderer.rules.link_open = (tokens, idx, options, env: Env, self) => renderLinkOpen(tokens, idx, env.context, () => self.renderToken(tokens, idx, options));
    this.md.renderer.rules.link_close = (tokens, idx, options, _env, self) =>
      tokens[idx]!.meta?.unlinked ? "</span>" : self.renderToken(tokens, idx, options);
    // Tables scroll sideways on their own at phone widths instead of widening the page.
    this.md.renderer.rules.table_open = () => '<div class="table-scroll"><table>\n';
    this.md.renderer.rules.table_close = () => "</table></div>\n";
  }

  /** The fenced code blocks of a document, for HighlightCache.prepare(). */
  codeBlocks(markdown: string): CodeBlock[] {
    return this.md
      .parse(markdown, detachedEnv())
      .filter((token) => token.type === "fence")
      .map((token) => ({ code: normalizedCode(token.content), lang: fenceLang(token.info) }));
  }

  render(markdown: string, context: RenderContext): { html: string; headings: Heading[] } {
    const env: Env = { context, headings: [] };
    return { html: this.md.render(markdown, env), headings: env.headings };
  }

  /** One line of markdown (no paragraph), e.g. a question with `code` in it. Links to kit files become plain text. */
  renderInline(markdown: string): string {
    return this.md.renderInline(markdown, detachedEnv());
  }
}

/** For markdown that belongs to no page: its slugs go to a throwaway registry, its kit links nowhere. */
function detachedEnv(): Env {
  const context: RenderContext = {
    sourceFile: "",
    displayPath: "(inline text)",
    slugs: new SlugRegistry(),
    resolveLink: () => null,
    renderDiagram: () => {
      throw new MarkdownError("Diagrams can only be embedded in lesson pages.");
    },
  };
  return { context, headings: [] };
}

function adjustHeadings(state: StateCore): void {
  const context = (state.env as Env).context;
  if (!context) return;
  const [first, , third] = state.tokens;
  if (context.dropTitle && first?.type === "heading_open" && first.tag === "h1" && third?.type === "heading_close") {
    state.tokens.splice(0, 3);
  }
  const offset = context.headingOffset ?? 1;
  if (offset <= 1) return;
  for (const token of state.tokens) {
    if (token.type === "heading_open" || token.type === "heading_close") {
      token.tag = `h${Math.min(6, Number(token.tag.slice(1)) + offset - 1)}`;
    }
  }
}

function linkCells(state: StateCore): void {
  const links = (state.env as Env).context?.cellLinks;
  if (!links) return;
  state.tokens.forEach((token, i) => {
    if (token.type !== "inline" || state.tokens[i - 1]?.type !== "td_open") return;
    const href = links.get(token.content.trim());
    if (href === undefined) return;
    const open = new state.Token("link_open", "a", 1);
    open.attrSet("href", href);
    open.attrSet("class", "cell-link");
    const text = new state.Token("text", "", 0);
    text.content = token.content.trim();
    token.children = [open, text, new state.Token("link_close", "a", -1)];
  });
}

function collectHeadings(state: StateCore): void {
  const env = state.env as Env;
  state.tokens.forEach((token, i) => {
    if (token.type !== "heading_open") return;
    env.headings.push({
      level: Number(token.tag.slice(1)),
      id: token.attrGet("id") ?? "",
      text: headingText(state.tokens[i + 1]?.children ?? []),
    });
  });
}

/** A paragraph holding nothing but a diagram renders as the bare <figure> (a figure may not sit inside <p>). */
function unwrapFigures(state: StateCore): void {
  const tokens = state.tokens;
  for (let i = 0; i + 2 < tokens.length; i++) {
    const [open, inline, close] = [tokens[i]!, tokens[i + 1]!, tokens[i + 2]!];
    if (open.type !== "paragraph_open" || inline.type !== "inline" || close.type !== "paragraph_close") continue;
    const content = (inline.children ?? []).filter((child) => !(child.type === "text" && child.content.trim() === "") && child.type !== "softbreak");
    if (content.length > 0 && content.every((child) => child.type === "image")) {
      open.hidden = true;
      close.hidden = true;
    }
  }
}

function localTarget(href: string, context: RenderContext): { path: string; fragment: string } | null {
  if (href === "" || href.startsWith("#") || URL_WITH_SCHEME.test(href) || href.startsWith("//")) return null;
  const hashAt = href.indexOf("#");
  const pathPart = hashAt === -1 ? href : href.slice(0, hashAt);
  const fragment = hashAt === -1 ? "" : href.slice(hashAt + 1);
  return { path: resolve(dirname(context.sourceFile), decodeURI(pathPart)), fragment };
}

function renderImage(token: Token, context: RenderContext): string {
  const src = token.attrGet("src") ?? "";
  const target = localTarget(src, context);
  if (!target || !target.path.endsWith(".svg")) {
    throw new MarkdownError(
      `${context.displayPath} embeds the image "${src}". The site only embeds diagrams rendered from diagrams/**/*.mmd, ` +
        `e.g. ![what it shows](../../diagrams/lesson-11/serde-envelope.svg); nothing is loaded from the network.`,
    );
  }
  return context.renderDiagram(target.path, token.content, token.attrGet("title") ?? undefined);
}

function renderLinkOpen(tokens: Token[], idx: number, context: RenderContext, renderDefault: () => string): string {
  const token = tokens[idx]!;
  const href = token.attrGet("href") ?? "";
  const target = localTarget(href, context);
  if (!target) return renderDefault();
  const pageHref = context.resolveLink(target.path, target.fragment);
  if (pageHref !== null) {
    token.attrSet("href", pageHref);
    return renderDefault();
  }
  // A kit file with no page (source code, a README): keep the words, drop the dead link.
  let depth = 0;
  for (let j = idx + 1; j < tokens.length; j++) {
    const next = tokens[j]!;
    if (next.type === "link_open") depth++;
    if (next.type === "link_close" && depth-- === 0) {
      next.meta = { ...(next.meta as object), unlinked: true };
      break;
    }
  }
  return `<span class="kit-path" title="${escapeHtml(`In the kit: ${href}`)}">`;
}
