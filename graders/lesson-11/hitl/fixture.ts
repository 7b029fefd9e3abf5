/**
 * What the hitl grader injects into a submission's server, shared by the
 * child process (which runs the effects) and the grader (which reads what
 * they did). Every effect call is appended as one JSON line to a ledger file,
 * so the grader can count side effects across processes and restarts.
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { ChatMessage, Draft, HitlEffects, PolicyReport, PublishArgs, PublishReceipt } from "../../../solutions/lesson-11/hitl/index.ts";

/** A query containing this makes writeDraft throw: the grader's "exception inside the graph". */
export const FAIL_DRAFT_MARKER = "[[draft-model-down]]";

/** Environment the child entry reads. */
export const ENV = {
  dbPath: "HITL_GRADER_DB_PATH",
  ledgerPath: "HITL_GRADER_LEDGER_PATH",
  reviewTtlMs: "HITL_GRADER_REVIEW_TTL_MS",
} as const;

/** Control commands the child answers. */
export const ADVANCE_CLOCK = "advance-clock";

interface Who {
  userId: string | undefined;
  sessionId: string | undefined;
  pid: number;
}
export type LedgerEntry =
  | (Who & { effect: "writeDraft"; query: unknown; messages: unknown; draft: Draft })
  | (Who & { effect: "checkPolicy"; draft: unknown; report: PolicyReport })
  | (Who & { effect: "publish"; args: unknown; idempotencyKey: unknown; receipt: PublishReceipt });

/** A publish call takes a little while, as a real one would; it also leaves room for a race to show. */
const PUBLISH_LATENCY_MS = 80;

export function ledgerEffects(ledgerPath: string): HitlEffects {
  let calls = 0;
  const record = (entry: LedgerEntry) => appendFileSync(ledgerPath, `${JSON.stringify(entry)}\n`);
  const who = (context: unknown): Who => {
    const fields = (context ?? {}) as { userId?: unknown; sessionId?: unknown };
    return {
      userId: typeof fields.userId === "string" ? fields.userId : undefined,
      sessionId: typeof fields.sessionId === "string" ? fields.sessionId : undefined,
      pid: process.pid,
    };
  };
  return {
    async writeDraft(input, context) {
      const query = String(input?.query);
      if (query.includes(FAIL_DRAFT_MARKER)) throw new Error("the draft model is unavailable (injected failure)");
      // Unique per call, so a draft written twice is a different draft.
      const draft: Draft = { title: `Plan: ${query.slice(0, 60)}`, body: `Draft ${process.pid}.${++calls} for "${query}"` };
      record({ effect: "writeDraft", ...who(context), query: input?.query, messages: input?.messages, draft });
      return draft;
    },
    async checkPolicy(draft, context) {
      const report: PolicyReport = { risk: "low", notes: [`policy check ${process.pid}.${++calls}`] };
      record({ effect: "checkPolicy", ...who(context), draft, report });
      return report;
    },
    async publish(args, context) {
      const receipt: PublishReceipt = { id: `post-${process.pid}-${++calls}`, url: `https://blog.example.test/posts/${process.pid}-${calls}` };
      record({ effect: "publish", ...who(context), args, idempotencyKey: (context as { idempotencyKey?: unknown })?.idempotencyKey, receipt });
      await new Promise((resolve) => setTimeout(resolve, PUBLISH_LATENCY_MS));
      return receipt;
    },
  };
}

export function readLedger(ledgerPath: string, sessionId: string): LedgerEntry[] {
  if (!existsSync(ledgerPath)) return [];
  return readFileSync(ledgerPath, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as LedgerEntry)
    .filter((entry) => entry.sessionId === sessionId);
}

export type { ChatMessage, PublishArgs };
