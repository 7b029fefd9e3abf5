/**
 * zod at the boundary: a malformed workflow or options object fails before anything runs or is saved.
 * zod's own messages name what was expected ("Invalid option: expected one of "pure"|"effect"") and
 * z.prettifyError adds where ("→ at nodes[0].kind"); only functions need a message of ours, since
 * z.custom can say no more than "Invalid input" (the path already names which function).
 */
import { z } from "zod";
import { RecoveryError } from "./errors.ts";
import type { RunOptions, Workflow, WorkflowState } from "./types.ts";

const fn = z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", { message: "Invalid input: expected a function" });
const name = z.string().min(1);

const NodeSchema = z.object({
  name,
  kind: z.enum(["pure", "effect"]),
  run: fn,
  compensate: fn.optional(),
  next: z.union([z.array(name), fn]).optional(),
  maxAttempts: z.int().min(1).optional(),
  revalidate: fn.optional(),
});

const WorkflowSchema = z.object({
  schemaVersion: z.int().min(1),
  start: z.array(name),
  nodes: z.array(NodeSchema).min(1),
  migrate: fn.optional(),
});

const RunOptionsSchema = z.object({
  saver: z.object({ getTuple: fn, put: fn, putWrites: fn }),
  threadId: z.string().min(1),
  sqliteFile: z.string().min(1).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  checkpointId: z.string().min(1).optional(),
  onReport: fn.optional(),
});

export function parseWorkflow<S extends WorkflowState>(workflow: Workflow<S>): Workflow<S> {
  const parsed = WorkflowSchema.safeParse(workflow);
  if (!parsed.success) throw new RecoveryError(`Invalid workflow:\n${z.prettifyError(parsed.error)}`);
  const names = new Set<string>();
  for (const node of parsed.data.nodes) {
    if (names.has(node.name)) throw new RecoveryError(`Invalid workflow: two nodes are named "${node.name}"; names identify tasks, so they must be unique.`);
    names.add(node.name);
  }
  const targets = [...parsed.data.start, ...parsed.data.nodes.flatMap((node) => (Array.isArray(node.next) ? node.next : []))];
  const unknown = targets.find((target) => !names.has(target));
  if (unknown) throw new RecoveryError(`Invalid workflow: "${unknown}" is used as a start or next node but no node has that name.`);
  return workflow; // the caller's object: its functions keep their own `this`
}

export function parseRunOptions<S extends WorkflowState>(options: RunOptions<S>): RunOptions<S> {
  const parsed = RunOptionsSchema.safeParse(options);
  if (!parsed.success) throw new RecoveryError(`Invalid run options:\n${z.prettifyError(parsed.error)}`);
  return options;
}
