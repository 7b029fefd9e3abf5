/**
 * Heading slugs: the anchors of lesson sections. A grader hint's `section` names
 * one of these, so the grader, the hint command and the site must agree on them;
 * this module is the single definition.
 *
 *   slugify("Typed tags")                  -> "typed-tags"
 *   slugify("SCAN, not KEYS: why?")        -> "scan-not-keys-why"
 *   slugify("Read-modify-write & retries") -> "read-modify-write-retries"
 */
import MarkdownIt from "markdown-it";

/** Lowercase, punctuation dropped, runs of spaces and hyphens joined into one `-`. */
export function slugify(text: string): string {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, "")
    .trim()
    .replace(/[\s-]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/**
 * Gives every heading on one page a distinct id. The page registers its own fixed
 * ids first, and each markdown document on it may carry a prefix (model answers
 * use `answers-`), so a lesson heading always keeps its plain slug.
 */
export class SlugRegistry {
  private readonly used = new Set<string>();

  constructor(reserved: Iterable<string> = []) {
    for (const id of reserved) this.used.add(id);
  }

  claim(text: string, prefix = ""): string {
    const base = `${prefix}${slugify(text) || "section"}`;
    let id = base;
    for (let n = 1; this.used.has(id); n++) id = `${base}-${n}`;
    this.used.add(id);
    return id;
  }
}

const headingParser = new MarkdownIt({ html: true });

/** Text of a heading as markdown-it-anchor sees it: plain text and inline code only. */
export function headingText(children: ReadonlyArray<{ type: string; content: string }>): string {
  return children
    .filter((token) => token.type === "text" || token.type === "code_inline")
    .map((token) => token.content)
    .join("")
    .trim();
}

/** The anchors a lesson page's headings get on the site, in document order. */
export function headingSlugs(markdown: string): string[] {
  const registry = new SlugRegistry();
  const tokens = headingParser.parse(markdown, {});
  const slugs: string[] = [];
  tokens.forEach((token, i) => {
    if (token.type === "heading_open") slugs.push(registry.claim(headingText(tokens[i + 1]?.children ?? [])));
  });
  return slugs;
}
