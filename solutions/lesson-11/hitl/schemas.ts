/**
 * Request bodies, validated at the boundary. Unknown keys are refused (a typo
 * such as `enable_review` must not silently turn review off), and every
 * failure names the field so the caller knows what to fix.
 */
import { z } from "zod";
import { HttpError } from "./http-io.ts";

const id = z.string().min(1).max(128);

export const chatStreamBody = z.strictObject({
  user_id: id,
  session_id: id,
  query: z.string().min(1).max(8000),
  /** Review is on unless the caller turns it off: the safe default for a side-effecting graph. */
  enable_human_review: z.boolean().default(true),
});
export type ChatStreamBody = z.infer<typeof chatStreamBody>;

const editedArgs = z
  .strictObject({
    title: z.string().min(1).max(500),
    body: z.string().min(1).max(20_000),
  })
  .partial()
  .refine((args) => Object.keys(args).length > 0, "edited_args must change at least one of title, body");

export const resumeBody = z
  .strictObject({
    user_id: id,
    session_id: id,
    action: z.enum(["approve", "reject", "edit"]),
    approved: z.boolean(),
    /** For `edit`: the fields of the pending action's arguments to replace. */
    edited_args: editedArgs.optional(),
    /** Optional guard: the review this decision is about, as sent in `human_review_required`. */
    review_id: z.string().min(1).max(128).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.approved !== (body.action !== "reject")) {
      ctx.addIssue({ code: "custom", path: ["approved"], message: "approved must be true for approve and edit, false for reject" });
    }
    if (body.action === "edit" && body.edited_args === undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: 'edited_args is required when action is "edit"' });
    }
    if (body.action !== "edit" && body.edited_args !== undefined) {
      ctx.addIssue({ code: "custom", path: ["edited_args"], message: 'edited_args is only allowed when action is "edit"' });
    }
  });
export type ResumeBody = z.infer<typeof resumeBody>;

/** Parses `raw` (already JSON-decoded) or throws a 400 that names the first offending field. */
export function parseBody<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  // A failed parse reports at least one issue. An unknown key is reported on its object: name the key itself.
  const issue = parsed.error.issues[0]!;
  const field = issue.code === "unrecognized_keys" ? issue.keys[0] : issue.path.join(".") || undefined;
  const message = field === undefined ? `The request body must be a JSON object: ${issue.message}.` : `Field "${field}": ${issue.message}.`;
  throw new HttpError(400, "invalid_body", message, field);
}
