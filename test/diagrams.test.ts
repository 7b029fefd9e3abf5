// Committed diagram SVGs match their .mmd sources (no browser needed), and, where
// Chromium exists, rendering works and re-renders only what changed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { chromiumAvailability } from "../site/chromium.ts";
import { diagramStatuses, renderDiagrams, sourceHash, stampedHash, stampSvg } from "../site/diagrams.ts";

test("every diagram source has its SVG beside it, rendered from the source as it is now", () => {
  const problems = diagramStatuses()
    .filter((status) => status.state !== "fresh")
    .map((status) =>
      status.state === "orphan" ? `${status.svg} has no .mmd source` : `${status.svg} is ${status.state}: run \`npm run diagrams\` and commit the SVG`,
    );
  expect(problems).toEqual([]);
});

describe("freshness stamps", () => {
  const scratch = mkdtempSync(join(tmpdir(), "diagrams-test-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  test("an SVG is fresh only while its source is unchanged", () => {
    const source = "flowchart LR\n  a --> b\n";
    const svg = stampSvg("<svg></svg>", sourceHash(source));
    expect(stampedHash(svg)).toBe(sourceHash(source));
    expect(sourceHash(source)).not.toBe(sourceHash(`${source}  b --> c\n`));
    expect(stampedHash("<svg></svg>")).toBeUndefined();
  });

  test("missing, stale and orphaned SVGs are each reported", () => {
    const dir = join(scratch, "diagrams", "lesson-1");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "a-fresh.mmd"), "flowchart LR\n  a --> b\n");
    writeFileSync(join(dir, "a-fresh.svg"), stampSvg("<svg></svg>", sourceHash("flowchart LR\n  a --> b\n")));
    writeFileSync(join(dir, "a-stale.mmd"), "flowchart LR\n  a --> c\n");
    writeFileSync(join(dir, "a-stale.svg"), stampSvg("<svg></svg>", sourceHash("flowchart LR\n  a --> b\n")));
    writeFileSync(join(dir, "a-missing.mmd"), "flowchart LR\n  x --> y\n");
    writeFileSync(join(dir, "a-orphan.svg"), "<svg></svg>");
    const states = Object.fromEntries(diagramStatuses(scratch).map((s) => [s.svg, s.state]));
    expect(states).toEqual({
      "diagrams/lesson-1/a-fresh.svg": "fresh",
      "diagrams/lesson-1/a-stale.svg": "stale",
      "diagrams/lesson-1/a-missing.svg": "missing",
      "diagrams/lesson-1/a-orphan.svg": "orphan",
    });
  });
});

const chromium = chromiumAvailability();

describe.skipIf(!chromium.available && !chromium.required)("rendering with Chromium", () => {
  const scratch = mkdtempSync(join(tmpdir(), "diagrams-render-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  test("renders what is missing or stale in one browser, and nothing when all is fresh", async () => {
    expect(chromium.available, chromium.available ? "" : chromium.reason).toBe(true);
    const dir = join(scratch, "diagrams", "lesson-1");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "u-flow.mmd"), "flowchart LR\n  put[put checkpoint] --> ok{version matches?}\n  ok -->|yes| write\n  ok -->|no| conflict\n");
    writeFileSync(join(dir, "u-seq.mmd"), "sequenceDiagram\n  Client->>Server: POST /graph/resume\n  Server-->>Client: final_result\n");

    const first = await renderDiagrams({ root: scratch });
    expect(first.rendered.sort()).toEqual(["diagrams/lesson-1/u-flow.mmd", "diagrams/lesson-1/u-seq.mmd"]);
    const svg = readFileSync(join(dir, "u-flow.svg"), "utf8");
    expect(svg).toMatch(/^<!-- checkpoint-kit diagram source-sha256: [0-9a-f]{64} -->\n<svg/);
    expect(svg).toContain("version matches?");
    expect(svg).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    expect(diagramStatuses(scratch).every((s) => s.state === "fresh")).toBe(true);

    const again = await renderDiagrams({ root: scratch });
    expect(again).toEqual({ rendered: [], upToDate: 2, elapsedMs: 0 });

    writeFileSync(join(dir, "u-seq.mmd"), "sequenceDiagram\n  Client->>Server: POST /graph_v2/chat/stream\n");
    expect((await renderDiagrams({ root: scratch })).rendered).toEqual(["diagrams/lesson-1/u-seq.mmd"]);
  }, 60_000);
});
