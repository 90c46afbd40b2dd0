import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuthBackoff, BackoffPolicy } from "../../src/ratelimit/auth-backoff.js";
import { MemoryAuthBackoff } from "../../src/ratelimit/memory-auth-backoff.js";
import { MemoryTokenBucketStore } from "../../src/ratelimit/memory-token-bucket-store.js";
import { resolveRateLimitPolicies } from "../../src/ratelimit/rate-limit-policies.js";
import { RedisAuthBackoff } from "../../src/ratelimit/redis-auth-backoff.js";
import {
  createRateLimitRedis,
  runScript,
  whenRateLimitRedisReady,
} from "../../src/ratelimit/redis-rate-limit-client.js";
import { RedisTokenBucketStore } from "../../src/ratelimit/redis-token-bucket-store.js";
import type { RateLimitOutage } from "../../src/ratelimit/route-rate-limiter.js";
import { RouteRateLimiter } from "../../src/ratelimit/route-rate-limiter.js";
import type { TokenBucketStore } from "../../src/ratelimit/token-bucket.js";
import { RateLimitUnavailableError, TokenBucket } from "../../src/ratelimit/token-bucket.js";
import type { SuiteFn } from "../support/redis.js";
import {
  closedPort,
  describeRedis,
  ManualClock,
  REDIS_URL,
  rawClient,
  redisRelay,
  silentServer,
  testPrefix,
} from "../support/redis.js";

/** Every key under the prefix (SCAN, never KEYS). support's rawEntries reads strings only. */
async function keysUnder(raw: Redis, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000);
    cursor = next;
    names.push(...keys);
  } while (cursor !== "0");
  return names;
}

/** Each suite removes what it wrote (the buckets are hashes, so support's removeKeys cannot). */
async function dropKeys(raw: Redis, prefix: string): Promise<void> {
  const names = await keysUnder(raw, prefix);
  if (names.length > 0) await raw.del(...names);
}

/** One adapter under test: its buckets and backoff, and how time passes for it. */
interface LimitHarness {
  readonly buckets: TokenBucketStore;
  backoff(policy: BackoffPolicy): AuthBackoff;
  /** Every key the adapter holds (Redis: under the prefix; memory: its bucket count). */
  held(): Promise<number>;
  /** Lets `ms` pass: moves the memory clock, or waits for Redis's own. */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

interface LimitAdapter {
  readonly name: "memory" | "redis";
  readonly describe: SuiteFn;
  /** How far real time may drift past a planned wait before a check (0 on the manual clock). */
  readonly slackMs: number;
  open(): Promise<LimitHarness>;
}

const MEMORY: LimitAdapter = {
  name: "memory",
  describe,
  slackMs: 0,
  async open() {
    const clock = new ManualClock();
    const buckets = new MemoryTokenBucketStore({ clock });
    return {
      buckets,
      backoff: (policy) => new MemoryAuthBackoff({ policy, clock }),
      held: async () => buckets.size,
      elapse: async (ms) => clock.advance(ms),
      close: async () => undefined,
    };
  },
};

const REDIS: LimitAdapter = {
  name: "redis",
  describe: describeRedis,
  // Real time on a loaded machine: a planned wait may overrun, or a reply come late, by this much.
  slackMs: 250,
  async open() {
    const prefix = testPrefix();
    const client = createRateLimitRedis({ url: REDIS_URL, commandTimeoutMs: 2_000 });
    await whenRateLimitRedisReady(client, 2_000);
    const raw = rawClient();
    return {
      buckets: new RedisTokenBucketStore({ client, prefix }),
      backoff: (policy) => new RedisAuthBackoff({ client, prefix, policy }),
      held: async () => (await keysUnder(raw, prefix)).length,
      elapse: (ms) => sleep(ms),
      async close() {
        await dropKeys(raw, prefix);
        await Promise.all([client.quit(), raw.quit()]);
      },
    };
  },
};

/** The same contract for both adapters (STYLE.md: one adapter suite on every backend). */
function contract(adapter: LimitAdapter): void {
  let h: LimitHarness;
  beforeEach(async () => {
    h = await adapter.open();
  });
  afterEach(async () => {
    await h.close();
  });

  it("allows a burst of capacity, then refuses with the wait for one token", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 5, refillPerSecond: 1 });
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await bucket.take("ip:198.51.100.7:auth"));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
    const refused = decisions[5]!;
    expect(refused.limit).toBe(5);
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(1_000 - adapter.slackMs);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1_000);
    expect(refused.resetMs).toBeGreaterThanOrEqual(5_000 - adapter.slackMs);
    expect(refused.resetMs).toBeLessThanOrEqual(5_000);
  });

  it("refills at the rate: one token per 1/rate seconds, no more", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 2, refillPerSecond: 2 });
    expect((await bucket.take("k", 2)).allowed).toBe(true);
    expect((await bucket.take("k")).allowed).toBe(false);
    // 500 ms a token; wait for 1.5 tokens (± slack): exactly one more.
    await h.elapse(750);
    const after = [await bucket.take("k"), await bucket.take("k")];
    expect(after.map((d) => d.allowed)).toEqual([true, false]);
  });

  it("takes cost tokens at once, or none", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 10, refillPerSecond: 0.01 });
    expect(await bucket.take("k", 7)).toMatchObject({ allowed: true, remaining: 3 });
    expect(await bucket.take("k", 4)).toMatchObject({ allowed: false, remaining: 3 });
    expect(await bucket.take("k", 3)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await bucket.take("k", 1)).toMatchObject({ allowed: false, remaining: 0 });
  });

  it("allows again once retryAfterMs has passed", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 1, refillPerSecond: 5 });
    expect((await bucket.take("k")).allowed).toBe(true);
    const refused = await bucket.take("k");
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    await h.elapse(refused.retryAfterMs + 1);
    expect((await bucket.take("k")).allowed).toBe(true);
  });

  it("keeps keys apart, and forgets a bucket once it is full again", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 2, refillPerSecond: 10 });
    for (const key of ["key:a:tokenize", "tenant:t1:tokenize", "ip:2001:db8::1:auth"]) {
      expect([await bucket.take(key, 2), await bucket.take(key)].map((d) => d.allowed)).toEqual([
        true,
        false,
      ]);
    }
    expect(await h.held()).toBe(3);
    if (adapter.name === "redis") {
      await h.elapse(200 + 50); // the keys' PEXPIRE is the time to refill: 200 ms
      expect(await h.held()).toBe(0);
    }
  });

  it("refuses a bad key or cost as the caller's bug", async () => {
    const bucket = new TokenBucket(h.buckets, { capacity: 3, refillPerSecond: 1 });
    await expect(bucket.take("two words")).rejects.toThrow(TypeError);
    await expect(bucket.take("k", 4)).rejects.toThrow(RangeError);
    expect(await h.held()).toBe(0);
  });

  it("backs failures off exponentially, caps the block, and clears it on success", async () => {
    const backoff = h.backoff({ baseMs: 100, maxMs: 400, forgetAfterMs: 60_000 });
    const delays = [];
    for (let i = 0; i < 5; i++) delays.push((await backoff.failure("ip:203.0.113.9")).retryAfterMs);
    expect(delays).toEqual([100, 200, 400, 400, 400]);
    const blocked = await backoff.check("ip:203.0.113.9");
    expect(blocked).toMatchObject({ blocked: true, failures: 5 });
    expect(blocked.retryAfterMs).toBeGreaterThanOrEqual(400 - adapter.slackMs);
    expect(blocked.retryAfterMs).toBeLessThanOrEqual(400);
    await backoff.success("ip:203.0.113.9");
    expect(await backoff.check("ip:203.0.113.9")).toEqual({
      blocked: false,
      failures: 0,
      retryAfterMs: 0,
    });
    expect((await backoff.failure("ip:203.0.113.9")).retryAfterMs).toBe(100);
  });

  it("unblocks after the delay, remembers the count, then forgets it", async () => {
    const backoff = h.backoff({ baseMs: 100, maxMs: 1_000, forgetAfterMs: 300 });
    await backoff.failure("principal:u1");
    await h.elapse(100 + adapter.slackMs / 2);
    expect(await backoff.check("principal:u1")).toMatchObject({ blocked: false, failures: 1 });
    expect((await backoff.failure("principal:u1")).retryAfterMs).toBe(200);
    await h.elapse(200 + 300 + adapter.slackMs / 2);
    expect((await backoff.check("principal:u1")).failures).toBe(0);
    expect((await backoff.failure("principal:u1")).retryAfterMs).toBe(100);
  });
}

describe("rate limits, memory adapter", () => contract(MEMORY));
REDIS.describe("rate limits, Redis adapter", () => contract(REDIS));

/** Two vault nodes: each its own ioredis client and adapters, one shared prefix. */
describeRedis("rate limits shared by two nodes through one Redis", () => {
  let prefix: string;
  let clients: [Redis, Redis];
  let raw: Redis;
  beforeAll(async () => {
    prefix = testPrefix();
    clients = [
      createRateLimitRedis({ url: REDIS_URL, commandTimeoutMs: 2_000 }),
      createRateLimitRedis({ url: REDIS_URL, commandTimeoutMs: 2_000 }),
    ];
    await Promise.all(clients.map((c) => whenRateLimitRedisReady(c, 2_000)));
    raw = rawClient();
  });
  afterAll(async () => {
    await dropKeys(raw, prefix);
    await Promise.all([...clients, raw].map((c) => c.quit()));
  });

  const nodes = () => clients.map((client) => new RedisTokenBucketStore({ client, prefix }));

  it("capacity 10, 40 concurrent takes across both nodes: exactly 10 allowed", async () => {
    const policy = { capacity: 10, refillPerSecond: 0.001 };
    const [a, b] = nodes().map((store) => new TokenBucket(store, policy));
    const decisions = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a! : b!).take("key:k1:tokenize")),
    );
    expect(decisions.length).toBe(40);
    const allowed = decisions.filter((d) => d.allowed);
    expect(allowed.length).toBe(10);
    // Each allowed take saw a different count left: no two nodes read the same state.
    expect(allowed.map((d) => d.remaining).sort((x, y) => x - y)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    const byNode = [0, 1].map((n) => decisions.filter((d, i) => i % 2 === n && d.allowed).length);
    expect(byNode[0]! + byNode[1]!).toBe(10);
  });

  it("holds the sustained rate across both nodes under load", async () => {
    const policy = { capacity: 5, refillPerSecond: 20 };
    const [a, b] = nodes().map((store) => new TokenBucket(store, policy));
    const started = Date.now();
    let allowed = 0;
    let refused = 0;
    const hammer = async (bucket: TokenBucket) => {
      while (Date.now() - started < 600) {
        if ((await bucket.take("tenant:t1:reveal")).allowed) allowed += 1;
        else refused += 1;
      }
    };
    await Promise.all([hammer(a!), hammer(a!), hammer(b!), hammer(b!)]);
    const elapsedS = (Date.now() - started) / 1000;
    expect(refused).toBeGreaterThan(0);
    expect(allowed).toBeGreaterThan(policy.capacity); // the bucket refilled meanwhile
    expect(allowed).toBeLessThanOrEqual(policy.capacity + Math.ceil(20 * elapsedS) + 1);
  });

  it("counts failures from both nodes against one backoff", async () => {
    const policy = { baseMs: 1_000, maxMs: 60_000, forgetAfterMs: 60_000 };
    const [a, b] = clients.map((client) => new RedisAuthBackoff({ client, prefix, policy }));
    expect((await a!.failure("principal:u2")).retryAfterMs).toBe(1_000);
    expect(await b!.failure("principal:u2")).toEqual({
      blocked: true,
      failures: 2,
      retryAfterMs: 2_000,
    });
    expect(await a!.check("principal:u2")).toMatchObject({ blocked: true, failures: 2 });
    await b!.success("principal:u2");
    expect((await a!.check("principal:u2")).failures).toBe(0);

    const concurrent = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a! : b!).failure("ip:192.0.2.1")),
    );
    expect(concurrent.map((s) => s.failures).sort((x, y) => x - y)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect((await b!.check("ip:192.0.2.1")).failures).toBe(10);
  });

  it("writes only under its prefix, with a TTL on every key", async () => {
    const names = await keysUnder(raw, prefix);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      expect(name.startsWith(`${prefix}rl:`) || name.startsWith(`${prefix}backoff:`)).toBe(true);
      expect(await raw.pttl(name)).toBeGreaterThan(0);
    }
  });

  it("loads a script Redis does not have cached (NOSCRIPT, e.g. after a failover)", async () => {
    const source = `-- ${randomBytes(8).toString("hex")}\nreturn {tonumber(ARGV[1]) + 1}`;
    const { createHash } = await import("node:crypto");
    const script = { source, sha1: createHash("sha1").update(source).digest("hex") };
    expect(await raw.script("EXISTS", script.sha1)).toEqual([0]);
    expect(await runScript(clients[0], script, `${prefix}unused`, [41])).toEqual([42]);
    expect(await raw.script("EXISTS", script.sha1)).toEqual([1]);
  });
});

/** A dead Redis fails each route class its own way, and fast. */
describe("rate limits when Redis is down", () => {
  const policies = resolveRateLimitPolicies({
    tokenize: { capacity: 2, refillPerSecond: 0.01, onUnavailable: "local" },
    reveal: { capacity: 2, refillPerSecond: 0.01, onUnavailable: "open" },
    auth: { capacity: 2, refillPerSecond: 0.01, onUnavailable: "closed" },
  });

  async function expectPolicyOnDeadStore(client: Redis, outages: RateLimitOutage[]) {
    const limiter = new RouteRateLimiter({
      store: new RedisTokenBucketStore({ client, prefix: testPrefix() }),
      policies,
      onUnavailable: (outage) => outages.push(outage),
    });
    const started = performance.now();
    const auth = await limiter.take("auth", "ip:198.51.100.1:auth");
    const reveal = await limiter.take("reveal", "key:k1:reveal");
    const tokenize = [];
    for (let i = 0; i < 3; i++) tokenize.push(await limiter.take("tokenize", "key:k1:tokenize"));
    const backoff = new RedisAuthBackoff({ client, prefix: testPrefix() });
    await expect(backoff.check("ip:198.51.100.1")).rejects.toThrow(RateLimitUnavailableError);
    await expect(backoff.failure("ip:198.51.100.1")).rejects.toThrow(RateLimitUnavailableError);
    await expect(backoff.success("ip:198.51.100.1")).rejects.toThrow(RateLimitUnavailableError);
    const elapsedMs = performance.now() - started;

    expect(auth.outcome).toBe("unavailable");
    expect(reveal).toEqual({ outcome: "unchecked" });
    expect(tokenize.map((v) => v.outcome)).toEqual(["allowed", "allowed", "limited"]);
    expect(tokenize.every((v) => "source" in v && v.source === "local")).toBe(true);
    expect(outages.map((o) => `${o.routeClass}:${o.mode}`)).toEqual([
      "auth:closed",
      "reveal:open",
      "tokenize:local",
    ]);
    expect(JSON.stringify(outages)).not.toMatch(/198\.51|k1/);
    return elapsedMs;
  }

  it("closed port: auth refused (503), tokenize on local buckets, reveal open, in < 2 s", async () => {
    const client = createRateLimitRedis({ url: `redis://127.0.0.1:${await closedPort()}` });
    const outages: RateLimitOutage[] = [];
    try {
      const elapsedMs = await expectPolicyOnDeadStore(client, outages);
      expect(elapsedMs).toBeLessThan(2_000);
      expect(outages[0]?.reason).toMatch(/^(not connected|ECONNREFUSED|connection closed)$/);
    } finally {
      client.disconnect();
    }
  });

  it("hung Redis (accepts, never answers): the command timeout bounds each take", async () => {
    const hung = await silentServer();
    const client = createRateLimitRedis({
      url: `redis://127.0.0.1:${hung.port}`,
      connectTimeoutMs: 300,
      commandTimeoutMs: 100,
    });
    const outages: RateLimitOutage[] = [];
    try {
      const elapsedMs = await expectPolicyOnDeadStore(client, outages);
      expect(elapsedMs).toBeLessThan(2_000);
    } finally {
      client.disconnect();
      await hung.close();
    }
  });

  describeRedis("Redis dies while the vault runs", () => {
    it("answers from Redis, then per policy once the connection is cut", async () => {
      const relay = await redisRelay();
      const client = createRateLimitRedis({ url: relay.url });
      const raw = rawClient();
      const prefix = testPrefix();
      try {
        await whenRateLimitRedisReady(client, 2_000);
        const limiter = new RouteRateLimiter({
          store: new RedisTokenBucketStore({ client, prefix }),
          policies,
        });
        expect(await limiter.take("auth", "ip:a:auth")).toMatchObject({
          outcome: "allowed",
          source: "store",
        });
        await relay.cut();
        const started = performance.now();
        expect(await limiter.take("auth", "ip:a:auth")).toMatchObject({ outcome: "unavailable" });
        expect(await limiter.take("tokenize", "k")).toMatchObject({ source: "local" });
        expect(performance.now() - started).toBeLessThan(2_000);
      } finally {
        client.disconnect();
        await dropKeys(raw, prefix);
        await raw.quit();
      }
    });
  });
});
