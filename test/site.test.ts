// The site builder, without a browser: a small fixture kit for the rules (editions,
// rubric, diagrams, links, clear errors), then the real kit's two editions.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { loadManifest, unitPaths } from "../kit/manifest.ts";
import { buildSite, loadQuestionMaps, type BuildResult } from "../site/builder.ts";
import { parseSiteArgs } from "../site/build.ts";
import { contractMarkdown, extractContract, isTypeScript } from "../site/content.ts";
import { startPageHtml, writeStartPage } from "../site/start-page.ts";
import { distinctiveReferenceLines, pageText } from "../site/reference-lines.ts";
import { prefixSvgIds } from "../site/inline-svg.ts";
import type { CollectRubrics, CollectedCheck } from "../site/rubric.ts";
import { headingSlugs, slugify } from "../site/slug.ts";

const scratch = mkdtempSync(join(tmpdir(), "site-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function writeFiles(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

const DIAGRAM = `<!-- checkpoint-kit diagram source-sha256: ${"0".repeat(64)} -->
<svg id="diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40"><style>#diagram .node{fill:#eee}</style><defs><marker id="arrowhead"><path d="M0,0L4,2L0,4"/></marker></defs><rect class="node" width="40" height="20"/><line x1="40" y1="10" x2="90" y2="10" marker-end="url(#arrowhead)"/></svg>`;

const SECRET_LINE = "const fixtureSecret = computeTheReferenceAnswerCarefully(input);";

function fixtureKit(name: string, overrides: Record<string, string | null> = {}): string {
  const root = join(scratch, name);
  const files: Record<string, string | null> = {
    "lessons/manifest.json": JSON.stringify({
      lessons: [
        {
          id: "lesson-99",
          title: "Fixture lesson",
          summary: "A lesson that exists only in this test.",
          units: [
            { id: "alpha", title: "Alpha unit", summary: "The first unit." },
            { id: "beta", title: "Beta unit", summary: "The second unit." },
          ],
        },
      ],
    }),
    "lessons/lesson-99/alpha.md": `# Alpha unit

An introduction that links to [the next unit](beta.md#the-idea) and to [its starter](../../exercises/lesson-99/alpha/index.ts).

## Typed tags

![the flow of a checkpoint](../../diagrams/lesson-99/alpha-flow.svg "Figure 1")

![the same flow again](../../diagrams/lesson-99/alpha-flow.svg)

\`\`\`ts
const x: number = 1;
\`\`\`

## Common mistakes: \`KEYS\` & friends

Text.
`,
    "lessons/lesson-99/beta.md": "# Beta unit\n\n## The idea\n\nBeta text.\n",
    "diagrams/lesson-99/alpha-flow.svg": DIAGRAM,
    "exercises/lesson-99/alpha/index.ts": "/**\n * Build `alpha`: return the answer.\n *\n * - it must be typed\n */\nexport function alpha(): number {\n  throw new Error('TODO');\n}\n",
    "exercises/lesson-99/beta/index.ts": "/** Build beta. */\nexport const beta = 0;\n",
    "solutions/lesson-99/alpha/index.ts": `export function alpha(): number {\n  ${SECRET_LINE}\n  return fixtureSecret;\n}\n`,
    "solutions/lesson-99/alpha/helper.ts": "export const helperOnlyInTheReference = 'a distinctive reference helper';\n",
    "solutions/lesson-99/alpha/answers.md": "# Model answers: alpha\n\n## Why typed tags\n\nBecause the model answer explains it thoroughly.\n",
    "solutions/lesson-99/beta/index.ts": "export const beta = 42; // the beta reference value, distinctive\n",
    "solutions/lesson-99/beta/answers.md": "# Model answers: beta\n\n## Typed tags\n\nA heading that also exists on the lesson.\n",
    "graders/lesson-99/alpha.grader.ts": "// checks are injected by the test\n",
    "graders/lesson-99/beta.grader.ts": "// checks are injected by the test\n",
    ...overrides,
  };
  for (const [path, text] of Object.entries(files)) if (text !== null) writeFiles(root, { [path]: text });
  return root;
}

function check(unit: string, title: string, extra: Partial<CollectedCheck> = {}): CollectedCheck {
  return { title, lesson: "lesson-99", unit, tier: "core", weight: 1, hint: `hint for ${title}`, section: "typed-tags", visibility: "public", category: "core", ...extra };
}

const fixtureChecks: CollectRubrics = async (units) =>
  new Map(
    units.map(([lesson, unit]) => [
      `${lesson}/${unit}`,
      unit === "alpha"
        ? [
            check("alpha", "round-trips a value", { weight: 2 }),
            check("alpha", "refuses unknown tags", { tier: "excellence", section: "common-mistakes-keys-friends" }),
            check("alpha", "survives a hostile payload", { visibility: "hidden", tier: "excellence", category: "security" }),
          ]
        : [check("beta", "does the beta thing", { section: "the-idea" })],
    ]),
  );

function pages(result: BuildResult): Record<string, string> {
  return Object.fromEntries(result.pages.map((page) => [page, readFileSync(join(result.dir, page), "utf8")]));
}

describe("slugs", () => {
  test("lowercase, punctuation dropped, words joined by '-'", () => {
    expect(slugify("Typed tags")).toBe("typed-tags");
    expect(slugify("SCAN, not KEYS: why?")).toBe("scan-not-keys-why");
    expect(slugify("Read-modify-write & retries")).toBe("read-modify-write-retries");
    expect(slugify("The `checkpoint$` key scheme")).toBe("the-checkpoint-key-scheme");
    expect(slugify("  Leases — and fencing tokens ")).toBe("leases-and-fencing-tokens");
    expect(slugify("Partial recovery (部分恢复)")).toBe("partial-recovery-部分恢复");
  });

  test("repeated headings get distinct anchors, as on the page", () => {
    expect(headingSlugs("# A\n\n## Example\n\n## Example\n\n### `code` heading")).toEqual(["a", "example", "example-1", "code-heading"]);
  });
});

test("an SVG's ids are prefixed together with every reference to them", () => {
  const svg = prefixSvgIds(DIAGRAM, "fig-x");
  expect(svg).toContain('id="fig-x-diagram"');
  expect(svg).toContain("#fig-x-diagram .node");
  expect(svg).toContain("url(#fig-x-arrowhead)");
  expect(svg).toContain("fill:#eee");
});

test("a contract is the starter's first comment, its indented examples shown as code", () => {
  const starter = "/**\n * Build the saver.\n *\n *   const saver = new RedisSaver(redis);\n *   await saver.put(config);\n *\n * - list() never uses KEYS\n *   (it walks with SCAN)\n *\n *   npm run grade lesson-11 scan-indexing\n */\nexport class RedisSaver {}\n";
  expect(contractMarkdown(extractContract(starter, "index.ts"))).toBe(
    "Build the saver.\n\n```ts\nconst saver = new RedisSaver(redis);\nawait saver.put(config);\n```\n\n- list() never uses KEYS\n  (it walks with SCAN)\n\n```bash\nnpm run grade lesson-11 scan-indexing\n```",
  );
  expect(() => extractContract("export class RedisSaver {}\n", "exercises/x/index.ts")).toThrow("exercises/x/index.ts does not start with its contract");
});

test("npm run site takes one edition, or all", () => {
  expect(parseSiteArgs([])).toEqual(["candidate"]);
  expect(parseSiteArgs(["--edition", "interviewer"])).toEqual(["interviewer"]);
  expect(parseSiteArgs(["--edition", "all"])).toEqual(["candidate", "interviewer"]);
  expect(() => parseSiteArgs(["--edition", "public"])).toThrow(/Unknown edition "public"/);
});

describe("a fixture kit, both editions", () => {
  const root = fixtureKit("kit");
  let candidate: Record<string, string>;
  let interviewer: Record<string, string>;
  let candidateResult: BuildResult;

  beforeAll(async () => {
    candidateResult = await buildSite({ edition: "candidate", root, outDir: join(root, "dist"), collect: fixtureChecks });
    candidate = pages(candidateResult);
    interviewer = pages(await buildSite({ edition: "interviewer", root, outDir: join(root, "dist"), collect: fixtureChecks }));
  });

  test("each edition has its own folder and pages; only the interviewer's has the guide", () => {
    expect(Object.keys(candidate).sort()).toEqual(["index.html", "lesson-99/alpha.html", "lesson-99/beta.html", "lesson-99/index.html"]);
    expect(Object.keys(interviewer).sort()).toEqual([...Object.keys(candidate), "interviewer-guide.html"].sort());
    expect(candidateResult.dir).toBe(join(root, "dist", "candidate"));
    expect(readdirSync(join(root, "dist", "interviewer", "assets")).sort()).toEqual(["favicon.svg", "style.css"]);
  });

  test("the candidate edition holds no reference code and no model answers; the interviewer's holds both", () => {
    const secrets = distinctiveReferenceLines(root, { lessons: ["lesson-99"] });
    expect(secrets).toContain(SECRET_LINE);
    expect(secrets).toContain("Because the model answer explains it thoroughly.");
    for (const [page, html] of Object.entries(candidate)) {
      const text = pageText(html);
      for (const line of secrets) expect(text.includes(line), `${page} shows "${line}"`).toBe(false);
    }
    const alpha = pageText(interviewer["lesson-99/alpha.html"]!);
    expect(alpha).toContain(SECRET_LINE);
    expect(alpha).toContain("Because the model answer explains it thoroughly.");
    expect(alpha).toContain("solutions/lesson-99/alpha/helper.ts");
  });

  test("the rubric comes from the checks: hidden ones only counted for candidates, described for interviewers", () => {
    const alpha = candidate["lesson-99/alpha.html"]!;
    expect(alpha).toContain("round-trips a value");
    expect(alpha).toContain("+ 1 hidden check (categories: security)");
    expect(alpha).not.toContain("survives a hostile payload");
    expect(alpha).not.toContain("hint for round-trips a value");
    expect(alpha).toMatch(/<a href="#common-mistakes-keys-friends">Common mistakes: KEYS &amp; friends<\/a>/);
    const full = interviewer["lesson-99/alpha.html"]!;
    expect(full).toContain("survives a hostile payload");
    expect(full).toContain("hidden · security");
    expect(full).toContain("hint for round-trips a value");
    expect(interviewer["interviewer-guide.html"]).toContain("survives a hostile payload");
  });

  test("diagrams are inlined with ids unique on the page, and code is highlighted", () => {
    const alpha = candidate["lesson-99/alpha.html"]!;
    expect(alpha).not.toContain("<img");
    expect(alpha.match(/<figure class="diagram" style="--diagram-width: 100px"><svg/g)).toHaveLength(2);
    expect(alpha).toContain('aria-label="the flow of a checkpoint"');
    expect(alpha).toContain("<figcaption>Figure 1</figcaption>");
    for (const [page, html] of [...Object.entries(candidate), ...Object.entries(interviewer)]) {
      const ids = Array.from(html.matchAll(/\sid="([^"]+)"/g), (m) => m[1]!);
      expect(ids.filter((id, i) => ids.indexOf(id) !== i), `duplicate ids on ${page}`).toEqual([]);
    }
    expect(alpha).toMatch(/<pre data-lang="ts" class="shiki github-light"/);
  });

  test("links between lessons become links between pages; links to code become plain text", () => {
    const alpha = candidate["lesson-99/alpha.html"]!;
    expect(alpha).toContain('<a href="beta.html#the-idea">the next unit</a>');
    expect(alpha).toMatch(/<span class="kit-path" title="In the kit: \.\.\/\.\.\/exercises\/lesson-99\/alpha\/index\.ts">its starter<\/span>/);
  });

  test("without an index.md, the overview lists the units and says how grading and the take-home work", () => {
    const overview = candidate["lesson-99/index.html"]!;
    expect(overview).toContain('<a href="alpha.html">Alpha unit</a>');
    expect(overview).toContain('id="how-you-are-graded"');
    expect(overview).toContain('id="the-take-home"');
  });

  test("previous and next follow the reading order", () => {
    expect(candidate["lesson-99/alpha.html"]).toMatch(/rel="prev" href="index.html">.*Fixture lesson/);
    expect(candidate["lesson-99/alpha.html"]).toMatch(/rel="next" href="beta.html">.*Beta unit/);
    expect(candidate["lesson-99/beta.html"]).not.toContain('rel="next"');
    expect(interviewer["lesson-99/beta.html"]).toMatch(/rel="next" href="..\/interviewer-guide.html">/);
  });

  test("the contract is the starter's opening comment", () => {
    const alpha = candidate["lesson-99/alpha.html"]!;
    expect(alpha).toContain("<p>Build <code>alpha</code>: return the answer.</p>");
    expect(alpha).toContain("<li>it must be typed</li>");
    expect(alpha).not.toContain("throw new Error");
  });

  test("model answers keep the lesson's anchors intact", () => {
    const beta = interviewer["lesson-99/beta.html"]!;
    expect(beta).toContain('id="the-idea"');
    expect(beta).toContain('id="answers-typed-tags"');
  });

  test("a rebuild with nothing changed highlights nothing", async () => {
    const again = await buildSite({ edition: "candidate", root, outDir: join(root, "dist"), collect: fixtureChecks });
    expect(again.highlighted).toBe(0);
    expect(candidateResult.highlighted).toBeGreaterThan(0);
  });
});

describe("a build fails with a sentence naming what is wrong", () => {
  const build = (root: string) => buildSite({ edition: "candidate", root, outDir: join(root, "dist"), collect: fixtureChecks });

  test("a unit without its lesson page", async () => {
    await expect(build(fixtureKit("no-lesson", { "lessons/lesson-99/beta.md": null }))).rejects.toThrow(
      "lessons/lesson-99/beta.md is missing: every unit listed in lessons/manifest.json needs its lesson page",
    );
  });

  test("a diagram that was never rendered", async () => {
    await expect(build(fixtureKit("no-svg", { "diagrams/lesson-99/alpha-flow.svg": null }))).rejects.toThrow(
      "lessons/lesson-99/alpha.md embeds diagrams/lesson-99/alpha-flow.svg, which does not exist. Add diagrams/lesson-99/alpha-flow.mmd and run `npm run diagrams`.",
    );
  });

  test("an image from the network", async () => {
    await expect(build(fixtureKit("remote-image", { "lessons/lesson-99/beta.md": "# Beta\n\n## The idea\n\n![x](https://example.com/x.png)\n" }))).rejects.toThrow(
      /embeds the image "https:\/\/example.com\/x.png"/,
    );
  });

  test("a check whose hint points at a section the lesson does not have", async () => {
    await expect(build(fixtureKit("bad-section", { "lessons/lesson-99/beta.md": "# Beta\n\n## Another idea\n" }))).rejects.toThrow(
      'The check "does the beta thing" of lesson-99/beta points its hint at section "the-idea", but lessons/lesson-99/beta.md has no heading with that slug',
    );
  });

  test("a starter without its contract", async () => {
    await expect(build(fixtureKit("no-contract", { "exercises/lesson-99/beta/index.ts": "export const beta = 0;\n" }))).rejects.toThrow(
      "exercises/lesson-99/beta/index.ts does not start with its contract",
    );
  });

  test("a link to a section that does not exist", async () => {
    await expect(build(fixtureKit("bad-link", { "lessons/lesson-99/beta.md": "# Beta\n\n## The idea\n\nSee [alpha](alpha.md#nowhere).\n" }))).rejects.toThrow(
      'lesson-99/beta.html: alpha.html#nowhere (no element with id "nowhere")',
    );
  });
});

test("site/src/question-map.json agrees with the lesson's own map", () => {
  const manifest = loadManifest();
  for (const map of loadQuestionMaps()) {
    const lesson = manifest.lessons.find((l) => l.id === map.lesson);
    expect(lesson, `question-map.json names lesson ${map.lesson}`).toBeDefined();
    for (const { unit } of Object.values(map.questions)) expect(lesson!.units.map((u) => u.id)).toContain(unit);
    const overview = readFileSync(join(KIT_ROOT, "lessons", map.lesson, "index.md"), "utf8");
    const fromOverview = Object.fromEntries([...overview.matchAll(/^\| ([A-Z]\d+) \| .+ \| ([a-z0-9-]+) \|$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(Object.fromEntries(Object.entries(map.questions).map(([id, q]) => [id, q.unit]))).toEqual(fromOverview);
  }
});

describe("the kit's own site", () => {
  const outDir = join(scratch, "kit-site");
  const results: Partial<Record<"candidate" | "interviewer", BuildResult>> = {};

  beforeAll(async () => {
    // One collection of the real graders serves both editions (the rubric cache lives in outDir).
    results.candidate = await buildSite({ edition: "candidate", outDir });
    results.interviewer = await buildSite({ edition: "interviewer", outDir });
  }, 120_000);

  test("both editions build, with a page per unit", () => {
    const units = loadManifest().lessons.flatMap((l) => l.units.map((u) => `${l.id}/${u.id}.html`));
    expect(results.candidate!.pages).toEqual(expect.arrayContaining(["index.html", ...units]));
    expect(results.interviewer!.pages).toEqual(expect.arrayContaining([...results.candidate!.pages, "interviewer-guide.html"]));
  });

  test("site/dist/index.html is the page to open: it links to both editions, and each link resolves", () => {
    const file = writeStartPage(outDir);
    expect(file).toBe(join(outDir, "index.html"));
    const html = readFileSync(file, "utf8");
    const links = [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!);
    expect(links).toEqual(["candidate/index.html", "interviewer/index.html"]);
    for (const link of links) expect(existsSync(join(outDir, link))).toBe(true);
    expect(startPageHtml(["candidate"])).toContain("npm run site -- --edition interviewer");
  });

  test("page titles never repeat the site's name, and no page repeats an id (inlined diagrams included)", () => {
    for (const edition of ["candidate", "interviewer"] as const) {
      for (const page of results[edition]!.pages) {
        const html = readFileSync(join(results[edition]!.dir, page), "utf8");
        const title = /<title>(.*?)<\/title>/.exec(html)![1]!;
        expect(title, page).not.toMatch(/checkpoint-kit.*checkpoint-kit/);
        const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
        const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
        expect(repeated, `${edition}/${page}`).toEqual([]);
      }
    }
    const home = readFileSync(join(results.candidate!.dir, "index.html"), "utf8");
    expect(home).toContain("<title>checkpoint-kit</title>");
  });

  test("a contract's prose laid out like code (signature tables, byte layouts, routes) is not highlighted as TypeScript", () => {
    for (const unit of loadManifest().lessons.flatMap((l) => l.units.map((u) => ({ lesson: l.id, unit: u.id })))) {
      const file = join(unitPaths(unit.lesson, unit.unit).starter, "index.ts");
      const markdown = contractMarkdown(extractContract(readFileSync(file, "utf8"), file));
      for (const block of markdown.split("```ts\n").slice(1)) expect(isTypeScript(block.split("\n```")[0]!), `${unit.unit}: ${block.slice(0, 80)}`).toBe(true);
    }
    expect(isTypeScript('offset 0  "c" "k"                 magic (0x63 0x6b)')).toBe(false);
    expect(isTypeScript("dumpsTyped(value)            -> [typeTag, bytes]")).toBe(false);
    expect(isTypeScript("const saver = new RedisSaver(redis);\nawait saver.put(config);")).toBe(true);
    const serde = readFileSync(join(results.candidate!.dir, "lesson-11", "serde.html"), "utf8");
    const contract = /<div class="contract">([\s\S]*?)<\/div>\n/.exec(serde)![1]!;
    expect(contract).toContain('class="shiki plain"');
  });

  test("the stylesheet: CJK fallbacks in both font stacks, and diagrams at their natural size (the figure scrolls instead)", () => {
    const css = readFileSync(join(results.candidate!.dir, "assets", "style.css"), "utf8");
    const cjk = /--cjk:([^;]+);/.exec(css)?.[1] ?? "";
    for (const family of ["PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei"]) expect(cjk).toContain(family);
    expect(css).toMatch(/--sans:[^;]*var\(--cjk\)[^;]*sans-serif;/);
    expect(css).toMatch(/--mono:[^;]*var\(--cjk\)[^;]*monospace;/);
    expect(css).toMatch(/figure\.diagram svg \{[^}]*width: var\(--diagram-width, 100%\);[^}]*max-width: none;/);
    expect(css).toMatch(/figure\.diagram \{[^}]*overflow-x: auto;/);
  });

  test("no candidate page shows a line that only the reference solutions and answers contain", () => {
    const secrets = distinctiveReferenceLines(KIT_ROOT);
    expect(secrets.length).toBeGreaterThan(20);
    const shown = new Set<string>();
    for (const page of results.candidate!.pages) {
      const text = pageText(readFileSync(join(results.candidate!.dir, page), "utf8"));
      for (const line of secrets) if (text.includes(line)) shown.add(`${page}: ${line}`);
    }
    expect([...shown]).toEqual([]);
    // And the check can fail: the interviewer edition does show them.
    const lesson = loadManifest().lessons[0]!;
    const unit = lesson.units[0]!;
    const text = pageText(readFileSync(join(results.interviewer!.dir, lesson.id, `${unit.id}.html`), "utf8"));
    const own = distinctiveReferenceLines(KIT_ROOT).filter((line) => readFileSync(join(unitPaths(lesson.id, unit.id).reference, "index.ts"), "utf8").includes(line));
    expect(own.some((line) => text.includes(line))).toBe(true);
  });
});
