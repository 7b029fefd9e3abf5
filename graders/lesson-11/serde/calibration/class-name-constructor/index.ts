/**
 * Planted mistake: a pickle-style decoder. A type name the allow-list does not know is
 * looked up on globalThis and constructed, so a payload chooses which constructor runs
 * (CWE-502). Everything else is the reference.
 */
import { TypedSerde, type CustomType, type SerdeOptions } from "../../../../../solutions/lesson-11/serde/index.ts";

export { CURRENT_VERSION, SerdeError, dumpsMetadata, loadsMetadata } from "../../../../../solutions/lesson-11/serde/index.ts";

class ClassNameSerde extends TypedSerde {
  protected override typeNamed(name: unknown): CustomType<any> | undefined {
    const registered = super.typeNamed(name);
    if (registered || typeof name !== "string") return registered;
    const found = (globalThis as Record<string, unknown>)[name];
    if (typeof found !== "function") return undefined;
    const Class = found as new () => object;
    return { name, class: Class, encode: (value) => value, decode: (data) => Object.assign(new Class(), data) };
  }
}

export const createSerde = (options: SerdeOptions = {}) => new ClassNameSerde(options);
const serde = new ClassNameSerde();
export const dumpsTyped = (value: unknown) => serde.dumpsTyped(value);
export const loadsTyped = (typed: readonly [string, Uint8Array]) => serde.loadsTyped(typed);
