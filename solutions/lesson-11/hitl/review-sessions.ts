/**
 * What the two endpoints do, without HTTP: start a turn of a session, and
 * answer its pending review. Requests that cannot run throw an HttpError (a
 * 4xx with a stable code); runs stream their events into an EventSink.
 *
 * Three rules carry the lesson:
 * - the checkpoint is the only record of a pending review (nothing in memory);
 * - an answer continues the checkpointed run (Command({ resume })), it never starts a new one;
 * - one request at a time per session, and a repeated answer gets the recorded result.
 */
import { isDeepStrictEqual } from "node:util";
import { Command } from "#runtime";
import { HttpError } from "./http-io.ts";
import { KeyedMutex } from "./keyed-mutex.ts";
import { newTurnInput, type ReviewAnswer, type ReviewGraph, type ReviewRequest, type TurnState } from "./review-graph.ts";
import type { ChatStreamBody, ResumeBody } from "./schemas.ts";
import type { ErrorEvent, FinalResultEvent, HumanReviewRequiredEvent, PublishArgs, StageEvent } from "./types.ts";

/** Where a run's events go (an SSE response in production). Opened only once a run really starts. */
export interface EventSink {
  send(event: "stage", data: StageEvent): void;
  send(event: "human_review_required", data: HumanReviewRequiredEvent): void;
  send(event: "final_result", data: FinalResultEvent): void;
  send(event: "error", data: ErrorEvent): void;
  end(): void;
}

/** What a session's latest checkpoint says, reduced to what the endpoints decide on. */
export interface SessionView {
  values: TurnState;
  /** Nodes still to run: non-empty after an interrupt or a failure. */
  next: string[];
  /** The review waiting for a decision, if any. */
  pendingReview: ReviewRequest | null;
}

type RunEvents = ReturnType<ReviewGraph["stream"]>;

export interface ReviewSessionsOptions {
  graph: ReviewGraph;
  now: () => number;
  logError: (message: string, error: unknown) => void;
}

export class ReviewSessions {
  readonly #mutex = new KeyedMutex();

  constructor(protected readonly options: ReviewSessionsOptions) {}

  /** POST /graph_v2/chat/stream */
  async startTurn(body: ChatStreamBody, openStream: () => EventSink): Promise<void> {
    const threadId = threadIdOf(body.user_id, body.session_id);
    await this.exclusive(threadId, async () => {
      let session = await this.loadSession(threadId);
      if (session?.pendingReview) {
        if (!this.isExpired(session.pendingReview)) {
          throw new HttpError(
            409,
            "review_pending",
            `Session "${body.session_id}" has review ${session.pendingReview.id} waiting for a decision; answer it with POST /graph/resume before sending a new message.`,
          );
        }
        await this.expireReview(threadId);
        session = await this.loadSession(threadId);
      }
      // Message-history accumulation: what the checkpoint holds for this session, plus the new message.
      const input = newTurnInput({
        userId: body.user_id,
        sessionId: body.session_id,
        query: body.query,
        needHumanReview: body.enable_human_review,
        history: session?.values.messages ?? [],
      });
      await this.streamRun(this.options.graph.stream(input, { threadId }), openStream(), body.session_id);
    });
  }

  /** POST /graph/resume */
  async resume(body: ResumeBody, openStream: () => EventSink): Promise<void> {
    const threadId = threadIdOf(body.user_id, body.session_id);
    await this.exclusive(threadId, async () => {
      const session = await this.loadSession(threadId);
      if (!session) {
        throw new HttpError(404, "session_not_found", `No session "${body.session_id}" for user "${body.user_id}"; start one with POST /graph_v2/chat/stream.`);
      }
      const review = session.pendingReview;
      if (!review) return this.answerAgain(threadId, body, session, openStream);
      refuseOtherReview(body, review);
      if (this.isExpired(review)) {
        await this.expireReview(threadId);
        throw reviewExpired(body.session_id, review);
      }
      const answer: ReviewAnswer = body.action === "edit" ? { decision: "edit", args: body.edited_args ?? {} } : { decision: body.action };
      await this.streamRun(this.continueWithAnswer(threadId, answer, session), openStream(), body.session_id);
    });
  }

  /** Runs `task` alone for this session: the one place concurrent requests of a session are serialized. */
  protected exclusive<T>(threadId: string, task: () => Promise<T>): Promise<T> {
    return this.#mutex.run(threadId, task);
  }

  /** The run that answers a pending review: the checkpointed run, continued with the answer. */
  protected continueWithAnswer(threadId: string, answer: ReviewAnswer, _session: SessionView): RunEvents {
    return this.options.graph.stream(new Command({ resume: answer }), { threadId });
  }

  /**
   * A resume that finds no pending review. The same answer again (a double
   * click, a retried request) gets the recorded result, or finishes a run that
   * failed after the decision; a different answer is refused.
   */
  private async answerAgain(threadId: string, body: ResumeBody, session: SessionView, openStream: () => EventSink): Promise<void> {
    const { values } = session;
    const review = values.review;
    // With no review pending, a turn that asked has a decision (answer or expiry), and one that did not ask has no review.
    if (!review) {
      throw new HttpError(409, "nothing_pending", `Session "${body.session_id}" has no review waiting for a decision; nothing to resume.`);
    }
    refuseOtherReview(body, review);
    if (values.decision === "expire") throw reviewExpired(body.session_id, review);
    const sameAnswer =
      values.decision === body.action &&
      (body.action !== "edit" || isDeepStrictEqual(mergeArgs(review.action.args, body.edited_args), values.action_args));
    if (!sameAnswer) {
      throw new HttpError(
        409,
        "already_resolved",
        `Review ${review.id} of session "${body.session_id}" was already answered with "${values.decision}"; a different answer is refused.`,
      );
    }
    if (session.next.length > 0) {
      // The answer is recorded but the run stopped after it (e.g. publish failed): continue that run.
      await this.streamRun(this.options.graph.stream(null, { threadId }), openStream(), body.session_id);
      return;
    }
    const sink = openStream();
    sink.send("final_result", { ...finalResult(values), replayed: true });
    sink.end();
  }

  private async loadSession(threadId: string): Promise<SessionView | undefined> {
    let snapshot: Awaited<ReturnType<ReviewGraph["getState"]>>;
    try {
      snapshot = await this.options.graph.getState({ threadId });
    } catch (error) {
      // Never treat an unreadable history as an empty one: the next checkpoint would erase the conversation.
      // Stryker disable next-line StringLiteral: the text of a server-side log line, never sent to the client
      this.options.logError(`hitl: could not read the state of ${threadId}`, error);
      throw new HttpError(503, "history_unavailable", "The session's history could not be read, so nothing was run; retry in a moment.");
    }
    if (!snapshot?.config.checkpointId) return undefined;
    const values = snapshot.values as TurnState;
    // The review node is next exactly while a review waits: check wrote the request, and the answer moves the run past it.
    return { values, next: [...snapshot.next], pendingReview: snapshot.next.includes("review") ? values.review : null };
  }

  private isExpired(review: ReviewRequest): boolean {
    return this.options.now() >= review.expiresAt;
  }

  /** Records the expiry in the checkpoint (no side effect runs), so every later answer is refused the same way. */
  private async expireReview(threadId: string): Promise<void> {
    await this.options.graph.invoke(new Command({ resume: { decision: "expire" } satisfies ReviewAnswer }), { threadId });
  }

  private async streamRun(events: RunEvents, sink: EventSink, sessionId: string): Promise<void> {
    let finalState: TurnState | undefined;
    try {
      for await (const event of events) {
        if (event.type === "update") {
          // Every node of the graph writes its stage.
          sink.send("stage", { session_id: sessionId, node: event.node, stage: (event.update as TurnState).stage });
        } else if (event.type === "interrupt") {
          sink.send("human_review_required", reviewRequiredEvent(sessionId, event.value as ReviewRequest));
        } else {
          finalState = event.state as TurnState;
        }
      }
      if (finalState?.status === "published" || finalState?.status === "rejected") {
        sink.send("final_result", finalResult(finalState));
      }
    } catch (error) {
      // Stryker disable next-line StringLiteral: the text of a server-side log line, never sent to the client
      this.options.logError(`hitl: the run of session ${sessionId} failed`, error);
      sink.send("error", {
        session_id: sessionId,
        code: "graph_failed",
        message: "The run failed; the conversation is saved. Send the message again to retry.",
        retryable: true,
      });
    } finally {
      sink.end();
    }
  }
}

/** One thread per (user, session): a session id alone must not reach another user's conversation. */
export function threadIdOf(userId: string, sessionId: string): string {
  return `hitl/${encodeURIComponent(userId)}/${encodeURIComponent(sessionId)}`;
}

function refuseOtherReview(body: ResumeBody, review: ReviewRequest): void {
  if (body.review_id !== undefined && body.review_id !== review.id) {
    throw new HttpError(409, "review_mismatch", `review_id ${body.review_id} is not the review of session "${body.session_id}" (${review.id}).`);
  }
}

function reviewExpired(sessionId: string, review: ReviewRequest): HttpError {
  return new HttpError(
    410,
    "review_expired",
    `Review ${review.id} of session "${sessionId}" expired at ${new Date(review.expiresAt).toISOString()}; nothing was published. Send the message again to get a new review.`,
  );
}

function mergeArgs(args: PublishArgs, edit: Partial<PublishArgs> | undefined): PublishArgs {
  return { ...args, ...edit };
}

function reviewRequiredEvent(sessionId: string, review: ReviewRequest): HumanReviewRequiredEvent {
  return {
    session_id: sessionId,
    review_id: review.id,
    pending_action: review.action,
    policy: review.policy,
    expires_at: new Date(review.expiresAt).toISOString(),
    allowed_actions: ["approve", "reject", "edit"],
  };
}

function finalResult(state: TurnState): FinalResultEvent {
  // A published or rejected turn always ends with the reply it added.
  const lastReply = state.messages.at(-1)!;
  return {
    session_id: state.session_id,
    status: state.status === "published" ? "published" : "rejected",
    review_id: state.review?.id ?? null,
    result: state.result,
    reply: lastReply.content,
  };
}
