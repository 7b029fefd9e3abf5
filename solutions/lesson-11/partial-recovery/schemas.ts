/** zod at the boundary: a malformed workflow or options object fails before anything runs or is saved. */
import { z } from "zod";
import { RecoveryError } from "./errors.ts";
import type { RunOptions, Workflow, WorkflowState } from "./types.ts";

const fn = (what: string) => z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", { message: `${what} must be a function` });
const name = z.string().min(1, "a node name must be a non-empty string");

const NodeSchema = z.object({
  name,
  kind: z.enum(["pure", "effect"], { message: 'kind must be "pure" or "effect"' }),
  run: fn("run"),
  compensate: fn("compensate").optional(),
  next: z.union([z.array(name), fn("next")]).optional(),
  maxAttempts: z.int().min(1, "maxAttempts must be at least 1").optional(),
});

const WorkflowSchema = z.object({
  schemaVersion: z.int().min(1, "schemaVersion must be an integer >= 1"),
  start: z.array(name).min(1, "start must name at least one node"),
  nodes: z.array(NodeSchema).min(1, "a workflow needs at least one node"),
  migrate: fn("migrate").optional(),
});

const RunOptionsSchema = z.object({
  saver: z.object({ getTuple: fn("saver.getTuple"), put: fn("saver.put"), putWrites: fn("saver.putWrites") }, { message: "saver must be a CheckpointSaver" }),
  threadId: z.string().min(1, "threadId must be a non-empty string"),
  sqliteFile: z.string().min(1, "sqliteFile must be a non-empty path").optional(),
  input: z.record(z.string(), z.unknown(), { message: "input must be a plain object (the initial state)" }).optional(),
  checkpointId: z.string().min(1, "checkpointId must be a non-empty string").optional(),
});

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "value"}: ${issue.message}`).join("; ");
}

export function parseWorkflow<S extends WorkflowState>(workflow: Workflow<S>): Workflow<S> {
  const parsed = WorkflowSchema.safeParse(workflow);
  if (!parsed.success) throw new RecoveryError(`Invalid workflow (${describe(parsed.error)}).`);
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
  if (!parsed.success) throw new RecoveryError(`Invalid run options (${describe(parsed.error)}).`);
  return options;
}
