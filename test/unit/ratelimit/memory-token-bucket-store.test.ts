import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryTokenBucketStore } from "../../../src/ratelimit/memory-token-bucket-store.js";
import type { BucketPolicy } from "../../../src/ratelimit/token-bucket.js";
import { TokenBucket } from "../../../src/ratelimit/token-bucket.js";
import { FixedClock } from "./fixed-clock.js";

function open(policy: BucketPolicy, maxBuckets?: number) {
  const clock = new FixedClock();
  const store = new MemoryTokenBucketStore(
    maxBuckets === undefined ? { clock } : { clock, maxBuckets },
  );
  return { clock, store, bucket: new TokenBucket(store, policy) };
}

async function drain(bucket: TokenBucket, key: string): Promise<number> {
  let allowed = 0;
  while ((await bucket.take(key)).allowed) allowed += 1;
  return allowed;
}

describe("memory token buckets", () => {
  it("allows a full burst of `capacity`, then refuses with the exact wait", async () => {
    const { bucket } = open({ capacity: 5, refillPerSecond: 1 });
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const decision = await bucket.take("ip:198.51.100.7:auth");
      expect(decision.allowed).toBe(true);
      remaining.push(decision.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    expect(await bucket.take("ip:198.51.100.7:auth")).toEqual({
      allowed: false,
      remaining: 0,
      retryAfterMs: 1_000,
      resetMs: 5_000,
      limit: 5,
    });
  });

  it("refills exactly: not one millisecond early", async () => {
    const { bucket, clock } = open({ capacity: 3, refillPerSecond: 4 });
    expect(await drain(bucket, "k")).toBe(3);
    clock.advance(249);
    const early = await bucket.take("k");
    expect(early).toMatchObject({ allowed: false, retryAfterMs: 1 });
    clock.advance(1);
    expect(await bucket.take("k")).toMatchObject({ allowed: true, remaining: 0, resetMs: 750 });
    expect((await bucket.take("k")).allowed).toBe(false);
  });

  it("makes a whole token of three thirds (no floating point shortfall)", async () => {
    const { bucket, clock } = open({ capacity: 1, refillPerSecond: 3 });
    expect(await drain(bucket, "k")).toBe(1);
    const refused = await bucket.take("k");
    expect(refused.retryAfterMs).toBe(334); // ⌈1000 / 3⌉
    for (let i = 0; i < 3; i++) {
      clock.advance(111);
      expect((await bucket.take("k")).allowed).toBe(false);
    }
    clock.advance(1); // 334 ms in all
    expect((await bucket.take("k")).allowed).toBe(true);
  });

  it("takes `cost` tokens at once, and none when it cannot pay the whole cost", async () => {
    const { bucket, clock } = open({ capacity: 10, refillPerSecond: 2 });
    expect(await bucket.take("k", 7)).toMatchObject({ allowed: true, remaining: 3 });
    const refused = await bucket.take("k", 4);
    expect(refused).toEqual({
      allowed: false,
      remaining: 3,
      retryAfterMs: 500,
      resetMs: 3_500,
      limit: 10,
    });
    clock.advance(499);
    expect((await bucket.take("k", 4)).allowed).toBe(false);
    expect(await bucket.take("k", 3)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it("never refills beyond capacity, however long the bucket idles", async () => {
    const { bucket, clock } = open({ capacity: 4, refillPerSecond: 100 });
    await bucket.take("k", 4);
    clock.advance(86_400_000);
    expect(await drain(bucket, "k")).toBe(4);
  });

  it("keeps keys apart", async () => {
    const { bucket } = open({ capacity: 2, refillPerSecond: 1 });
    expect(await drain(bucket, "key:a:tokenize")).toBe(2);
    expect(await drain(bucket, "key:b:tokenize")).toBe(2);
    expect(await drain(bucket, "tenant:a:tokenize")).toBe(2);
  });

  it("refills nothing when the clock goes back, and does not stall after", async () => {
    const { bucket, clock } = open({ capacity: 2, refillPerSecond: 1 });
    await drain(bucket, "k");
    clock.advance(-60_000);
    expect((await bucket.take("k")).allowed).toBe(false);
    clock.advance(60_000 + 1_000);
    expect((await bucket.take("k")).allowed).toBe(true);
  });

  it("refuses a bad key, cost or policy as the caller's bug", async () => {
    const { bucket, store } = open({ capacity: 3, refillPerSecond: 1 });
    await expect(bucket.take("")).rejects.toThrow(TypeError);
    await expect(bucket.take("has space")).rejects.toThrow(TypeError);
    await expect(bucket.take("k", 0)).rejects.toThrow(RangeError);
    await expect(bucket.take("k", 4)).rejects.toThrow(RangeError);
    await expect(bucket.take("k", 1.5)).rejects.toThrow(RangeError);
    await expect(store.take({ capacity: 0, refillPerSecond: 1 }, "k", 1)).rejects.toThrow(
      RangeError,
    );
    expect(() => new TokenBucket(store, { capacity: 1, refillPerSecond: 0 })).toThrow(RangeError);
    expect(store.size).toBe(0);
  });

  it("holds at most maxBuckets, evicting full buckets first", async () => {
    const { bucket, store, clock } = open({ capacity: 2, refillPerSecond: 1 }, 3);
    for (const key of ["a", "b", "c"]) await bucket.take(key);
    clock.advance(1_000); // a, b and c are full again
    await bucket.take("d", 2); // drops a, b and c: a full bucket and no bucket are the same
    expect(store.size).toBe(1);
    await bucket.take("e", 2);
    await bucket.take("f", 2);
    expect(store.size).toBe(3);
    expect(store.forcedEvictions).toBe(0);
    expect((await bucket.take("a", 2)).allowed).toBe(true); // a forgot nothing it had
    expect(store.size).toBe(3);
    expect(store.forcedEvictions).toBe(1); // d, e and f were all empty: d had to go
  });

  it("evicts the least recently used bucket when none is full, and counts it", async () => {
    const { bucket, store } = open({ capacity: 2, refillPerSecond: 1 }, 2);
    await bucket.take("a", 2);
    await bucket.take("b", 2);
    expect((await bucket.take("a")).allowed).toBe(false); // a is now the most recent
    await bucket.take("c", 2);
    expect(store.size).toBe(2);
    expect(store.forcedEvictions).toBe(1);
    expect((await bucket.take("a")).allowed).toBe(false); // a kept its empty bucket
    expect((await bucket.take("b")).allowed).toBe(true); // b was evicted: a fresh bucket
  });

  it("never allows more than capacity + rate × elapsed, for any traffic", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 20 })), {
          maxLength: 60,
        }),
        async (capacity, ratePerTenSeconds, steps) => {
          const refillPerSecond = ratePerTenSeconds / 10;
          const { bucket, clock } = open({ capacity, refillPerSecond });
          let elapsed = 0;
          let taken = 0;
          for (const [waitMs, rawCost] of steps) {
            clock.advance(waitMs);
            elapsed += waitMs;
            const cost = Math.min(rawCost, capacity);
            const decision = await bucket.take("k", cost);
            if (decision.allowed) taken += cost;
            expect(decision.remaining).toBeLessThanOrEqual(capacity);
            expect(decision.retryAfterMs === 0).toBe(decision.allowed);
          }
          expect(taken).toBeLessThanOrEqual(capacity + (refillPerSecond * elapsed) / 1000 + 1e-6);
        },
      ),
      { numRuns: 200 },
    );
  });
});
