// Stryker disable all: the launcher of `npm run demo` (port, data folder, stand-in effects); the grader never loads it, and test/hitl-demo.test.ts tests it
/**
 * `npm run demo`: the reference hitl server behind the lesson's curl commands.
 *
 *   npm run demo                                 # http://127.0.0.1:8000
 *   npm run demo -- --port 8010 --data-dir ./hitl-data --review-ttl-ms 60000
 *
 * PORT and HITL_DATA_DIR work as well. The effects are stand-ins: a template
 * "model", a keyword policy check, and a publisher that appends to an outbox
 * file and answers the same receipt for the same idempotency key.
 */
import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { createHitlServer, DEFAULT_REVIEW_TTL_MS, type HitlEffects } from "./index.ts";

const cli = z.object({
  port: z.coerce.number().int().min(0).max(65_535),
  host: z.string().min(1),
  dataDir: z.string().min(1),
  reviewTtlMs: z.coerce.number().int().positive(),
});

function readSettings() {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      "review-ttl-ms": { type: "string" },
    },
  });
  const parsed = cli.safeParse({
    port: values.port ?? process.env.PORT ?? 8000,
    host: values.host ?? "127.0.0.1",
    dataDir: values["data-dir"] ?? process.env.HITL_DATA_DIR ?? join(tmpdir(), "checkpoint-kit-hitl"),
    reviewTtlMs: values["review-ttl-ms"] ?? DEFAULT_REVIEW_TTL_MS,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(`hitl demo: --${issue?.path.join(".")}: ${issue?.message}. Usage: npm run demo -- [--port 8000] [--data-dir DIR] [--review-ttl-ms MS]`);
    process.exit(2);
  }
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) };
}

function demoEffects(outboxPath: string): HitlEffects {
  return {
    async writeDraft({ query, messages }) {
      const earlier = messages.length - 1;
      return {
        title: `Plan: ${query}`,
        body: `Goals, channels, timeline and metrics for "${query}"${earlier > 0 ? ` (building on ${earlier} earlier message(s))` : ""}.`,
      };
    },
    async checkPolicy(draft) {
      const risky = /guarantee|free money|100%/i.test(`${draft.title} ${draft.body}`);
      return risky ? { risk: "high", notes: ["promises an outcome; legal must read it"] } : { risk: "low", notes: ["no risky claims found"] };
    },
    async publish(args, { idempotencyKey, userId, sessionId }) {
      // The receipt is a function of the idempotency key: a retried publish gets the same post.
      const id = `post-${createHash("sha256").update(idempotencyKey).digest("hex").slice(0, 8)}`;
      appendFileSync(outboxPath, `${JSON.stringify({ id, userId, sessionId, idempotencyKey, ...args })}\n`);
      return { id, channel: "blog" };
    },
  };
}

const settings = readSettings();
mkdirSync(settings.dataDir, { recursive: true });
const dbPath = join(settings.dataDir, "checkpoints.db");
const hitl = createHitlServer({
  dbPath,
  effects: demoEffects(join(settings.dataDir, "outbox.jsonl")),
  reviewTtlMs: settings.reviewTtlMs,
});

hitl.server.on("error", (error) => {
  console.error(`hitl demo: cannot listen on ${settings.host}:${settings.port}: ${error.message}. Pick another port with --port.`);
  process.exit(1);
});
hitl.server.listen(settings.port, settings.host, () => {
  const address = hitl.server.address();
  const port = typeof address === "object" && address ? address.port : settings.port;
  const base = `http://${settings.host}:${port}`;
  console.log(`hitl demo listening on ${base} (checkpoints: ${dbPath})`);
  console.log(`
Start a turn; it streams stage events and stops at human_review_required:
  curl -N -X POST ${base}/graph_v2/chat/stream \\
    -H 'Content-Type: application/json' \\
    -d '{"user_id":"u2","session_id":"sess-recover","query":"Write an operations plan","enable_human_review":true}'

Answer the review (action: approve | reject | edit with "edited_args"):
  curl -X POST ${base}/graph/resume \\
    -H 'Content-Type: application/json' \\
    -d '{"user_id":"u2","session_id":"sess-recover","approved":true,"action":"approve"}'

Stop with Ctrl-C; a pending review survives a restart on the same --data-dir.`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void hitl.close().finally(() => process.exit(0));
  });
}
