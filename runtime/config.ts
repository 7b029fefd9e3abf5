/**
 * Validation at the runtime's boundaries (zod), shared by the savers and the
 * graph so every entry point refuses bad input with the same clear message.
 */
import { z } from "zod";
import { InvalidArgumentError } from "./errors.ts";
import type { CheckpointMetadata, ListConfig, ListOptions, RunnableConfig } from "./types.ts";

/** A config with the namespace filled in; `checkpointId` still optional. */
export type ResolvedConfig = { threadId: string; checkpointNs: string; checkpointId?: string };

const configSchema = z.object({
  threadId: z.string().min(1),
  checkpointNs: z.string().optional(),
  checkpointId: z.string().min(1).optional(),
});

export function parseConfig(config: unknown, call: string): ResolvedConfig {
  const parsed = configSchema.safeParse(config);
  if (!parsed.success) {
    throw new InvalidArgumentError(
      `${call} needs a config like { threadId: "thread-1" } (optionally checkpointNs, checkpointId): ${describeIssues(parsed.error)}.`,
    );
  }
  const { threadId, checkpointNs = "", checkpointId } = parsed.data;
  return checkpointId === undefined ? { threadId, checkpointNs } : { threadId, checkpointNs, checkpointId };
}

/**
 * For getTuple(): a config without `threadId` names no checkpoint, so the answer
 * is undefined (LangGraph's savers do the same); anything else malformed is refused.
 */
export function parseLookupConfig(config: unknown, call: string): ResolvedConfig | undefined {
  if (typeof config === "object" && config !== null && (config as { threadId?: unknown }).threadId === undefined) {
    parseConfig({ ...config, threadId: "-" }, call); // the other fields must still be well formed
    return undefined;
  }
  return parseConfig(config, call);
}

/** A list() scope: `undefined` thread means every thread; `undefined` namespace means every namespace. */
export type ResolvedListConfig = { threadId?: string; checkpointNs?: string; checkpointId?: string };

const listConfigSchema = z.object({
  threadId: z.string().min(1).optional(),
  checkpointNs: z.string().nullable().optional(),
  checkpointId: z.string().min(1).optional(),
});

export function parseListConfig(config: ListConfig | undefined, call = "list()"): ResolvedListConfig {
  const parsed = listConfigSchema.safeParse(config ?? {});
  if (!parsed.success) {
    throw new InvalidArgumentError(
      `${call} needs a config like { threadId: "thread-1" } (threadId optional: every thread; checkpointNs: null for every namespace): ${describeIssues(parsed.error)}.`,
    );
  }
  const { threadId, checkpointNs = "", checkpointId } = parsed.data;
  return {
    ...(threadId !== undefined && { threadId }),
    ...(checkpointNs !== null && { checkpointNs }),
    ...(checkpointId !== undefined && { checkpointId }),
  };
}

/** Whether a stored checkpoint lies in a list() scope (for savers that walk more than the scope). */
export function inListScope(scope: ResolvedListConfig, threadId: string, checkpointNs: string, checkpointId: string): boolean {
  return (
    (scope.threadId === undefined || scope.threadId === threadId) &&
    (scope.checkpointNs === undefined || scope.checkpointNs === checkpointNs) &&
    (scope.checkpointId === undefined || scope.checkpointId === checkpointId)
  );
}

/** For calls about one existing checkpoint (putWrites): the id is mandatory. */
export function parseCheckpointConfig(config: unknown, call: string): Required<ResolvedConfig> {
  const resolved = parseConfig(config, call);
  if (resolved.checkpointId === undefined) {
    throw new InvalidArgumentError(`${call} needs config.checkpointId: writes belong to one checkpoint; pass the config put() returned.`);
  }
  return { ...resolved, checkpointId: resolved.checkpointId };
}

const jsonPrimitive = z.union([z.string(), z.number().finite(), z.boolean(), z.null()]);

export interface ParsedListOptions {
  /** Only ids strictly smaller than this one. */
  beforeId?: string;
  limit?: number;
  filter: Array<[key: string, value: string | number | boolean | null]>;
}

export function parseListOptions(options: ListOptions | undefined): ParsedListOptions {
  const { before, limit, filter = {} } = options ?? {};
  let beforeId: string | undefined;
  if (before !== undefined) {
    beforeId = parseListConfig(before, "list({ before })").checkpointId;
    if (beforeId === undefined) {
      throw new InvalidArgumentError("list({ before }) needs before.checkpointId: pass the config of the checkpoint to list back from.");
    }
  }
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new InvalidArgumentError(`list({ limit }) needs a positive integer, got ${String(limit)}.`);
  }
  if (typeof filter !== "object" || filter === null || Array.isArray(filter)) {
    throw new InvalidArgumentError("list({ filter }) needs an object of metadata keys and values, e.g. { filter: { stage: \"review\" } }.");
  }
  const entries = Object.entries(filter).map(([key, value]): [string, z.infer<typeof jsonPrimitive>] => {
    const parsed = jsonPrimitive.safeParse(value);
    if (!parsed.success) {
      // Matching objects would need a deep-equality rule each saver implements alike; refuse rather than guess.
      throw new InvalidArgumentError(
        `list({ filter }) cannot match metadata key "${key}" against ${JSON.stringify(value) ?? String(value)}: ` +
          `filter values must be strings, finite numbers, booleans or null (exact match on a top-level metadata key).`,
      );
    }
    return [key, parsed.data];
  });
  return { ...(beforeId !== undefined && { beforeId }), ...(limit !== undefined && { limit }), filter: entries };
}

/** Exact match of every filter key on the top-level metadata: one rule for every saver. */
export function matchesFilter(metadata: CheckpointMetadata, filter: ParsedListOptions["filter"]): boolean {
  return filter.every(([key, value]) => Object.hasOwn(metadata, key) && metadata[key] === value);
}

const RESERVED_METADATA_KEYS = ["source", "step", "node", "parents"];

const invokeOptionsSchema = z.object({
  /** Extra checkpoint metadata (stage, userId...), stamped on every checkpoint this call writes. */
  metadata: z.record(z.string(), z.json()).default({}),
  /** Most super-steps one call may run; a routing loop fails instead of spinning (LangGraph's default is 25 too). */
  recursionLimit: z.number().int().positive().default(25),
});

export type InvokeOptions = z.input<typeof invokeOptionsSchema>;

export function parseInvokeOptions(options: unknown): z.output<typeof invokeOptionsSchema> {
  const parsed = invokeOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    throw new InvalidArgumentError(
      `invoke()/stream() options are { metadata?: { ...JSON values }, recursionLimit?: positive integer }: ${describeIssues(parsed.error)}.`,
    );
  }
  const clash = RESERVED_METADATA_KEYS.filter((key) => Object.hasOwn(parsed.data.metadata, key));
  if (clash.length > 0) {
    throw new InvalidArgumentError(
      `options.metadata may not set ${clash.join(", ")}: the runtime writes those itself. Rename the field (e.g. "userStep").`,
    );
  }
  return parsed.data;
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "(value)"}: ${issue.message}`).join("; ");
}
