/**
 * Hidden checks of lesson-11 / locking (interviewer grading only). They probe what a candidate
 * who read the public checks might still miss: a release that is owner-checked but not atomic,
 * WATCH/MULTI on a connection shared by concurrent callers, tenant isolation and retention (A3),
 * and switching back without being told to (S2).
 */
import type { Grader } from "#harness/check.ts";
import { createTestRedis } from "#harness/redis.ts";
import { withSeed, SEED } from "#harness/seed.ts";
import { clientFor, describe, holdNextReply, reconnected, interleave, opaqueId, sleep, type Counter, type Fixture, type LockingApi, type Store } from "./fixtures.ts";

type Lease = NonNullable<Awaited<ReturnType<LockingApi["acquireLease"]>>>;

export function registerHiddenChecks(grader: Grader<LockingApi>): void {
  grader.excellence(
    "release and renew check the owner and act in one atomic step (no GET-then-DEL race)",
    {
      hint: "Compare the owner and delete (or extend) in one atomic step (a Lua script, or WATCH + MULTI/EXEC); between a separate GET and DEL the lease can expire and pass to another holder.",
      section: "releasing-and-renewing-a-lease",
      weight: 2,
      visibility: "hidden",
      category: "lease safety",
      timeout: 20_000,
    },
    async (api, check) => {
      for (const operation of ["release", "renew"] as const) {
        const redis = await createTestRedis();
        try {
          const threadId = opaqueId();
          // Long enough that A still owns its lease when its release/renew starts, even on a busy machine.
          const ttlMs = Math.round(150 * check.slowness);
          const holderA = (await api.acquireLease(await clientFor(redis, check.learner), threadId, ttlMs)) as Lease | undefined;
          if (!holderA) throw new Error("acquireLease returned nothing for a free lease.");
          // A's first command of release/renew runs (say, a GET that sees A still owns the lease); then A stalls
          // past its TTL and B takes the lease before A's next command.
          const hold = holdNextReply(redis, ttlMs * 2 + 2_000 * check.slowness);
          const acting = operation === "release" ? holderA.release() : holderA.renew(ttlMs);
          await hold.heldIn(acting, `${operation}()`);
          await sleep(ttlMs * 2);
          // B's lease must outlive the wait for A's held reply.
          const holderB = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 120_000)) as Lease | undefined;
          // B has tried: A's pause ends here.
          hold.release();
          await acting;
          let owner = holderB;
          if (!owner) {
            // A's atomic renew extended its own live lease before the pause: let it lapse, then B takes over.
            await sleep(ttlMs * 3);
            owner = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 120_000)) as Lease | undefined;
          }
          if (!owner) throw new Error(`After A's ${operation}() and A's lease expiry, the lease could not be taken by B.`);
          if (holderB && operation === "renew") await sleep(ttlMs * 2);
          const intruder = await api.acquireLease(await clientFor(redis, check.learner), threadId, 5_000);
          if (intruder) {
            throw new Error(withSeed(`A's ${operation}() checked ownership and acted with a separate command: the lease expired in between, B took it, and A's ${operation === "release" ? "delete removed" : "extension changed"} B's lease, so a third caller acquired it.`));
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
      hint: "A store instance serves concurrent requests: WATCH belongs to the connection, so callers sharing a client break each other's WATCH/MULTI. Use a Lua script, or a dedicated connection per transaction.",
      section: "compare-and-set-on-redis",
      weight: 1,
      visibility: "hidden",
      category: "concurrency",
    },
    async (api, check) => {
      const redis = await createTestRedis();
      try {
        interleave(redis);
        const shared = (await new api.RedisVersionedStore<Counter>(await clientFor(redis, check.learner))) as unknown as Store;
        const threadId = opaqueId();
        const fixture = await check.fixture<Fixture>("writers");
        const report = await fixture.increment({ stores: Array.from({ length: 10 }, () => shared) as never, names: Array.from({ length: 10 }, (_, i) => `c${i}`), threadId, increments: 5, Conflict: api.VersionConflictError, start: async () => {}, seed: SEED });
        redis.setJitter(0);
        if (report.unexpected.length > 0) throw new Error(withSeed(`A put on the shared store failed with something other than VersionConflictError: ${report.unexpected[0]}`));
        const final = (await shared.get(threadId))?.state.count;
        if (final !== 50) {
          throw new Error(withSeed(`10 callers sharing one store instance (one client) did 5 increments each and ended at ${String(final)}, not 50: the compare-and-set is not safe for concurrent use of one connection.`));
        }
      } finally {
        await redis.close();
      }
    },
  );

  grader.excellence(
    "tenants in different key namespaces never see each other's threads, and ttlMs expires a thread",
    {
      hint: "Prefix every key with the store's namespace (one per tenant) and set the expiry (PEXPIRE ttlMs) in the same atomic step as the write.",
      section: "key-namespaces-and-ttl-for-many-tenants",
      weight: 1,
      visibility: "hidden",
      category: "multi-tenancy",
    },
    async (api, check) => {
      const redis = await createTestRedis();
      try {
        const threadId = opaqueId();
        const store = async (options: Record<string, unknown>) => (await new api.RedisVersionedStore<Counter>(await clientFor(redis, check.learner), options)) as unknown as Store;
        const [namespaceA, namespaceB] = [`${opaqueId()}-a`, `${opaqueId()}-b`];
        const tenantA = await store({ namespace: namespaceA });
        const tenantB = await store({ namespace: namespaceB });
        await tenantA.put(threadId, { count: 7, writer: "tenant A" }, 0);
        const leaked = await tenantB.get(threadId);
        if (leaked) throw new Error(`Tenant B read tenant A's thread (${JSON.stringify(leaked)}); the namespace must be part of every key.`);
        if ((await tenantB.put(threadId, { count: 1, writer: "tenant B" }, 0)) !== 1) throw new Error("Tenant B's first write to its own thread did not return version 1.");
        if ((await tenantA.get(threadId))?.state.writer !== "tenant A") throw new Error("Tenant B's write changed tenant A's thread.");
        // Leases too: the same thread id in two namespaces is two leases.
        const leaseA = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 60_000, { namespace: namespaceA })) as Lease | undefined;
        const leaseB = (await api.acquireLease(await clientFor(redis, check.learner), threadId, 60_000, { namespace: namespaceB })) as Lease | undefined;
        if (!leaseA || !leaseB) throw new Error(`acquireLease for the same thread id in namespaces A and B returned ${leaseA ? "a lease" : "nothing"} and ${leaseB ? "a lease" : "nothing"}; the lease keys must use the namespace given, so each tenant has its own lease.`);
        await leaseA.release();
        await leaseB.release();

        const shortLived = await store({ namespace: opaqueId(), ttlMs: 40 });
        await shortLived.put(threadId, { count: 1, writer: "ttl" }, 0);
        await sleep(100);
        const expired = await shortLived.get(threadId);
        if (expired) throw new Error(`A thread written with ttlMs 40 was still there 100 ms later (${JSON.stringify(expired)}); set the expiry with every write.`);
      } finally {
        await redis.close();
      }
    },
  );

  grader.excellence(
    "a degraded store switches back to Redis by itself once the probe interval has passed, and not before",
    {
      hint: "While degraded, try the primary again at most every probeIntervalMs (reconcile first), so recovery does not wait for an operator.",
      section: "degrading-when-redis-fails",
      weight: 1,
      visibility: "hidden",
      category: "high availability",
      timeout: 20_000,
    },
    async (api, check) => {
      const redis = await createTestRedis();
      try {
        const fixture = await check.fixture<Fixture>("writers");
        const clock = await fixture.clock();
        // A few retries per request: a reconnect attempt made during the outage may fail just after it (see SURVIVES_OUTAGE).
        const primary = await new api.RedisVersionedStore<Counter>(await clientFor(redis, check.learner, { maxRetriesPerRequest: 4 }));
        const resilient = await new api.ResilientStore<Counter>(primary as never, { probeIntervalMs: 4_000, now: clock.now });
        const threadId = opaqueId();
        await resilient.put(threadId, { count: 1, writer: "healthy" }, 0);
        const connectionsBefore = redis.liveConnections;
        redis.setOutage(true);
        const degraded = await resilient.put(threadId, { count: 2, writer: "degraded" }, 1).catch((error: unknown) => error);
        if (degraded instanceof Error || (degraded as { degraded?: boolean }).degraded !== true) throw new Error(`A put during the outage returned ${degraded instanceof Error ? describe(degraded) : JSON.stringify(degraded)}; expected degraded: true.`);
        redis.setOutage(false);
        await reconnected(redis, connectionsBefore, 5_000 * check.slowness);
        // Redis answers again, but the interval has not passed since the failure: no probe yet.
        await clock.advance(1_500);
        const early = await resilient.get(threadId).catch((error: unknown) => error);
        if (early instanceof Error || (early as { degraded?: boolean } | undefined)?.degraded !== true) {
          throw new Error(`1.5 s after the failure, with probeIntervalMs 4000, get() returned ${early instanceof Error ? describe(early) : JSON.stringify(early)}; it must not try the primary before the interval has passed, so it answers from memory (degraded: true).`);
        }
        // A put inside the interval must not try the primary either (it would skip the write-back).
        const earlyPut = await resilient.put(threadId, { count: 3, writer: "degraded, early put" }, 2).catch((error: unknown) => error);
        if (earlyPut instanceof Error || (earlyPut as { degraded?: boolean }).degraded !== true) {
          throw new Error(`1.5 s after the failure, with probeIntervalMs 4000, put() returned ${earlyPut instanceof Error ? describe(earlyPut) : JSON.stringify(earlyPut)}; it must not try the primary before the interval has passed, so it writes to memory (degraded: true).`);
        }
        await clock.advance(3_000);
        const back = await resilient.get(threadId);
        if (back?.degraded !== false || back.state.writer !== "degraded, early put") {
          throw new Error(`Once Redis answered again and the probe interval had passed, get() returned ${JSON.stringify(back)}; it must reconcile, switch back and answer from Redis (degraded: false) with the state written during the outage.`);
        }
      } finally {
        await redis.close();
      }
    },
  );
}
