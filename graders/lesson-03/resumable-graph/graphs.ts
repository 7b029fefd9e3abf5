/**
 * The grader's graphs, as data both sides use: the learner-side fixture wires them onto the
 * learner's StateGraph, the trusted side runs their node bodies (over the channel) and computes
 * what an uncrashed run goes through. Everything here is pure: a body's update depends on the
 * state alone, so a node run again after a crash returns the same update.
 *
 *   import    fetch -> split -> embed (once per batch, a loop) -> index -> summarize   (no effects)
 *   notify    draft -> send-email -> record                                          (one email)
 *   approval  draft -> check-approval -> INTERRUPT | send-email -> record | END      (the seed's HITL)
 *   digest    collect -> send-email -> tally -> collect ... (the same email every round)   (a loop with an effect)
 *   ab        pick -> left | right -> pick ... -> END   (pick's router is not pure: see learner-fixture)
 */
export const END = "__end__";
export const INTERRUPT = "__interrupt__";
/** The node whose body is the learner's sendEmailNode. */
export const EMAIL_NODE = "send-email";

export type State = Record<string, unknown>;
export type GraphName = "import" | "notify" | "approval" | "digest" | "ab";
export type Edge = string | ((state: State) => string);

export interface GraphSpec {
  start: string;
  nodes: readonly string[];
  /** A node missing here has no edge (it goes to END). */
  edges: Readonly<Record<string, Edge>>;
}

const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

export const GRAPHS: Record<GraphName, GraphSpec> = {
  import: {
    start: "fetch",
    nodes: ["fetch", "split", "embed", "index", "summarize"],
    // summarize has no edge: the run ends after it.
    edges: { fetch: "split", split: "embed", embed: (s) => ((s.embedded as Map<number, unknown>).size < list(s.chunks).length ? "embed" : "index"), index: "summarize" },
  },
  notify: { start: "draft", nodes: ["draft", EMAIL_NODE, "record"], edges: { draft: EMAIL_NODE, [EMAIL_NODE]: "record", record: END } },
  approval: {
    start: "draft",
    nodes: ["draft", "check-approval", EMAIL_NODE, "record"],
    edges: { draft: "check-approval", "check-approval": (s) => (s.awaitingApproval ? INTERRUPT : s.approvalGranted === true ? EMAIL_NODE : END), [EMAIL_NODE]: "record", record: END },
  },
  digest: {
    start: "collect",
    nodes: ["collect", EMAIL_NODE, "tally"],
    edges: { collect: EMAIL_NODE, [EMAIL_NODE]: "tally", tally: (s) => (list(s.sent).length < Number(s.rounds) ? "collect" : END) },
  },
  ab: { start: "pick", nodes: ["pick", "left", "right"], edges: { left: "pick", right: "pick" } },
};

function checksum(text: string): number {
  let sum = 7;
  for (const char of text) sum = (sum * 31 + char.codePointAt(0)!) % 100_003;
  return sum;
}

/** The node bodies the trusted side runs (all but the email node, which is the learner's). */
export function body(graph: GraphName, node: string, s: State): State {
  switch (`${graph}/${node}`) {
    case "import/fetch":
      return { fetchedAt: new Date(Date.UTC(2026, 1, 1) + checksum(String(s.docId)) * 1000), words: String(s.text).split(" ").length };
    case "import/split": {
      const words = String(s.text).split(" ");
      const size = Number(s.chunkWords);
      return { chunks: Array.from({ length: Math.ceil(words.length / size) }, (_, i) => words.slice(i * size, (i + 1) * size).join(" ")) };
    }
    case "import/embed": {
      const embedded = new Map(s.embedded as Map<number, unknown>);
      const chunks = list(s.chunks) as string[];
      const batch = chunks.map((_, i) => i).filter((i) => !embedded.has(i)).slice(0, Number(s.batchSize));
      for (const i of batch) embedded.set(i, { chars: chunks[i]!.length, sum: checksum(chunks[i]!) });
      return { embedded, batches: Number(s.batches) + 1 };
    }
    case "import/index":
      return { index: { docId: s.docId, entries: (s.embedded as Map<number, unknown>).size, builtFrom: s.fetchedAt } };
    case "import/summarize":
      return { summary: `${String(s.docId)}: ${list(s.chunks).length} chunks in ${String(s.batches)} batches`, seen: new Set(list(s.chunks).map((c) => String(c).split(" ")[0])) };
    case "notify/draft":
    case "approval/draft":
      return { body: `${list(s.notes).map((note, i) => `${i + 1}. ${String(note)}`).join("\n")}\n-- the import bot` };
    case "notify/record":
    case "approval/record":
      return { outcome: `sent ${String(s.emailId)} to ${String(s.to)}` };
    case "approval/check-approval":
      if (s.approvalGranted === undefined) return { awaitingApproval: `Send "${String(s.subject)}" to ${String(s.to)}?` };
      return s.approvalGranted === true ? { awaitingApproval: undefined, approvedFor: s.to } : { awaitingApproval: undefined, outcome: "rejected" };
    case "digest/collect": {
      const round = Number(s.round) + 1;
      // The same email every round (a reminder): each visit is still its own effect, so a key, or a
      // dedupe, drawn from the email's content would send it once.
      return { round, subject: `Reminder: ${String(s.topic)}`, body: `A reminder about ${String(s.topic)}, sent ${String(s.rounds)} times.` };
    }
    case "digest/tally":
      return { sent: [...list(s.sent), s.emailId] };
    case "ab/pick":
      return { picks: Number(s.picks ?? 0) + 1 };
    case "ab/left":
    case "ab/right":
      return { path: [...list(s.path), node] };
    default:
      throw new Error(`grader bug: no body for ${graph}/${node}`);
  }
}
