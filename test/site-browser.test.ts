// Both editions of the built site in a real browser (Debian's Chromium through
// playwright-core), at desktop and phone widths: every page opens, every internal
// link lands on a page and an element, nothing logs an error or 404s, nothing is
// fetched from the network, diagrams have a size, pages do not scroll sideways,
// and no candidate page shows reference code. Skipped without Chromium, except in CI.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { chromium as playwright, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KIT_ROOT } from "../graders/harness/implementation.ts";
import { buildSite, type BuildResult } from "../site/builder.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumAvailability } from "../site/chromium.ts";
import type { Edition } from "../site/pages.ts";
import { distinctiveReferenceLines } from "../site/reference-lines.ts";
import { serveStatic, type StaticServer } from "../site/serve.ts";

const DIST = join(KIT_ROOT, "site", "dist");
const SCREENSHOTS = join(DIST, "screenshots");
const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 860 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
} as const;

const chromium = chromiumAvailability();

/**
 * The slice of the DOM that the functions passed to page.evaluate() use. They run
 * inside Chromium; the kit's tsconfig has no DOM types, so they see the page through this.
 */
interface PageElement {
  id: string;
  href?: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { width: number; height: number };
  querySelector(selector: string): PageElement | null;
}
interface PageWindow {
  document: {
    title: string;
    body: PageElement;
    documentElement: { scrollWidth: number; clientWidth: number };
    images: ArrayLike<{ complete: boolean; naturalWidth: number; src: string }>;
    querySelector(selector: string): PageElement | null;
    querySelectorAll(selector: string): ArrayLike<PageElement>;
  };
  getComputedStyle(element: PageElement): { display: string; breakBefore: string };
}

interface Visit {
  ids: Set<string>;
  /** Internal links on the page, as absolute URLs. */
  links: string[];
}

describe.skipIf(!chromium.available && !chromium.required)("the site in Chromium", () => {
  const builds = {} as Record<Edition, BuildResult>;
  let server: StaticServer;
  let browser: Browser;
  let referenceLines: string[];

  beforeAll(async () => {
    if (!chromium.available) throw new Error(chromium.reason);
    builds.candidate = await buildSite({ edition: "candidate" });
    builds.interviewer = await buildSite({ edition: "interviewer" });
    referenceLines = distinctiveReferenceLines(KIT_ROOT);
    server = await serveStatic(dirname(builds.candidate.dir));
    browser = await playwright.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A browser context that records every problem a page shows, and refuses to leave 127.0.0.1. */
  async function watchedContext(width: keyof typeof VIEWPORTS, problems: string[]): Promise<BrowserContext> {
    const context = await browser.newContext(VIEWPORTS[width]);
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(`${server.origin}/`) || url.startsWith("data:")) return route.continue();
      problems.push(`network request outside the site: ${url}`);
      return route.abort();
    });
    context.on("page", (page) => watchPage(page, problems));
    return context;
  }

  function watchPage(page: Page, problems: string[]): void {
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error on ${page.url()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`script error on ${page.url()}: ${error.message}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()} (from ${page.url()})`);
    });
  }

  async function visit(page: Page, url: string, edition: Edition, problems: string[]): Promise<Visit> {
    const response = await page.goto(url, { waitUntil: "load" });
    if (!response || response.status() !== 200) problems.push(`${url} answered ${response?.status() ?? "nothing"}`);
    const facts = await page.evaluate(() => {
      const { document } = (globalThis as unknown as PageWindow);
      const box = (element: PageElement) => element.getBoundingClientRect();
      return {
        ids: Array.from(document.querySelectorAll("[id]"), (element) => element.id),
        links: Array.from(document.querySelectorAll("a[href]"), (a) => a.href ?? ""),
        figures: Array.from(document.querySelectorAll("figure.diagram"), (figure) => {
          const svg = figure.querySelector("svg");
          return { label: svg?.getAttribute("aria-label") ?? figure.textContent?.slice(0, 60) ?? "", width: svg ? box(svg).width : 0, height: svg ? box(svg).height : 0 };
        }),
        brokenImages: Array.from(document.images).filter((image) => !image.complete || image.naturalWidth === 0).map((image) => image.src),
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        text: (document.body.textContent ?? "").replace(/\s+/g, " "),
        title: document.title,
      };
    });
    for (const figure of facts.figures) {
      if (figure.width < 1 || figure.height < 1) problems.push(`diagram "${figure.label}" on ${url} has no size (${figure.width}x${figure.height})`);
    }
    for (const image of facts.brokenImages) problems.push(`broken image ${image} on ${url}`);
    if (facts.overflow > 1) problems.push(`${url} scrolls sideways by ${facts.overflow}px`);
    if (!facts.title) problems.push(`${url} has no title`);
    if (edition === "candidate") {
      for (const line of referenceLines) if (facts.text.includes(line)) problems.push(`${url} shows reference code or answers: "${line}"`);
    }
    const origin = `${server.origin}/`;
    return { ids: new Set(facts.ids), links: facts.links.filter((link) => link.startsWith(origin)) };
  }

  /** Opens the edition's home page and every page reachable from it, then checks every link's target. */
  async function crawl(edition: Edition, width: keyof typeof VIEWPORTS): Promise<{ problems: string[]; visited: Map<string, Visit> }> {
    const problems: string[] = [];
    const context = await watchedContext(width, problems);
    const page = await context.newPage();
    const base = `${server.origin}/${edition}/`;
    const visited = new Map<string, Visit>();
    const queue = [`${base}index.html`];
    const fragments: Array<{ from: string; to: string; id: string }> = [];
    while (queue.length > 0) {
      const url = queue.shift()!;
      if (visited.has(url)) continue;
      const result = await visit(page, url, edition, problems);
      visited.set(url, result);
      for (const link of result.links) {
        const target = new URL(link);
        const id = decodeURIComponent(target.hash.slice(1));
        target.hash = "";
        if (!target.href.startsWith(base)) problems.push(`${url} links out of the ${edition} edition: ${link}`);
        if (id) fragments.push({ from: url, to: target.href, id });
        if (!visited.has(target.href) && target.pathname.endsWith(".html")) queue.push(target.href);
      }
    }
    for (const { from, to, id } of fragments) {
      const target = visited.get(to);
      if (target && !target.ids.has(id)) problems.push(`${from} links to ${to}#${id}, which has no element with that id`);
    }
    await context.close();
    return { problems, visited };
  }

  for (const edition of ["candidate", "interviewer"] as const) {
    for (const width of ["desktop", "phone"] as const) {
      test(`${edition} edition at ${width} width: every page and link works`, async () => {
        const { problems, visited } = await crawl(edition, width);
        const built = builds[edition].pages.map((page) => `${server.origin}/${edition}/${page}`).sort();
        expect([...visited.keys()].sort(), "every built page is reachable by links from the home page").toEqual(built);
        expect(problems).toEqual([]);
      }, 120_000);
    }
  }

  test("the phone layout folds the sidebar into a Contents menu that opens", async () => {
    const problems: string[] = [];
    const context = await watchedContext("phone", problems);
    const page = await context.newPage();
    await page.goto(`${server.origin}/candidate/index.html`);
    expect(await page.locator(".sidebar").isVisible()).toBe(false);
    const menu = page.locator("details.mobile-nav");
    await menu.locator("summary").click();
    const firstUnit = menu.locator(".nav-units a").first();
    expect(await firstUnit.isVisible()).toBe(true);
    await firstUnit.click();
    await page.waitForLoadState("load");
    expect(page.url()).toMatch(/\/candidate\/[^/]+\/[^/]+\.html$/);
    await context.close();
    expect(problems).toEqual([]);
  }, 60_000);

  test("the interviewer guide prints without the site's chrome, one unit per page", async () => {
    const context = await browser.newContext(VIEWPORTS.desktop);
    const page = await context.newPage();
    await page.goto(`${server.origin}/interviewer/interviewer-guide.html`);
    await page.emulateMedia({ media: "print" });
    const printed = await page.evaluate(() => {
      const { document, getComputedStyle } = globalThis as unknown as PageWindow;
      return {
        sidebar: getComputedStyle(document.querySelector(".sidebar")!).display,
        topbar: getComputedStyle(document.querySelector(".topbar")!).display,
        breaks: Array.from(document.querySelectorAll(".guide-unit"), (unit) => getComputedStyle(unit).breakBefore),
      };
    });
    expect(printed.sidebar).toBe("none");
    expect(printed.topbar).toBe("none");
    expect(printed.breaks.length).toBeGreaterThan(0);
    expect(new Set(printed.breaks)).toEqual(new Set(["page"]));
    const pdf = await page.pdf({ format: "A4" });
    expect(pdf.subarray(0, 5).toString()).toBe("%PDF-");
    await context.close();
  }, 60_000);

  test("screenshots of the home page and a unit page", async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const unitPage = builds.candidate.pages.find((page) => /^[^/]+\/(?!index\.html)[^/]+\.html$/.test(page))!;
    const shots: Array<[string, keyof typeof VIEWPORTS, string, boolean]> = [
      ["home-desktop.png", "desktop", "candidate/index.html", false],
      ["unit-desktop.png", "desktop", `candidate/${unitPage}`, false],
      ["home-phone.png", "phone", "candidate/index.html", false],
      ["unit-phone.png", "phone", `candidate/${unitPage}`, false],
      ["unit-interviewer-desktop.png", "desktop", `interviewer/${unitPage}`, false],
    ];
    for (const [file, width, path, fullPage] of shots) {
      const context = await browser.newContext(VIEWPORTS[width]);
      const page = await context.newPage();
      await page.goto(`${server.origin}/${path}`);
      const png = await page.screenshot({ path: join(SCREENSHOTS, file), fullPage });
      expect(png.length, file).toBeGreaterThan(10_000);
      await context.close();
    }
  }, 60_000);
});
