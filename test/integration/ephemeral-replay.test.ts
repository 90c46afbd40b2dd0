import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from "vitest";
import { EphemeralStoreUnavailableError } from "../../src/ephemeral/ephemeral-store.js";
import { RedisEphemeralStore } from "../../src/ephemeral/redis-ephemeral-store.js";
import { ReplayGuard } from "../../src/ephemeral/replay-guard.js";
import type { StoreAdapter, StoreHarness } from "../support/redis.js";
import {
  describeRedis,
  REDIS_URL,
  rawClient,
  redisRelay,
  removeKeys,
  STORE_ADAPTERS,
  testPrefix,
} from "../support/redis.js";

function replaySuite(adapter: StoreAdapter): void {
  let h: StoreHarness;
  let guard: ReplayGuard;
  /** The jti outlives its token by this much; short, so the Redis tests wait little. */
  const marginMs = adapter.shortTtlMs / 2;
  const expiresIn = (ms: number) => new Date(h.clock.now().getTime() + ms);

  beforeEach(async () => {
    h = await adapter.open();
    guard = new ReplayGuard(h.store, { clock: h.clock, marginMs });
  });
  afterEach(async () => {
    await h.close();
  });

  it("accepts a jti once, refuses it after, and forgets it once its token expired", async () => {
    const exp = expiresIn(adapter.shortTtlMs / 2);
    expect(await guard.firstUse("capture", "jti-1", exp)).toBe(true);
    expect(await guard.firstUse("capture", "jti-1", exp)).toBe(false);
    await h.elapse(adapter.shortTtlMs / 2);
    // Past exp but inside the margin (the verifiers' clock skew): still a replay.
    expect(await guard.firstUse("capture", "jti-1", exp)).toBe(false);
    await h.elapse(marginMs);
    expect(await guard.firstUse("capture", "jti-1", expiresIn(adapter.shortTtlMs))).toBe(true);
  });

  it("keeps namespaces apart: a capture jti does not burn a nested-JWT one", async () => {
    const exp = expiresIn(60_000);
    expect(await guard.firstUse("capture", "same", exp)).toBe(true);
    expect(await guard.firstUse("nested-jwt.ten_a", "same", exp)).toBe(true);
    expect(await guard.firstUse("nested-jwt.ten_b", "same", exp)).toBe(true);
    expect(await guard.firstUse("nested-jwt.ten_a", "same", exp)).toBe(false);
  });

  it("remembers a just-expired token for the margin instead of accepting it twice", async () => {
    const past = expiresIn(-1_000);
    expect(await guard.firstUse("capture", "late", past)).toBe(true);
    expect(await guard.firstUse("capture", "late", past)).toBe(false);
  });

  it("keeps the jti, the sender's text, out of key names", async () => {
    const jti = "a:b*c [d]\u00e9\u{1f600}".repeat(40);
    expect(await guard.firstUse("capture", jti, expiresIn(60_000))).toBe(true);
    const names = [...(await h.raw()).keys()];
    expect(names).toHaveLength(1);
    const name = names[0] ?? "";
    expect(name.startsWith(`${h.prefix}jti:capture:`)).toBe(true);
    // The SHA-256 of the jti, base64url: fixed length, no separators.
    expect(name.slice(`${h.prefix}jti:capture:`.length)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await guard.firstUse("capture", jti, expiresIn(60_000))).toBe(false);
  });

  it("refuses malformed input and tokens living longer than it remembers", async () => {
    await expect(guard.firstUse("", "j", expiresIn(1_000))).rejects.toThrow(TypeError);
    await expect(guard.firstUse("a:b", "j", expiresIn(1_000))).rejects.toThrow(TypeError);
    await expect(guard.firstUse("capture", "", expiresIn(1_000))).rejects.toThrow(TypeError);
    await expect(guard.firstUse("capture", "j".repeat(1_025), expiresIn(1_000))).rejects.toThrow(
      TypeError,
    );
    await expect(guard.firstUse("capture", "j", expiresIn(2 * 86_400_000))).rejects.toThrow(
      RangeError,
    );
    await expect(guard.firstUse("capture", "j", new Date(Number.NaN))).rejects.toThrow(RangeError);
    expect((await h.raw()).size).toBe(0);
  });

  it("lets exactly one of many concurrent first uses through", async () => {
    const exp = expiresIn(60_000);
    const results = await Promise.all(
      Array.from({ length: 25 }, () => guard.firstUse("capture", "burst", exp)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });
}

for (const adapter of STORE_ADAPTERS) {
  adapter.describe(`ReplayGuard on ${adapter.name}`, () => replaySuite(adapter));
}

describeRedis("ReplayGuard on two vault nodes sharing Redis", () => {
  const prefix = testPrefix();
  const client = rawClient();
  let nodeA: RedisEphemeralStore;
  let nodeB: RedisEphemeralStore;
  beforeAll(async () => {
    nodeA = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
    nodeB = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
  });
  afterAll(async () => {
    await nodeA.close();
    await nodeB.close();
    await removeKeys(client, prefix);
    await client.quit();
  });

  it("lets exactly one node accept each jti when both see it at once", async () => {
    const guardA = new ReplayGuard(nodeA);
    const guardB = new ReplayGuard(nodeB);
    const exp = new Date(Date.now() + 60_000);
    const jtis = Array.from({ length: 50 }, (_, i) => `jti-${i}`);
    const outcomes = await Promise.all(
      jtis.map(async (jti) => {
        const [a, b] = await Promise.all([
          guardA.firstUse("capture", jti, exp),
          guardB.firstUse("capture", jti, exp),
        ]);
        return [a, b];
      }),
    );
    for (const [a, b] of outcomes) expect(a !== b).toBe(true);
    expect(await guardB.firstUse("capture", "jti-0", exp)).toBe(false);
    expect(await guardA.firstUse("capture", "jti-0", exp)).toBe(false);
  });

  it("fails closed when its Redis is gone: an unknown jti is never accepted", async () => {
    const relay = await redisRelay();
    const store = await RedisEphemeralStore.connect({ url: relay.url, prefix });
    await relay.cut();
    const guard = new ReplayGuard(store);
    await expect(
      guard.firstUse("capture", "while-down", new Date(Date.now() + 60_000)),
    ).rejects.toThrow(EphemeralStoreUnavailableError);
    await store.close();
  });
});
