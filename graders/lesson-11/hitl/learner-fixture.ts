/**
 * Learner-side fixture of the hitl grader (trusted code loaded next to the
 * learner's module in its process): starts the learner's server on the
 * process's own loopback, and provides the clock the server is given.
 *
 * The clock is synchronous (`now: () => number` in the contract), so it must
 * live in the learner's process; the grader moves it with advanceClock.
 * The effects are not here: they are trusted-side functions, so their ledger
 * lives where the learner's code cannot reach it.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

let offsetMs = 0;

export function now(): number {
  return Date.now() + offsetMs;
}

export function advanceClock(ms: number): number {
  offsetMs += ms;
  return offsetMs;
}

let started: { close?: unknown } | undefined;

/** Calls the learner's close() on the server start() made last; "resolved" or "timeout" after `waitMs`. */
export async function stop(waitMs: number): Promise<"resolved" | "timeout"> {
  const close = started?.close;
  if (typeof close !== "function") throw new Error("stop() before start()");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    Promise.resolve(close.call(started)).then(() => "resolved" as const),
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), waitMs))),
  ]);
  clearTimeout(timer);
  return outcome;
}

/** Calls the learner's createHitlServer with `options` (+ this clock), listens on 127.0.0.1:0, and returns the port. */
export async function start(createHitlServer: (options: unknown) => unknown, options: Record<string, unknown>): Promise<number> {
  const created = (await createHitlServer({ ...options, now })) as { server?: Server; close?: unknown } | undefined;
  const server = created?.server;
  if (!server || typeof server.listen !== "function" || typeof server.address !== "function" || typeof created?.close !== "function") {
    throw new Error("createHitlServer must return { server, close } where server is a node:http Server that is not listening yet.");
  }
  started = created;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
