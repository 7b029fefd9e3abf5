/**
 * The effects the hitl grader gives a submission's server, and the ledger of
 * what they did. Both live here, on the trusted side: the server receives the
 * effects as functions that call back into this process, so the only thing
 * the learner's code can do to the ledger is add to it by calling an effect.
 * One ledger per SQLite file: a restarted server (a new learner process on
 * the same file) records into the same ledger, each process under its own
 * instance number.
 */
import type { ChatMessage, Draft, HitlEffects, PolicyReport, PublishArgs, PublishReceipt } from "../../../solutions/lesson-11/hitl/index.ts";

interface Who {
  userId: string | undefined;
  sessionId: string | undefined;
  /** Which server process called (1 for the first on a file, 2 after a restart, ...). */
  instance: number;
}
export type LedgerEntry =
  | (Who & { effect: "writeDraft"; query: unknown; messages: unknown; draft: Draft })
  | (Who & { effect: "checkPolicy"; draft: unknown; report: PolicyReport })
  | (Who & { effect: "publish"; args: unknown; idempotencyKey: unknown; receipt: PublishReceipt });
export type EffectName = LedgerEntry["effect"];

/** A publish call takes a little while, as a real one would; it also leaves room for a race to show. */
const PUBLISH_LATENCY_MS = 80;

/** Runs at the start of an effect call for one session: a check can hold a node there and watch the stream, or make the effect fail by throwing. */
export type Gate = (input: unknown, context: unknown) => Promise<void>;

export class Ledger {
  readonly #entries: LedgerEntry[] = [];
  readonly #gates = new Map<string, Gate>();
  #instances = 0;
  #calls = 0;

  /** A copy of what the effects recorded for a session: callers can change the copy, never the record. */
  entries(sessionId: string): LedgerEntry[] {
    return structuredClone(this.#entries.filter((entry) => entry.sessionId === sessionId));
  }

  /** Holds `effect` for `sessionId` at its start until `gate` resolves. */
  gate(sessionId: string, effect: EffectName, gate: Gate): void {
    this.#gates.set(`${sessionId}\0${effect}`, gate);
  }

  /** The effects for one server process on this ledger's SQLite file. */
  effects(): HitlEffects {
    const instance = ++this.#instances;
    const record = (entry: LedgerEntry) => this.#entries.push(structuredClone(entry));
    const who = (context: unknown): Who => {
      const fields = (context ?? {}) as { userId?: unknown; sessionId?: unknown };
      return {
        userId: typeof fields.userId === "string" ? fields.userId : undefined,
        sessionId: typeof fields.sessionId === "string" ? fields.sessionId : undefined,
        instance,
      };
    };
    const held = async (effect: EffectName, input: unknown, context: unknown) => {
      const gate = this.#gates.get(`${who(context).sessionId}\0${effect}`);
      if (gate) await gate(input, context);
    };
    return {
      writeDraft: async (input, context) => {
        await held("writeDraft", input, context);
        const query = String(input?.query);
        // Unique per call, so a draft written twice is a different draft.
        const draft: Draft = { title: `Plan: ${query.slice(0, 60)}`, body: `Draft ${instance}.${++this.#calls} for "${query}"` };
        record({ effect: "writeDraft", ...who(context), query: input?.query, messages: input?.messages, draft });
        return draft;
      },
      checkPolicy: async (draft, context) => {
        await held("checkPolicy", draft, context);
        const report: PolicyReport = { risk: "low", notes: [`policy check ${instance}.${++this.#calls}`] };
        record({ effect: "checkPolicy", ...who(context), draft, report });
        return report;
      },
      publish: async (args, context) => {
        await held("publish", args, context);
        const n = ++this.#calls;
        const receipt: PublishReceipt = { id: `post-${instance}-${n}`, url: `https://blog.example.test/posts/${instance}-${n}` };
        record({ effect: "publish", ...who(context), args, idempotencyKey: (context as { idempotencyKey?: unknown })?.idempotencyKey, receipt });
        await new Promise((resolve) => setTimeout(resolve, PUBLISH_LATENCY_MS));
        return receipt;
      },
    };
  }
}

export type { ChatMessage, PublishArgs };
