/**
 * The key scheme. Every id component is encoded so that it can contain neither
 * the separator `$` nor a glob character: a key then has exactly one parse, and
 * a MATCH pattern built from an id matches that id only.
 *
 *   checkpoint$<thread>$<ns>$<checkpoint_id>              hash: type, body, metadata, parent, ts
 *   writes$<thread>$<ns>$<checkpoint_id>$<task_id>$<idx>  string: one pending write (JSON)
 *   writeset$<thread>$<ns>$<checkpoint_id>                set: the writes keys of that checkpoint
 *   cpindex$<thread>$<ns>                                 zset, all scores 0: checkpoint ids in lex = creation order
 *   cpindex$<thread>$<ns>$<field>$<json value>            zset, same shape: ids whose metadata[field] is that value
 *   threadindex$<thread>$                                 zset: <id>$<ns> for every namespace of the thread (list without a namespace)
 *   allindex                                              zset: <id>$<thread>$<ns> for every thread (list without a thread)
 *   blob$<thread>$<ns>$<channel>$<version>                string: a versioned channel's value, once per version (JSON, like a write)
 *
 * `allindex` has no `$`, so no thread's MATCH pattern reaches it: deleteThread
 * removes that thread's members from it by name instead.
 */

/** The metadata fields with an index of their own (the seed's practical question: stage and user). */
export const INDEXED_FIELDS = ["stage", "userId"] as const;
export type IndexedField = (typeof INDEXED_FIELDS)[number];

/**
 * Percent-encodes `%` (so decoding is unambiguous), the separator, and every character special to Redis globs
 * (`^` is not one: it negates only inside brackets, and brackets are encoded). Each of them has a two-digit code.
 */
export function encodeComponent(raw: string): string {
  return raw.replace(/[%$*?[\]\\]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function decodeComponent(encoded: string): string {
  return encoded.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

const scope = (threadId: string, ns: string) => `${encodeComponent(threadId)}$${encodeComponent(ns)}`;

export const keys = {
  checkpoint: (threadId: string, ns: string, id: string) => `checkpoint$${scope(threadId, ns)}$${encodeComponent(id)}`,
  write: (threadId: string, ns: string, id: string, taskId: string, idx: number) =>
    `writes$${scope(threadId, ns)}$${encodeComponent(id)}$${encodeComponent(taskId)}$${idx}`,
  writeSet: (threadId: string, ns: string, id: string) => `writeset$${scope(threadId, ns)}$${encodeComponent(id)}`,
  index: (threadId: string, ns: string) => `cpindex$${scope(threadId, ns)}`,
  fieldIndex: (threadId: string, ns: string, field: IndexedField, value: unknown) =>
    `cpindex$${scope(threadId, ns)}$${field}$${encodeComponent(JSON.stringify(value))}`,
  threadIndex: (threadId: string) => `threadindex$${encodeComponent(threadId)}$`,
  allIndex: () => "allindex",
  blob: (threadId: string, ns: string, channel: string, version: string | number) =>
    `blob$${scope(threadId, ns)}$${encodeComponent(channel)}$${encodeComponent(String(version))}`,
  /** Every key of a thread, whatever its kind or namespace; safe because the thread id is encoded. */
  threadPattern: (threadId: string) => `*$${encodeComponent(threadId)}$*`,
};

/** A checkpoint as a member of the wider indexes: its id first, so members sort by id as in the per-namespace index. */
export const members = {
  ofThread: (id: string, ns: string) => `${encodeComponent(id)}$${encodeComponent(ns)}`,
  ofAll: (id: string, threadId: string, ns: string) => `${encodeComponent(id)}$${encodeComponent(threadId)}$${encodeComponent(ns)}`,
  /** The checkpoint a member of either wider index names; `threadId` fills in what a thread index member leaves out. */
  parse(member: string, threadId?: string): { threadId: string; checkpointNs: string; id: string } {
    const parts = member.split("$").map(decodeComponent);
    return parts.length === 2 ? { id: parts[0]!, threadId: threadId!, checkpointNs: parts[1]! } : { id: parts[0]!, threadId: parts[1]!, checkpointNs: parts[2]! };
  },
};
