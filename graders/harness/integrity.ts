/**
 * Notices a submission that tampers with the grading environment: replaces
 * globals the checks rely on (Date, Math.random, timers, JSON, Promise), adds
 * keys to Object.prototype, or disarms the assertion library. References are
 * captured when the grader loads, before any submission code runs.
 */
import assert from "node:assert/strict";
import { expect } from "vitest";

/** The globals checks rely on, by name; read once at load and again after each check. */
function globalsNow() {
  return {
    Date: globalThis.Date,
    "Date.now": Date.now,
    "Math.random": Math.random,
    setTimeout: globalThis.setTimeout,
    setInterval: globalThis.setInterval,
    setImmediate: globalThis.setImmediate,
    Promise: globalThis.Promise,
    "JSON.parse": JSON.parse,
    "JSON.stringify": JSON.stringify,
    "Object.is": Object.is,
    "Object.keys": Object.keys,
    "Array.prototype.push": Array.prototype.push,
    "Function.prototype.call": Function.prototype.call,
  };
}
const pristine = globalsNow();

const prototypes: Array<[string, object]> = [
  ["Object.prototype", Object.prototype],
  ["Array.prototype", Array.prototype],
  ["Function.prototype", Function.prototype],
  ["Promise.prototype", Promise.prototype],
];
const prototypeKeys = new Map(prototypes.map(([name, proto]) => [name, Reflect.ownKeys(proto).length]));

/** Assertions that must fail; if one passes, the assertion library was disarmed. */
const mustFail: Array<[string, () => void]> = [
  ["expect().toBe", () => expect(1).toBe(2)],
  ["expect().toEqual", () => expect({ a: 1 }).toEqual({ a: 2 })],
  ["expect().toStrictEqual", () => expect([1]).toStrictEqual([2])],
  ["expect().toContain", () => expect([1]).toContain(2)],
  ["expect().toMatch", () => expect("a").toMatch(/b/)],
  ["expect().toThrow", () => expect(() => undefined).toThrow()],
  ["expect().toBeGreaterThan", () => expect(1).toBeGreaterThan(2)],
  ["expect().toBeLessThanOrEqual", () => expect(2).toBeLessThanOrEqual(1)],
  ["expect().toBeUndefined", () => expect(1).toBeUndefined()],
  ["expect().toBeDefined", () => expect(undefined).toBeDefined()],
  ["expect().toBeTruthy", () => expect(0).toBeTruthy()],
  ["expect().toBeInstanceOf", () => expect({}).toBeInstanceOf(Map)],
  ["expect().toHaveLength", () => expect([]).toHaveLength(1)],
  ["expect().not.toBe", () => expect(1).not.toBe(1)],
  ["assert.equal", () => assert.equal(1, 2)],
  ["assert.deepEqual", () => assert.deepEqual({ a: 1 }, { a: 2 })],
  ["assert.ok", () => assert.ok(false)],
  ["assert.throws", () => assert.throws(() => undefined)],
];

/** Returns what was tampered with, or undefined when the environment is intact. */
export function findTampering(): string | undefined {
  const now = globalsNow();
  for (const name of Object.keys(pristine) as Array<keyof typeof pristine>) {
    if (now[name] !== pristine[name]) return `replaced ${name}`;
  }
  for (const [name, proto] of prototypes) {
    if (Reflect.ownKeys(proto).length !== prototypeKeys.get(name)) return `added or removed keys on ${name}`;
  }
  for (const [name, assertion] of mustFail) {
    let failed = false;
    try {
      assertion();
    } catch {
      failed = true;
    }
    if (!failed) return `disarmed ${name}`;
  }
  return undefined;
}
