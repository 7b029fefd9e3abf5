import { describe, expect, it } from "vitest";
import { SerializationError } from "./errors.ts";
import { JsonSerializer } from "./json-serde.ts";

describe("JsonSerializer", () => {
  const serde = new JsonSerializer();

  it("round-trips JSON values and undefined under their tags", () => {
    for (const value of [{ a: [1, "x", null, true] }, "text", 0, null, [], undefined]) {
      const [type, bytes] = serde.dumpsTyped(value);
      expect(type).toBe(value === undefined ? "undefined" : "json");
      expect(serde.loadsTyped(type, bytes)).toEqual(value);
    }
  });

  it("loses what JSON cannot say: a Date comes back as a string", () => {
    const [type, bytes] = serde.dumpsTyped({ at: new Date("2026-01-01T00:00:00Z") });
    expect(serde.loadsTyped(type, bytes)).toEqual({ at: "2026-01-01T00:00:00.000Z" });
  });

  it("refuses values JSON cannot hold and tags it did not write", () => {
    expect(() => serde.dumpsTyped(() => 1)).toThrow(SerializationError);
    expect(() => serde.dumpsTyped({ n: 1n })).toThrow(/cannot be stored as JSON/);
    expect(() => serde.loadsTyped("msgpack", new Uint8Array())).toThrow(/cannot read values tagged "msgpack"/);
    expect(() => serde.loadsTyped("json", new TextEncoder().encode("{oops"))).toThrow(/not valid JSON/);
  });
});
