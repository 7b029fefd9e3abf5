/**
 * Hidden checks of lesson-11 / locking (interviewer grading only). They probe what a candidate
 * who read the public checks might still miss: a release that is owner-checked but not atomic,
 * WATCH/MULTI on a connection shared by concurrent callers, tenant isolation and retention (A3),
 * and switching back without being told to (S2).
 */
import type { Grader } from "#harness/check.ts";
import { withSeed } from "#harness/seed.ts";
import { describe, openRedis, pauseAfterFirstGet, runIncrementers, sleep, threadIdFor, withinTime, withOutage, type Counter, type LockingApi } from "./fixtures.ts";

export function registerHiddenChecks(grader: Grader<LockingApi>): void {
  grader.excellence(
    "release and renew check the owner and act in one atomic step (no GET-then-DEL race)",
    {
      hint: "Compare the owner and delete (or extend) inside one Lua script; between a separate GET and DEL the lease can expire and pass to another holder.",
      section: "releasing-and-renewing-a-lease",
      weight: 2,
      visibility: "hidden",
      category: "lease safety",
    },
    async (api) => {
      for (const operation of ["release", "renew"] as const) {
        const redis = await openRedis();
        try {
          const threadId = threadIdFor(redis, `atomic-${operation}`);
          let holderB: Awaited<ReturnType<LockingApi["acquireLease"]>>;
          // The moment after holder A's own GET saw it still owns the lease: the lease expires and B takes it.
          const clientA = pauseAfterFirstGet(redis.newClient(), async () => {
            await sleep(60);
            holderB = await api.acquireLease(redis.newClient(), threadId, 5_000);
          });
          const holderA = await api.acquireLease(clientA, threadId, 30);
          if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
          await (operation === "release" ? holderA.release() : holderA.renew(30));
          if (!holderB) {
            if (operation === "renew") await sleep(60); // A renewed its own live lease: let it lapse first
            holderB = await api.acquireLease(redis.newClient(), threadId, 5_000);
          }
          if (!holderB) {
            throw new Error(`After A's ${operation}() the lease could not be taken by B${operation === "renew" ? " once A's renewed lease expired" : ""}.`);
          }
          if (operation === "renew") await sleep(50);
          const intruder = await api.acquireLease(redis.newClient(), threadId, 5_000);
          if (intruder) {
            throw new Error(withSeed(`A's ${operation}() checked ownership with a GET and acted with a separate command: the lease expired in between, B took it, and A's ${operation === "release" ? "DEL removed" : "PEXPIRE changed"} B's lease, so a third caller acquired it.`));
          }
        } finally {
          await redis.close();
        }
      }
    },
  );

  grader.excellence(
    "one Redis store instance shared by 10 concurrent callers on one client loses no update",
    {
      hint: "A store instance serves concurrent requests: WATCH belongs to the connection, so callers sharing a client break each other's WATCH/MULTI. Use a Lua script (or a dedicated connection per transaction).",
      section: "compare-and-set-on-redis",
      weight: 1,
      visibility: "hidden",
      category: "concurrency",
    },
    async (api) => {
      const redis = await openRedis();
      try {
        const shared = new api.RedisVersionedStore<Counter>(redis.newClient());
        const threadId = threadIdFor(redis, "shared-client");
        const outcome = await withinTime(runIncrementers(api, () => shared, shared, threadId, 10, 5), 8_000, "10 callers on one shared store");
        if (outcome.unexpected.length > 0) throw new Error(withSeed(`A put on the shared store failed with something other than VersionConflictError: ${outcome.unexpected[0]}`));
        if (outcome.final !== 50) {
          throw new Error(withSeed(`10 callers sharing one store instance (one client) did 5 increments each and ended at ${String(outcome.final)}, not 50: the compare-and-set is not safe for concurrent use of one connection.`));
        }
      } finally {
        await redis.close();
      }
    },
  );

  grader.excellence(
    "tenants in different key namespaces never see each other's threads, and ttlMs expires a thread",
    {
      hint: "Prefix every key with the store's namespace (one per tenant) and set PEXPIRE ttlMs in the same script as the write.",
      section: "key-namespaces-and-ttl-for-many-tenants",
      weight: 1,
      visibility: "hidden",
      category: "multi-tenancy",
    },
    async (api) => {
      const redis = await openRedis();
      try {
        const threadId = threadIdFor(redis, "tenant");
        const tenantA = new api.RedisVersionedStore<Counter>(redis.client, { namespace: `${redis.runId}-tenant-a` });
        const tenantB = new api.RedisVersionedStore<Counter>(redis.newClient(), { namespace: `${redis.runId}-tenant-b` });
        await tenantA.put(threadId, { count: 7, writer: "tenant A" }, 0);
        const leaked = await tenantB.get(threadId);
        if (leaked) throw new Error(`Tenant B read tenant A's thread (${JSON.stringify(leaked)}); the namespace must be part of every key.`);
        if ((await tenantB.put(threadId, { count: 1, writer: "tenant B" }, 0)) !== 1) throw new Error("Tenant B's first write to its own thread did not return version 1.");
        if ((await tenantA.get(threadId))?.state.writer !== "tenant A") throw new Error("Tenant B's write changed tenant A's thread.");

        const shortLived = new api.RedisVersionedStore<Counter>(redis.client, { namespace: `${redis.runId}-ttl`, ttlMs: 40 });
        await shortLived.put(threadId, { count: 1, writer: "ttl" }, 0);
        await sleep(80);
        const expired = await shortLived.get(threadId);
        if (expired) throw new Error(`A thread written with ttlMs 40 was still there 80 ms later (${JSON.stringify(expired)}); set the expiry with every write.`);
      } finally {
        await redis.close();
      }
    },
  );

  grader.excellence(
    "a degraded store switches back to Redis by itself once the probe interval has passed",
    {
      hint: "While degraded, try the primary again at most every probeIntervalMs (reconcile first), so recovery does not wait for an operator.",
      section: "degrading-when-redis-fails",
      weight: 1,
      visibility: "hidden",
      category: "high availability",
    },
    async (api) => {
      const redis = await openRedis();
      try {
        let now = 0;
        const outage = withOutage(redis.newClient());
        const resilient = new api.ResilientStore<Counter>(new api.RedisVersionedStore<Counter>(outage.client), { probeIntervalMs: 1_000, now: () => now });
        const threadId = threadIdFor(redis, "auto-recover");
        await resilient.put(threadId, { count: 1, writer: "healthy" }, 0);
        outage.down();
        const degraded = await resilient.put(threadId, { count: 2, writer: "degraded" }, 1).catch((error: unknown) => error);
        if (degraded instanceof Error || (degraded as { degraded?: boolean }).degraded !== true) throw new Error(`A put during the outage returned ${degraded instanceof Error ? describe(degraded) : JSON.stringify(degraded)}; expected degraded: true.`);
        outage.up();
        now += 1_500;
        const back = await resilient.get(threadId);
        if (back?.degraded !== false || back.state.writer !== "degraded") {
          throw new Error(`Once Redis answered again and the probe interval had passed, get() returned ${JSON.stringify(back)}; it must reconcile, switch back and answer from Redis (degraded: false) with the state written during the outage.`);
        }
      } finally {
        await redis.close();
      }
    },
  );
}
