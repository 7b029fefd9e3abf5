/**
 * Keeps an instance writing when its primary store (Redis) fails: writes go to an in-memory
 * fallback and every result says `degraded: true`, so the caller can tell the user that
 * progress is not yet durable or shared. When the primary answers again, the fallback's newer
 * checkpoints are written back, but never over data another instance wrote meanwhile.
 */
import { LockingError, StaleFencingTokenError, VersionConflictError } from "./errors.ts";
import { assertWritable, encodeState, validatePut, validateThreadId, type PutOptions, type Versioned, type VersionedStore } from "./versioned-store.ts";

export interface ResilientStoreOptions {
  /** While degraded, try the primary again at most this often (default 1 s; 0 = on every call). */
  probeIntervalMs?: number;
  /** Threads whose last primary state is kept in memory as the fallback's starting point (default 10 000). */
  maxRemembered?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
  /** Called once when the store switches to the fallback, and once when it switches back. */
  onModeChange?: (mode: "degraded" | "primary", cause?: unknown) => void;
}

export interface ResilientPutResult {
  version: number;
  /** True when the write went to the in-memory fallback: not durable, not visible to other instances. */
  degraded: boolean;
}

export type ResilientGetResult<S> = Versioned<S> & { degraded: boolean };

export interface ReconcileReport {
  /** Threads whose fallback state was written back to the primary. */
  restored: string[];
  /** Threads another instance changed in the primary meanwhile: the primary's data was kept. */
  keptPrimary: Array<{ threadId: string; primaryVersion: number; fallbackState: unknown }>;
  /** True when the primary is in use again (false if it failed during reconciliation). */
  recovered: boolean;
}

/** A thread written while degraded: its state, and the primary version it was based on. */
interface FallbackEntry {
  encoded: string;
  version: number;
  baseVersion: number;
  newestToken: number;
}

export class ResilientStore<S = unknown> {
  /** What this instance last saw in the primary: the starting point when it degrades. */
  private readonly lastSeen = new Map<string, { encoded: string; version: number; newestToken: number }>();
  private readonly fallback = new Map<string, FallbackEntry>();
  private mode: "primary" | "degraded" = "primary";
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  private readonly probeIntervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly primary: VersionedStore<S>,
    private readonly options: ResilientStoreOptions = {},
  ) {
    this.probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  get degraded(): boolean {
    return this.mode === "degraded";
  }

  async get(threadId: string): Promise<ResilientGetResult<S> | undefined> {
    const id = validateThreadId(threadId);
    if (await this.usePrimary()) {
      try {
        const found = await this.primary.get(id);
        if (found) this.remember(id, encodeState(id, found.state), found.version);
        return found && { ...found, degraded: false };
      } catch (error) {
        this.degrade(error);
      }
    }
    const entry = this.fallback.get(id) ?? this.lastSeen.get(id);
    return entry && { state: JSON.parse(entry.encoded) as S, version: entry.version, degraded: true };
  }

  async put(threadId: string, state: S, expectedVersion: number, options?: PutOptions): Promise<ResilientPutResult> {
    const args = validatePut(threadId, expectedVersion, options);
    const encoded = encodeState(args.threadId, state);
    if (await this.usePrimary()) {
      try {
        const version = await this.primary.put(args.threadId, state, args.expectedVersion, options);
        this.remember(args.threadId, encoded, version, args.fencingToken);
        return { version, degraded: false };
      } catch (error) {
        if (error instanceof LockingError) throw error; // a conflict is an answer, not an outage
        this.degrade(error);
      }
    }
    return { version: this.putFallback(args.threadId, encoded, args.expectedVersion, args.fencingToken), degraded: true };
  }

  /**
   * Writes the fallback's threads back to the primary. A thread whose primary version is still
   * the one the fallback started from (or lower: the primary lost data) is restored with a
   * compare-and-set; one that moved on was written by another instance and is kept.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { restored: [], keptPrimary: [], recovered: false };
    this.lastProbeAt = this.now();
    try {
      // Nothing to write back: one read of a known thread tells whether the primary answers.
      const probe = this.fallback.size === 0 && this.mode === "degraded" ? this.lastSeen.keys().next().value : undefined;
      if (probe !== undefined) await this.primary.get(probe);
      for (const [threadId, entry] of [...this.fallback]) {
        const current = await this.primary.get(threadId);
        const primaryVersion = current?.version ?? 0;
        const fallbackState = JSON.parse(entry.encoded) as S;
        if (primaryVersion > entry.baseVersion) {
          report.keptPrimary.push({ threadId, primaryVersion, fallbackState });
        } else {
          try {
            const token = entry.newestToken > 0 ? { fencingToken: entry.newestToken } : undefined;
            const version = await this.primary.put(threadId, fallbackState, primaryVersion, token);
            this.remember(threadId, entry.encoded, version, entry.newestToken);
            report.restored.push(threadId);
          } catch (error) {
            if (!(error instanceof VersionConflictError || error instanceof StaleFencingTokenError)) throw error;
            report.keptPrimary.push({ threadId, primaryVersion: error instanceof VersionConflictError ? error.actualVersion : primaryVersion, fallbackState });
          }
        }
        this.fallback.delete(threadId);
      }
    } catch (error) {
      this.degrade(error);
      return report;
    }
    if (this.mode === "degraded") {
      this.mode = "primary";
      this.options.onModeChange?.("primary");
    }
    report.recovered = true;
    return report;
  }

  /** True when this call should go to the primary; while degraded, probes it now and then. */
  private async usePrimary(): Promise<boolean> {
    if (this.mode === "primary") return true;
    if (this.now() - this.lastProbeAt < this.probeIntervalMs) return false;
    return (await this.reconcile()).recovered;
  }

  private degrade(cause: unknown): void {
    this.lastProbeAt = this.now();
    if (this.mode === "degraded") return;
    this.mode = "degraded";
    this.options.onModeChange?.("degraded", cause);
  }

  private remember(threadId: string, encoded: string, version: number, fencingToken = 0): void {
    const newestToken = Math.max(this.lastSeen.get(threadId)?.newestToken ?? 0, fencingToken);
    this.lastSeen.delete(threadId); // re-insert: Map order is then least recently used first
    this.lastSeen.set(threadId, { encoded, version, newestToken });
    if (this.lastSeen.size > (this.options.maxRemembered ?? 10_000)) {
      this.lastSeen.delete(this.lastSeen.keys().next().value!); // the map is not empty: its size is over the bound
    }
  }

  /** The same compare-and-set rules as every store, against what this instance knows. */
  private putFallback(threadId: string, encoded: string, expectedVersion: number, fencingToken: number | undefined): number {
    const current = this.fallback.get(threadId) ?? this.lastSeen.get(threadId);
    const baseVersion = this.fallback.get(threadId)?.baseVersion ?? this.lastSeen.get(threadId)?.version ?? 0;
    assertWritable(threadId, current?.version ?? 0, current?.newestToken ?? 0, expectedVersion, fencingToken);
    const version = expectedVersion + 1;
    this.fallback.set(threadId, { encoded, version, baseVersion, newestToken: Math.max(current?.newestToken ?? 0, fencingToken ?? 0) });
    return version;
  }
}
