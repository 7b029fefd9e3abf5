/**
 * Child entry of the hitl grader: loads the submission (CHECKPOINT_KIT_UNIT_DIR),
 * creates its server with the ledger effects and a clock the grader can move,
 * and serves on an ephemeral 127.0.0.1 port.
 */
import { runServerChild } from "#harness/http.ts";
import { loadImplementation } from "#harness/implementation.ts";
import type * as Api from "../../../solutions/lesson-11/hitl/index.ts";
import { ADVANCE_CLOCK, ENV, ledgerEffects } from "./fixture.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; this entry is started by the hitl grader.`);
  return value;
}

let clockOffsetMs = 0;

await runServerChild(
  async () => {
    const { createHitlServer } = await loadImplementation<typeof Api>("lesson-11", "hitl", ["createHitlServer"]);
    const created = createHitlServer({
      dbPath: required(ENV.dbPath),
      effects: ledgerEffects(required(ENV.ledgerPath)),
      reviewTtlMs: Number(required(ENV.reviewTtlMs)),
      now: () => Date.now() + clockOffsetMs,
    });
    if (!created || typeof created.server?.listen !== "function") {
      throw new Error("createHitlServer must return { server, close } where server is a node:http Server.");
    }
    return created;
  },
  (command, payload) => {
    if (command !== ADVANCE_CLOCK) throw new Error(`unknown control command ${command}`);
    clockOffsetMs += Number((payload as { ms: number }).ms);
    return clockOffsetMs;
  },
);
