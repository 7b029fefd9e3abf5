/**
 * The hitl lesson's curl demo works as printed: start `npm run demo`'s server
 * on a free port, run each curl command of the lesson's "The curl demo"
 * section (port substituted) with the real curl binary (or an equivalent
 * fetch when curl is missing), and compare the events with the output the
 * lesson shows under each command. Ids and timestamps differ per run and are
 * compared by shape only.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createParser } from "eventsource-parser";
import MarkdownIt from "markdown-it";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LESSON = join(ROOT, "lessons/lesson-11/hitl.md");
const DEMO = join(ROOT, "solutions/lesson-11/hitl/server-main.ts");
const DEMO_SECTION = "The curl demo";
const PRINTED_ORIGIN = /http:\/\/localhost:8000/g;

interface DemoStep {
  command: string;
  shownOutput: string;
}

/** The section's bash fences that run curl, each with the text fence that follows it. */
function demoSteps(markdown: string): DemoStep[] {
  const tokens = new MarkdownIt().parse(markdown, {});
  const steps: DemoStep[] = [];
  let inSection = false;
  let pending: string | undefined;
  for (const [index, token] of tokens.entries()) {
    if (token.type === "heading_open" && token.tag === "h2") inSection = tokens[index + 1]?.content === DEMO_SECTION;
    if (!inSection || token.type !== "fence") continue;
    const language = token.info.trim();
    if (language === "bash" && token.content.trimStart().startsWith("curl")) pending = token.content.trim();
    else if (language === "text" && pending !== undefined) {
      steps.push({ command: pending, shownOutput: token.content });
      pending = undefined;
    }
  }
  return steps;
}

/** Event name + data with run-specific values (uuids, timestamps, post ids) replaced by placeholders. */
function normalizedEvents(streamText: string): string[] {
  const events: string[] = [];
  const parser = createParser({ onEvent: (message) => events.push(`${message.event ?? "message"} ${normalize(message.data)}`) });
  parser.feed(streamText.endsWith("\n\n") ? streamText : `${streamText}\n\n`);
  return events;
}

function normalize(data: string): string {
  return data
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<uuid>")
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, "<time>")
    .replace(/post-[0-9a-f]{8}/g, "post-<id>");
}

const run = promisify(execFile);

async function hasCurl(): Promise<boolean> {
  try {
    await run("curl", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** What curl would print, by fetch: only for the plain `curl -X POST URL -H ... -d '...'` form the lesson uses. */
async function fetchLikeCurl(command: string): Promise<string> {
  const url = command.match(/(http:\/\/\S+)/)?.[1];
  const body = command.match(/-d '([^']*)'/)?.[1];
  if (!url || body === undefined) throw new Error(`Cannot run without curl: ${command}`);
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  return response.text();
}

describe("the hitl lesson's curl demo", () => {
  let demo: ChildProcess | undefined;
  let origin = "";
  const dataDir = mkdtempSync(join(tmpdir(), "kit-hitl-demo-"));

  beforeAll(async () => {
    demo = spawn(process.execPath, ["--import", "tsx", DEMO, "--port", "0", "--data-dir", dataDir], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`The demo did not print its address within 15 s:\n${output}`)), 15_000);
      const collect = (chunk: Buffer) => {
        output += chunk.toString();
        const match = output.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      };
      demo?.stdout?.on("data", collect);
      demo?.stderr?.on("data", collect);
      demo?.once("exit", (code) => reject(new Error(`The demo exited with code ${code} before listening:\n${output}`)));
    });
  });

  afterAll(() => {
    demo?.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("every curl command of the lesson prints the events the lesson shows", async () => {
    const steps = demoSteps(readFileSync(LESSON, "utf8"));
    expect(steps.length, `the "${DEMO_SECTION}" section shows curl commands, each followed by a text block of its output`).toBeGreaterThanOrEqual(2);
    const useCurl = await hasCurl();
    for (const step of steps) {
      expect(step.command, "the lesson's commands use the demo's printed address").toMatch(PRINTED_ORIGIN);
      const command = step.command.replace(PRINTED_ORIGIN, origin);
      const printed = useCurl ? (await run("bash", ["-c", command], { timeout: 10_000 })).stdout : await fetchLikeCurl(command);
      const shown = normalizedEvents(step.shownOutput);
      expect(shown.length, `the output shown for:\n${step.command}\ncontains events`).toBeGreaterThan(0);
      expect(normalizedEvents(printed), `events printed by:\n${step.command}`).toEqual(shown);
    }
  });
});
