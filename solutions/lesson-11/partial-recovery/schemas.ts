/**
 * zod at the boundary: a malformed workflow or options object fails before anything runs or is saved.
 * zod's own messages name what was expected ("Invalid option: expected one of "pure"|"effect"") and
 * z.prettifyError adds where ("→ at nodes[0].kind"); only functions need a message of ours, since
 * z.custom can say no more than "Invalid input".
 */
import { z } from "zod";
import { RecoveryError } from "./errors.ts";
import type { RunOptions, Workflow, WorkflowState } from "./types.ts";

const fn = (what: string) => z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", { message: `${what} must be a function` });
const name = z.string().min(1);

const NodeSchema = z.object({
  name,
  kind: z.enum(["pure", "effect"]),
  run: fn("run"),
  compensate: fn("compensate").optional(),
  next: z.union([z.array(name), fn("next")]).optional(),
  maxAttempts: z.int().min(1).optional(),
});

const WorkflowSchema = z.object({
  schemaVersion: z.int().min(1),
  start: z.array(name).min(1),
  nodes: z.array(NodeSchema).min(1),
  migrate: fn("migrate").optional(),
});

const RunOptionsSchema = z.object({
  saver: z.object({ getTuple: fn("saver.getTuple"), put: fn("saver.put"), putWrites: fn("saver.putWrites") }),
  threadId: z.string().min(1),
  sqliteFile: z.string().min(1).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  checkpointId: z.string().min(1).optional(),
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
