/**
 * The channel grading results travel on, from a unit's grading process to the
 * engine. Every line is signed with a key the engine hands over on stdin (never
 * in argv or the environment), so nothing the submission prints or writes to an
 * inherited descriptor can pass for a result.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";

export const RESULT_FD = 3;

export const RawCheckSchema = z.strictObject({
  id: z.string(),
  title: z.string(),
  meta: z.record(z.string(), z.unknown()).optional(),
  state: z.enum(["passed", "failed", "skipped", "pending"]),
  errors: z.array(z.string()),
  output: z.string(),
  durationMs: z.number(),
  note: z.string().optional(),
});
export type RawCheck = z.infer<typeof RawCheckSchema>;

export const UnitMessageSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("done"),
    checks: z.array(RawCheckSchema),
    /** Errors outside any check: the grader file failed, the worker died. */
    moduleErrors: z.array(z.string()),
  }),
]);
export type UnitMessage = z.infer<typeof UnitMessageSchema>;

function mac(key: Buffer, body: string): string {
  return createHmac("sha256", key).update(body).digest("hex");
}

export function signLine(key: Buffer, message: UnitMessage): string {
  const body = JSON.stringify(message);
  return `${JSON.stringify({ body, mac: mac(key, body) })}\n`;
}

/** Returns the message, or undefined for a line that is not ours (forged, truncated, garbage). */
export function verifyLine(key: Buffer, line: string): UnitMessage | undefined {
  try {
    const envelope = z.strictObject({ body: z.string(), mac: z.string() }).parse(JSON.parse(line));
    const expected = Buffer.from(mac(key, envelope.body), "hex");
    const given = Buffer.from(envelope.mac, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    return UnitMessageSchema.parse(JSON.parse(envelope.body));
  } catch {
    return undefined;
  }
}
