/**
 * lesson-11 / serde: typed serialization of checkpoints.
 *
 * Format version 2 body: postfix bytecode for a small stack machine (bytecode.ts). The writer
 * and the reader both run on explicit stacks, never on the call stack, so the depth of a value
 * is bounded by memory and by maxDecodedBytes, not by a recursion limit: an agent state that
 * nests deeply (a linked list of messages, a parse tree) is written and resumed intact, and a
 * hostile body nested a million levels deep is just a long body. Cycles are refused on dump.
 *
 * Version-1 bodies are migrated (migrate-v1.ts) into version-2 bytecode and run by the same
 * reader, so type names are resolved against the registered types in one place only.
 */
import { errorText, MAX_DEPTH, open, seal, settingsFrom } from "./envelope.ts";
import { decode, encode } from "./bytecode.ts";
import { migrateV1 } from "./migrate-v1.ts";

export const CURRENT_VERSION = 2;

export type SerdeErrorCode =
  | "BAD_OPTIONS"
  | "UNKNOWN_TAG"
  | "MALFORMED"
  | "CHECKSUM"
  | "UNSUPPORTED_VERSION"
  | "TOO_LARGE"
  | "UNSUPPORTED_VALUE"
  | "UNKNOWN_TYPE"
  | "CYCLE"
  | "TOO_DEEP";

export class SerdeError extends Error {
  override name = "SerdeError";
  constructor(
    readonly code: SerdeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A class the serializer may rebuild: one entry of the allow-list. */
export interface CustomType<T = unknown> {
  /** Stable name written into the payload. */
  name: string;
  class: abstract new (...args: never[]) => T;
  encode(value: T): unknown;
  decode(data: unknown): T;
}

export interface SerdeOptions {
  types?: CustomType<any>[];
  /** Body size in bytes above which the body is gzipped (default: your choice, e.g. 64 KiB). */
  compressAbove?: number;
  /** Largest body accepted on decode, after decompression. */
  maxDecodedBytes?: number;
}

export interface Serde {
  dumpsTyped(value: unknown): [typeTag: string, bytes: Uint8Array];
  loadsTyped(typed: readonly [typeTag: string, bytes: Uint8Array]): unknown;
}

type Migration = (body: Uint8Array) => Uint8Array;
/** MIGRATIONS[n] turns a body of format version n into one of version n + 1. */
const MIGRATIONS: Record<number, Migration> = { 1: migrateV1 };

function describe(v: object): string {
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  return typeof name === "string" && name ? `an instance of ${name}` : "an object with a foreign prototype";
}

export function createSerde(options: SerdeOptions = {}): Serde {
  const settings = settingsFrom(options);
  return {
    dumpsTyped(value) {
      return seal(encode(value, settings), settings);
    },
    loadsTyped(typed) {
      let { version, body } = open(typed, settings);
      while (version < CURRENT_VERSION) {
        const migrate = MIGRATIONS[version];
        if (!migrate) throw new SerdeError("UNSUPPORTED_VERSION", `format version ${version} has no migration to ${version + 1}`);
        body = migrate(body);
        version += 1;
      }
      return decode(body, settings);
    },
  };
}

const defaultSerde = createSerde();
export const dumpsTyped = (value: unknown): [string, Uint8Array] => defaultSerde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]): unknown => defaultSerde.loadsTyped(typed);

/** Metadata: plain JSON values only, so a filter on it means what it says. */
function checkMetadata(root: unknown): void {
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new SerdeError("UNSUPPORTED_VALUE", "metadata must be a plain object");
  }
  const onPath = new Set<object>();
  const visit = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new SerdeError("UNSUPPORTED_VALUE", `${path} is ${v}, which JSON cannot hold`);
      return;
    }
    if (typeof v !== "object") throw new SerdeError("UNSUPPORTED_VALUE", `${path} is ${typeof v === "undefined" ? "undefined" : `a ${typeof v}`}; metadata holds JSON values only`);
    if (depth > MAX_DEPTH) throw new SerdeError("TOO_DEEP", `metadata nests deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(v)) throw new SerdeError("CYCLE", `${path} contains itself`);
    const proto = Object.getPrototypeOf(v);
    onPath.add(v);
    if (Array.isArray(v) && proto === Array.prototype) {
      for (let i = 0; i < v.length; i++) {
        if (!Object.hasOwn(v, i)) throw new SerdeError("UNSUPPORTED_VALUE", `${path}[${i}] is a hole; JSON would write null`);
        visit(v[i], `${path}[${i}]`, depth + 1);
      }
    } else if (proto === Object.prototype || proto === null) {
      for (const k of Object.keys(v)) visit((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
    } else {
      throw new SerdeError("UNSUPPORTED_VALUE", `${path} is ${describe(v)}; metadata holds JSON values only (write dates as ISO strings or epoch ms)`);
    }
    onPath.delete(v);
  };
  visit(root, "metadata", 0);
}

export function dumpsMetadata(metadata: Record<string, unknown>): string {
  checkMetadata(metadata);
  return JSON.stringify(metadata);
}

export function loadsMetadata(json: string): Record<string, unknown> {
  if (typeof json !== "string") throw new SerdeError("MALFORMED", "metadata must be a JSON string");
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new SerdeError("MALFORMED", `metadata is not JSON: ${errorText(err)}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new SerdeError("MALFORMED", "metadata must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}
