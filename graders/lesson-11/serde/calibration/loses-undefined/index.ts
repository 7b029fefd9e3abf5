/**
 * Planted mistake: undefined is written as null (what JSON.stringify does inside arrays),
 * so "not set" and "set to null" become the same thing after a resume.
 */
import { TypedSerde, type SerdeOptions } from "../../../../../solutions/lesson-11/serde/index.ts";

export { CURRENT_VERSION, SerdeError, dumpsMetadata, loadsMetadata } from "../../../../../solutions/lesson-11/serde/index.ts";

class NullForUndefinedSerde extends TypedSerde {
  protected override encode(value: unknown, path: string, seen: Set<object>, depth: number) {
    return value === undefined ? null : super.encode(value, path, seen, depth);
  }
}

export const createSerde = (options: SerdeOptions = {}) => new NullForUndefinedSerde(options);
const serde = new NullForUndefinedSerde();
export const dumpsTyped = (value: unknown) => serde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]) => serde.loadsTyped(typed);
