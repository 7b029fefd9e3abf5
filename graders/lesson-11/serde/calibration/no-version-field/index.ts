/**
 * Planted mistake: the format version is never read. Every body is decoded as if the
 * current code wrote it: old bodies skip their migration, and bodies from a newer
 * writer are decoded by rules that do not apply to them.
 */
import { CURRENT_VERSION, TypedSerde, type SerdeOptions } from "../../../../../solutions/lesson-11/serde/index.ts";

export { CURRENT_VERSION, SerdeError, dumpsMetadata, loadsMetadata } from "../../../../../solutions/lesson-11/serde/index.ts";

class VersionBlindSerde extends TypedSerde {
  override loadsTyped([tag, bytes]: readonly [string, Uint8Array]): unknown {
    const asCurrent = new Uint8Array(bytes);
    if (asCurrent.length > 2) asCurrent[2] = CURRENT_VERSION;
    return super.loadsTyped([tag, asCurrent]);
  }
}

export const createSerde = (options: SerdeOptions = {}) => new VersionBlindSerde(options);
const serde = new VersionBlindSerde();
export const dumpsTyped = (value: unknown) => serde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]) => serde.loadsTyped(typed);
