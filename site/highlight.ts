/**
 * Syntax highlighting with shiki, behind an on-disk cache. Creating a shiki
 * highlighter costs about half a second, more than the whole rest of a rebuild,
 * so a build first asks which blocks it has not highlighted before and starts
 * shiki only when there are any. Rendering then reads the cache synchronously.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { HighlighterCore } from "shiki/core";
import { escapeHtml } from "./html.ts";

const THEME = "github-light";

/** Fence languages the lessons use, and the grammar each one needs. Anything else is shown as plain text. */
const GRAMMAR_OF: Record<string, string> = {
  ts: "typescript",
  typescript: "typescript",
  js: "typescript",
  javascript: "typescript",
  bash: "bash",
  sh: "bash",
  shell: "bash",
  console: "bash",
  json: "json",
  jsonc: "json",
  sql: "sql",
  lua: "lua",
};

export interface CodeBlock {
  code: string;
  /** The fence's language as written (`ts`, `bash`, ...); empty for none. */
  lang: string;
}

function grammarOf(lang: string): string | undefined {
  return GRAMMAR_OF[lang.trim().toLowerCase()];
}

function keyOf({ code, lang }: CodeBlock): string {
  return createHash("sha256").update(`${THEME}\0${grammarOf(lang) ?? "text"}\0${code}`).digest("hex");
}

let highlighter: Promise<HighlighterCore> | undefined;

function loadHighlighter(): Promise<HighlighterCore> {
  highlighter ??= (async () => {
    const [{ createHighlighterCore }, { createOnigurumaEngine }, theme, ...langs] = await Promise.all([
      import("shiki/core"),
      import("shiki/engine/oniguruma"),
      import("shiki/themes/github-light.mjs"),
      import("shiki/langs/typescript.mjs"),
      import("shiki/langs/bash.mjs"),
      import("shiki/langs/json.mjs"),
      import("shiki/langs/sql.mjs"),
      import("shiki/langs/lua.mjs"),
    ]);
    return createHighlighterCore({
      themes: [theme.default],
      langs: langs.map((lang) => lang.default),
      engine: createOnigurumaEngine(import("shiki/wasm")),
    });
  })();
  return highlighter;
}

/**
 * Highlighted HTML for code blocks, keyed by content. One cache file per edition,
 * rewritten after each build with only the entries that build used, so it never
 * grows beyond the site's current code.
 */
export class HighlightCache {
  private readonly stored: Record<string, string>;
  private readonly used = new Map<string, string>();
  /** How many blocks this build had to highlight (zero on a rebuild with no code change). */
  highlightedNow = 0;

  constructor(private readonly file: string) {
    this.stored = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : {};
  }

  /** Highlights every block not seen before. Call before `html()` for the same blocks. */
  async prepare(blocks: Iterable<CodeBlock>): Promise<void> {
    const missing = new Map<string, CodeBlock>();
    for (const block of blocks) {
      const key = keyOf(block);
      if (this.used.has(key)) continue;
      const cached = this.stored[key];
      if (cached !== undefined) this.used.set(key, cached);
      else missing.set(key, block);
    }
    if (missing.size === 0) return;
    const shiki = await loadHighlighter();
    for (const [key, { code, lang }] of missing) {
      const grammar = grammarOf(lang);
      const html = grammar
        ? shiki.codeToHtml(code, { lang: grammar, theme: THEME })
        : `<pre class="shiki plain"><code>${escapeHtml(code)}</code></pre>`;
      this.used.set(key, html);
      this.highlightedNow++;
    }
  }

  /** The highlighted `<pre>` for a block; the block must have gone through `prepare()`. */
  html(block: CodeBlock): string {
    const html = this.used.get(keyOf(block));
    if (html === undefined) throw new Error(`Internal error: a ${block.lang || "plain"} code block was rendered before it was highlighted.`);
    return html.replace(/^<pre class="shiki/, `<pre data-lang="${escapeHtml(block.lang || "text")}" class="shiki`);
  }

  save(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileSync(this.file, JSON.stringify(Object.fromEntries(this.used)));
  }
}
