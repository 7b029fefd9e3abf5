/**
 * An append-only log of review events in the checkpointer's SQLite file. A review's status is a
 * fold over its events; rows are never updated, and each (review, kind) is appended at most once.
 */
import type { SqliteSaver } from "#runtime";
import type { FinalResultEvent } from "./index.ts";
import type { ReviewAnswer, ReviewRequest } from "./graph.ts";

export type ReviewEvent =
  | { kind: "requested"; request: ReviewRequest }
  | { kind: "answered"; answer: ReviewAnswer }
  | { kind: "expired" }
  | { kind: "completed"; final: FinalResultEvent };

export interface ReviewView {
  request: ReviewRequest;
  answer?: ReviewAnswer;
  expired: boolean;
  final?: FinalResultEvent;
}

export function fold(events: ReviewEvent[]): ReviewView | undefined {
  let view: ReviewView | undefined;
  for (const event of events) {
    if (event.kind === "requested") view = { request: event.request, expired: false };
    else if (!view) continue;
    else if (event.kind === "answered") view.answer ??= event.answer;
    else if (event.kind === "expired") view.expired = true;
    else view.final ??= event.final;
  }
  return view;
}

export class ReviewLog {
  private readonly insert;
  private readonly select;

  constructor(db: SqliteSaver["db"], private readonly now: () => number) {
    db.exec(`CREATE TABLE IF NOT EXISTS hitl_review_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      thread_id TEXT NOT NULL,
      review_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      payload TEXT NOT NULL,
      at INTEGER NOT NULL,
      UNIQUE (review_id, kind)
    )`);
    this.insert = db.prepare(`INSERT OR IGNORE INTO hitl_review_events (thread_id, review_id, kind, payload, at) VALUES (?, ?, ?, ?, ?)`);
    this.select = db.prepare<[string, string], { payload: string }>(`SELECT payload FROM hitl_review_events WHERE thread_id = ? AND review_id = ? ORDER BY seq`);
  }

  append(threadId: string, reviewId: string, event: ReviewEvent): void {
    this.insert.run(threadId, reviewId, event.kind, JSON.stringify(event), this.now());
  }

  view(threadId: string, reviewId: string): ReviewView | undefined {
    return fold(this.select.all(threadId, reviewId).map((row) => JSON.parse(row.payload) as ReviewEvent));
  }
}
