/**
 * The channel between the trusted grading process and a learner process.
 *
 * Values cross as structured clones (Node's "advanced" IPC serialization keeps
 * Date, Map, Set, BigInt, typed arrays, undefined, NaN and -0). What cannot be
 * cloned without losing its meaning (functions, classes, class instances,
 * generators) crosses as a *handle*: the other side gets a proxy whose method
 * calls travel back and return promises. Errors cross as real Error objects
 * that remember their class, so `error instanceof api.SerdeError` still works.
 *
 * Both sides run the same Peer: the trusted side calls the learner's exports,
 * and the learner may call functions the trusted side passed in (callbacks,
 * providers), which are the only way it can add to the trusted side's evidence.
 *
 * This file is bundled into the learner process too: it imports nothing.
 */

export type Message =
  | { op: "call"; id: number; target: number; method: string | null; args: unknown[] }
  | { op: "new"; id: number; target: number; args: unknown[] }
  | { op: "get"; id: number; target: number; prop: string }
  | { op: "reply"; id: number; ok: boolean; value: unknown }
  | { op: "custom"; id: number; name: string; args: unknown[] };

interface HandleInfo {
  id: number;
  kind: "function" | "object";
  name: string;
  /** Handle ids of the constructors on the object's prototype chain (for instanceof). */
  chain: number[];
  /** Own enumerable data properties when it crossed (a snapshot; methods are called remotely). */
  props: Array<[string, unknown]>;
  asyncIterable: boolean;
}

type Wire = unknown;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const INFO = Symbol("remote handle");

/** Thrown on the trusted side when the learner threw: carries the learner's class for instanceof. */
export class RemoteError extends Error {
  [INFO]?: HandleInfo;
}

/** A promise for a remote result that can also be iterated with for await (for remote async generators). */
export class RemoteCall<T = unknown> extends Promise<T> {
  static override get [Symbol.species]() {
    return Promise;
  }
  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    let inner: AsyncIterator<unknown> | undefined;
    const ready = async () => {
      if (!inner) {
        const value = (await this) as AsyncIterable<unknown> | undefined;
        if (!value || typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] !== "function") {
          throw new TypeError("the value returned is not async iterable");
        }
        inner = value[Symbol.asyncIterator]();
      }
      return inner;
    };
    return {
      next: async () => (await ready()).next(),
      return: async (value?: unknown) => {
        const it = await ready();
        return it.return ? it.return(value) : { done: true, value };
      },
    };
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isCloneable(value: object): boolean {
  return value instanceof Date || value instanceof RegExp || ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

export interface PeerOptions {
  send(message: Message): void;
  /** Answers `custom` requests from the other side (e.g. "open a Redis connection"). */
  custom?: (name: string, args: unknown[]) => unknown;
  /** Values of special kinds the other side rebuilds locally (e.g. a Redis endpoint). */
  encodeSpecial?: (value: object) => Wire | undefined;
  decodeSpecial?: (tag: string, payload: unknown) => unknown;
  /** Rewrites each string on its way out (the trusted side's folder paths become the sandbox's own). */
  outgoingString?: (value: string) => string;
  /** Rewrites each string that arrives (the sandbox's paths become the trusted side's again). */
  incomingString?: (value: string) => string;
}

export class Peer {
  private nextCall = 1;
  private nextHandle = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  /** Our objects the other side holds handles to. */
  private readonly local = new Map<number, unknown>();
  private readonly localIds = new WeakMap<object, number>();
  /** Proxies for the other side's objects, by their id (one proxy per remote object keeps identity). */
  private readonly remote = new Map<number, object>();
  private closedReason: Error | undefined;

  constructor(private readonly options: PeerOptions) {}

  // ---- encoding -----------------------------------------------------------

  /**
   * Encodes a value for the other side. Containers are numbered in the order
   * they are first met, so a container met again (a shared or cyclic reference)
   * crosses as ["ref", n] and the other side rebuilds the same graph.
   */
  encode(value: unknown, seen: Map<object, number> = new Map()): Wire {
    if (value === null || (typeof value !== "object" && typeof value !== "function")) {
      if (typeof value === "symbol") return ["sym", value.description ?? ""];
      if (typeof value === "string" && this.options.outgoingString) return this.options.outgoingString(value);
      return value;
    }
    const object = value as object;
    const info = remoteInfo(object);
    if (info && !(object instanceof RemoteError)) return ["r", info.id];
    const special = this.options.encodeSpecial?.(object);
    if (special !== undefined) return special;
    const known = seen.get(object);
    if (known !== undefined) return ["ref", known];
    if (typeof value === "function") return ["h", this.describe(object)];
    if (isCloneable(object)) {
      // Bytes cross as structured clones (a Buffer arrives as a Uint8Array); a Date or RegExp subclass keeps its class as a handle.
      const exact = Object.getPrototypeOf(object) === Date.prototype || Object.getPrototypeOf(object) === RegExp.prototype;
      if (exact || ArrayBuffer.isView(object) || object instanceof ArrayBuffer) return object;
      return ["h", this.describe(object)];
    }
    if (object instanceof Error) return ["e", this.describeError(object as Error, seen)];
    const number = () => {
      seen.set(object, seen.size);
    };
    if (Array.isArray(object) && Object.getPrototypeOf(object) === Array.prototype) {
      number();
      const length = object.length;
      if (Object.keys(object).length === length) return ["a", object.map((item) => this.encode(item, seen))];
      const entries: Array<[number, Wire]> = [];
      object.forEach((item, index) => entries.push([index, this.encode(item, seen)]));
      return ["sa", length, entries];
    }
    if (object instanceof Map && Object.getPrototypeOf(object) === Map.prototype) {
      number();
      return ["m", [...object].map(([k, v]) => [this.encode(k, seen), this.encode(v, seen)])];
    }
    if (object instanceof Set && Object.getPrototypeOf(object) === Set.prototype) {
      number();
      return ["s", [...object].map((item) => this.encode(item, seen))];
    }
    if (isPlainObject(object) && !(Symbol.asyncIterator in object)) {
      number();
      const entries: Array<[string, Wire]> = [];
      for (const key of Object.keys(object)) {
        const descriptor = Object.getOwnPropertyDescriptor(object, key)!;
        if ("value" in descriptor) entries.push([key, this.encode(descriptor.value, seen)]);
      }
      return ["o", entries, Object.getPrototypeOf(object) === null];
    }
    return ["h", this.describe(object)];
  }

  private handleId(object: object): number {
    let id = this.localIds.get(object);
    if (id === undefined) {
      id = this.nextHandle++;
      this.localIds.set(object, id);
      this.local.set(id, object);
    }
    return id;
  }

  private chainOf(object: object): number[] {
    const chain: number[] = [];
    let proto = typeof object === "function" ? null : Object.getPrototypeOf(object);
    while (proto && proto !== Object.prototype) {
      const ctor = Object.getOwnPropertyDescriptor(proto, "constructor")?.value as unknown;
      if (typeof ctor === "function") chain.push(this.handleId(ctor));
      proto = Object.getPrototypeOf(proto);
    }
    return chain;
  }

  private describe(object: object): HandleInfo {
    const props: Array<[string, unknown]> = [];
    for (const key of Object.keys(object)) {
      const descriptor = Object.getOwnPropertyDescriptor(object, key);
      if (descriptor && "value" in descriptor && typeof descriptor.value !== "function") props.push([key, this.encode(descriptor.value)]);
    }
    const name = typeof object === "function" ? (object as { name?: string }).name ?? "" : (Object.getPrototypeOf(object)?.constructor?.name ?? "Object");
    return {
      id: this.handleId(object),
      kind: typeof object === "function" ? "function" : "object",
      name: String(name),
      chain: this.chainOf(object),
      props,
      asyncIterable: typeof (object as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function",
    };
  }

  private describeError(error: Error, seen: Map<object, number>) {
    const props: Array<[string, Wire]> = [];
    for (const key of Object.keys(error)) {
      const descriptor = Object.getOwnPropertyDescriptor(error, key);
      if (descriptor && "value" in descriptor && typeof descriptor.value !== "function") props.push([key, this.encode(descriptor.value, seen)]);
    }
    let name = "Error";
    let message = "";
    try {
      name = String(error.name);
      message = String(error.message);
    } catch {
      // a getter that throws: keep the defaults
    }
    return { name, message, stack: typeof error.stack === "string" ? error.stack : "", props, handle: this.describe(error) };
  }

  decode(wire: Wire, made: unknown[] = []): unknown {
    if (!Array.isArray(wire)) return typeof wire === "string" && this.options.incomingString ? this.options.incomingString(wire) : wire; // primitives and structured-clone natives
    const [tag] = wire as [string];
    switch (tag) {
      case "a": {
        const out: unknown[] = [];
        made.push(out);
        for (const item of wire[1] as Wire[]) out.push(this.decode(item, made));
        return out;
      }
      case "sa": {
        const out: unknown[] = new Array(wire[1] as number);
        made.push(out);
        for (const [index, item] of wire[2] as Array<[number, Wire]>) out[index] = this.decode(item, made);
        return out;
      }
      case "o": {
        const out: Record<string, unknown> = wire[2] ? Object.create(null) : {};
        made.push(out);
        for (const [key, item] of wire[1] as Array<[string, Wire]>) {
          Object.defineProperty(out, key, { value: this.decode(item, made), enumerable: true, writable: true, configurable: true });
        }
        return out;
      }
      case "m": {
        const out = new Map<unknown, unknown>();
        made.push(out);
        for (const [k, v] of wire[1] as Array<[Wire, Wire]>) {
          const key = this.decode(k, made);
          out.set(key, this.decode(v, made));
        }
        return out;
      }
      case "s": {
        const out = new Set<unknown>();
        made.push(out);
        for (const item of wire[1] as Wire[]) out.add(this.decode(item, made));
        return out;
      }
      case "ref":
        return made[wire[1] as number];
      case "sym":
        return Symbol(wire[1] as string);
      case "r": {
        const object = this.local.get(wire[1] as number);
        if (object === undefined) throw new Error(`unknown handle ${String(wire[1])}`);
        return object;
      }
      case "h":
        return this.proxyFor(wire[1] as HandleInfo);
      case "e": {
        const data = wire[1] as { name: string; message: string; stack: string; props: Array<[string, Wire]>; handle: HandleInfo };
        const error = new RemoteError(data.message);
        Object.defineProperty(error, "name", { value: data.name, enumerable: false, configurable: true, writable: true });
        for (const [key, item] of data.props) {
          Object.defineProperty(error, key, { value: this.decode(item, made), enumerable: true, configurable: true, writable: true });
        }
        error[INFO] = data.handle;
        error.stack = `${data.name}: ${data.message}\n    (in the learner process)`;
        return error;
      }
      default: {
        const special = this.options.decodeSpecial?.(tag, wire[1]);
        if (special !== undefined) return special;
        throw new Error(`unknown value tag ${tag}`);
      }
    }
  }

  private proxyFor(info: HandleInfo): object {
    const existing = this.remote.get(info.id);
    if (existing) {
      // Refresh the data snapshot: the same object crossing again may have changed.
      const known = proxyInfo.get(existing)!;
      known.props = info.props;
      return existing;
    }
    const peer = this;
    const props = () => new Map(proxyInfo.get(proxy)!.props);
    const target = info.kind === "function" ? function remote() {} : {};
    const proxy: object = new Proxy(target, {
      get(_target, prop) {
        if (prop === Symbol.hasInstance) {
          return (candidate: unknown) => {
            const other = remoteInfo(candidate);
            return Boolean(other && other.chain.includes(info.id));
          };
        }
        if (prop === Symbol.asyncIterator) {
          if (!info.asyncIterable) return undefined;
          return () => {
            const iterator = peer.request({ op: "call", target: info.id, method: "@@asyncIterator", args: [] });
            return {
              next: async (...args: unknown[]) => ((await iterator) as { next(...a: unknown[]): Promise<unknown> }).next(...args),
              return: async (value?: unknown) => ((await iterator) as { return?(v: unknown): Promise<unknown> }).return?.(value) ?? { done: true, value },
            };
          };
        }
        if (prop === Symbol.toPrimitive) return () => `[remote ${info.name || info.kind}]`;
        if (typeof prop === "symbol") return undefined;
        // Names that libraries probe for (promises, JSON, test matchers, React, DOM): a handle is none of these.
        if (PROBED.has(prop) && !props().has(prop)) return prop === "toString" ? () => `[remote ${info.name || info.kind}]` : undefined;
        const snapshot = props().get(prop);
        if (snapshot !== undefined || props().has(prop)) return peer.decode(snapshot as Wire);
        if (prop === "name" && info.kind === "function") return info.name;
        return (...args: unknown[]) => peer.request({ op: "call", target: info.id, method: prop, args: args.map((a) => peer.encode(a)) });
      },
      has(_target, prop) {
        return typeof prop === "string" && props().has(prop);
      },
      ownKeys(target) {
        const keys = [...props().keys()];
        // Proxy invariant: the target's non-configurable keys must be listed.
        for (const key of Reflect.ownKeys(target)) if (!Reflect.getOwnPropertyDescriptor(target, key)?.configurable && !keys.includes(key as string)) keys.push(key as string);
        return keys;
      },
      getOwnPropertyDescriptor(target, prop) {
        if (typeof prop === "string" && props().has(prop)) return { value: peer.decode(props().get(prop) as Wire), enumerable: true, configurable: true, writable: false };
        const own = Reflect.getOwnPropertyDescriptor(target, prop);
        return own && !own.configurable ? own : undefined;
      },
      apply(_target, _this, args) {
        return peer.request({ op: "call", target: info.id, method: null, args: args.map((a) => peer.encode(a)) });
      },
      construct(_target, args) {
        // `await new api.Store(...)`: construction happens over there, so it is a promise here.
        return peer.request({ op: "new", target: info.id, args: args.map((a) => peer.encode(a)) }) as unknown as object;
      },
      set() {
        throw new TypeError(`cannot set properties on ${info.name || "a value"} from the other process`);
      },
    });
    proxyInfo.set(proxy, { ...info });
    this.remote.set(info.id, proxy);
    return proxy;
  }

  // ---- calls --------------------------------------------------------------

  request(message: DistributiveOmit<Exclude<Message, { op: "reply" }>, "id">): RemoteCall {
    let settle!: { resolve(v: unknown): void; reject(e: unknown): void };
    const call = new RemoteCall((resolve, reject) => {
      settle = { resolve, reject };
    });
    if (this.closedReason) {
      settle.reject(this.closedReason);
      return call;
    }
    const id = this.nextCall++;
    this.pending.set(id, settle);
    try {
      this.options.send({ ...message, id } as Message);
    } catch (error) {
      this.pending.delete(id);
      settle.reject(error);
    }
    return call;
  }

  /** Reads a property of a remote object (a getter, or a field that changed since it crossed). */
  get(handle: object, prop: string): RemoteCall {
    const info = remoteInfo(handle);
    if (!info) return RemoteCall.resolve((handle as Record<string, unknown>)[prop]) as RemoteCall;
    return this.request({ op: "get", target: info.id, prop });
  }

  custom(name: string, ...args: unknown[]): RemoteCall {
    return this.request({ op: "custom", name, args: args.map((a) => this.encode(a)) });
  }

  /** Fails every call in flight (the other process died or was killed). */
  close(reason: Error): void {
    this.closedReason = reason;
    for (const { reject } of this.pending.values()) reject(reason);
    this.pending.clear();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  async receive(message: Message): Promise<void> {
    if (message.op === "reply") {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      let value: unknown;
      try {
        value = this.decode(message.value);
      } catch (error) {
        waiting.reject(error);
        return;
      }
      if (message.ok) waiting.resolve(value);
      else waiting.reject(value);
      return;
    }
    let ok = true;
    let value: unknown;
    try {
      value = await this.perform(message);
      if (value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as { then?: unknown }).then === "function") {
        value = await (value as Promise<unknown>);
      }
    } catch (error) {
      ok = false;
      value = error;
    }
    let encoded: Wire;
    try {
      encoded = this.encode(value);
    } catch (error) {
      ok = false;
      encoded = this.encode(new Error(`the result could not be sent back: ${String(error)}`));
    }
    try {
      this.options.send({ op: "reply", id: message.id, ok, value: encoded });
    } catch {
      // the other side is gone
    }
  }

  private perform(message: Exclude<Message, { op: "reply" }>): unknown {
    if (message.op === "custom") {
      if (!this.options.custom) throw new Error(`no handler for ${message.name}`);
      return this.options.custom(message.name, message.args.map((a) => this.decode(a)));
    }
    const target = this.local.get(message.target);
    if (target === undefined) throw new Error(`unknown handle ${message.target}`);
    if (message.op === "get") return (target as Record<string, unknown>)[message.prop];
    const args = message.args.map((a) => this.decode(a));
    if (message.op === "new") return Reflect.construct(target as new (...a: unknown[]) => unknown, args);
    if (message.method === null) return (target as (...a: unknown[]) => unknown)(...args);
    if (message.method === "@@asyncIterator") return (target as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const method = (target as Record<string, unknown>)[message.method];
    if (typeof method !== "function") throw new TypeError(`${describeTarget(target)}.${message.method} is not a function`);
    return (method as (...a: unknown[]) => unknown).apply(target, args);
  }
}

function describeTarget(target: unknown): string {
  if (typeof target === "function") return target.name || "function";
  return (target as object)?.constructor?.name ?? "value";
}

const proxyInfo = new WeakMap<object, HandleInfo>();
const PROBED = new Set(["then", "toJSON", "toString", "valueOf", "inspect", "asymmetricMatch", "$$typeof", "nodeType", "tagName", "@@__IMMUTABLE_ITERABLE__@@", "@@__IMMUTABLE_RECORD__@@", "_isMockFunction", "constructor"]);

function remoteInfo(value: unknown): HandleInfo | undefined {
  if (value === null || (typeof value !== "object" && typeof value !== "function")) return undefined;
  if (value instanceof RemoteError) return value[INFO];
  return proxyInfo.get(value as object);
}
