import { SerializationError } from "./errors.ts";
import type { SerializerProtocol } from "./types.ts";

// Made once: building a TextEncoder/TextDecoder costs more than coding a small value with it.
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The default serializer: UTF-8 JSON under the tag "json". It loses what JSON
 * cannot say (a Date comes back as a string, a Map as {}); the serde unit
 * builds the typed serializer that fixes that.
 */
export class JsonSerializer implements SerializerProtocol {
  dumpsTyped(value: unknown): [type: string, bytes: Uint8Array] {
    // JSON has no undefined; a tag of its own keeps "channel set to undefined" distinct from null.
    if (value === undefined) return ["undefined", new Uint8Array()];
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw new SerializationError(`Value cannot be stored as JSON (${(error as Error).message}); keep state to plain JSON data or use a typed serializer.`);
    }
    if (text === undefined) {
      throw new SerializationError(`A ${typeof value} cannot be stored as JSON; keep state to plain JSON data.`);
    }
    return ["json", encoder.encode(text)];
  }

  loadsTyped(type: string, bytes: Uint8Array): unknown {
    if (type === "undefined") return undefined;
    if (type !== "json") {
      throw new SerializationError(`JsonSerializer cannot read values tagged "${type}"; use the serializer that wrote them.`);
    }
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (error) {
      throw new SerializationError(`Stored value tagged "json" is not valid JSON: ${(error as Error).message}`);
    }
  }
}
