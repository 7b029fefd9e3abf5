/**
 * Planted gap (adequate, not excellent): correct types, but no compression and no limit
 * on what a body may inflate to, so a 1 MB state stays 1 MB and a gzip bomb is inflated
 * in full.
 */
import { constants } from "node:buffer";
import { TypedSerde, type SerdeOptions } from "../../../../../solutions/lesson-11/serde/index.ts";

export { CURRENT_VERSION, SerdeError, dumpsMetadata, loadsMetadata } from "../../../../../solutions/lesson-11/serde/index.ts";

const unbounded = (options: SerdeOptions = {}) => new TypedSerde({ ...options, compressAbove: Infinity, maxDecodedBytes: constants.MAX_LENGTH });

export const createSerde = unbounded;
const serde = unbounded();
export const dumpsTyped = (value: unknown) => serde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]) => serde.loadsTyped(typed);
