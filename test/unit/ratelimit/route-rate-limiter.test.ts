import { describe, expect, it } from "vitest";
import { MemoryTokenBucketStore } from "../../../src/ratelimit/memory-token-bucket-store.js";
import type { RateLimitPolicies } from "../../../src/ratelimit/rate-limit-policies.js";
import {
  DEFAULT_RATE_LIMIT_POLICIES,
  resolveRateLimitPolicies,
} from "../../../src/ratelimit/rate-limit-policies.js";
import type { RateLimitOutage } from "../../../src/ratelimit/route-rate-limiter.js";
import { RouteRateLimiter } from "../../../src/ratelimit/route-rate-limiter.js";
import type { TokenBucketStore } from "../../../src/ratelimit/token-bucket.js";
import { RateLimitUnavailableError } from "../../../src/ratelimit/token-bucket.js";
import { FixedClock } from "./fixed-clock.js";

/** A store that is down: every take fails the way the Redis adapter does. */
const DOWN: TokenBucketStore = {
  take: async () => {
    throw new RateLimitUnavailableError("ECONNREFUSED");
  },
  takeAll: async () => {
    throw new RateLimitUnavailableError("ECONNREFUSED");
  },
};

const POLICIES: RateLimitPolicies = resolveRateLimitPolicies({
  tokenize: { capacity: 2, refillPerSecond: 1, onUnavailable: "local" },
  reveal: { capacity: 2, refillPerSecond: 1, onUnavailable: "open" },
  auth: { capacity: 2, refillPerSecond: 1, onUnavailable: "closed" },
});

function limiter(store: TokenBucketStore, outages: RateLimitOutage[] = []) {
  const clock = new FixedClock();
  return {
    clock,
    limiter: new RouteRateLimiter({
      store,
      policies: POLICIES,
      clock,
      onUnavailable: (outage) => outages.push(outage),
      fallback: new MemoryTokenBucketStore({ clock }),
    }),
  };
}

describe("route rate limiter", () => {
  it("decides from the store while it answers", async () => {
    const { limiter: l } = limiter(new MemoryTokenBucketStore({ clock: new FixedClock() }));
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push((await l.take("auth", "ip:a:auth")).outcome);
    expect(outcomes).toEqual(["allowed", "allowed", "limited"]);
    const limited = await l.take("auth", "ip:a:auth");
    expect(limited).toMatchObject({ outcome: "limited", source: "store" });
  });

  it("fails closed, locally or open per class when the store is down", async () => {
    const outages: RateLimitOutage[] = [];
    const { limiter: l } = limiter(DOWN, outages);
    expect(await l.take("auth", "ip:a:auth")).toEqual({
      outcome: "unavailable",
      reason: "ECONNREFUSED",
    });
    expect(await l.take("reveal", "key:k1:reveal")).toEqual({ outcome: "unchecked" });
    const local = [];
    for (let i = 0; i < 3; i++) local.push(await l.take("tokenize", "key:k1:tokenize"));
    expect(local.map((v) => v.outcome)).toEqual(["allowed", "allowed", "limited"]);
    expect(local.every((v) => "source" in v && v.source === "local")).toBe(true);
    expect(outages.map((o) => [o.routeClass, o.mode, o.reason, o.count])).toEqual([
      ["auth", "closed", "ECONNREFUSED", 1],
      ["reveal", "open", "ECONNREFUSED", 1],
      ["tokenize", "local", "ECONNREFUSED", 1],
    ]);
    expect(JSON.stringify(outages)).not.toContain("key:k1");
  });

  it("reports an outage at once, then at most once per interval with the count", async () => {
    const outages: RateLimitOutage[] = [];
    const { limiter: l, clock } = limiter(DOWN, outages);
    for (let i = 0; i < 5; i++) await l.take("auth", "ip:a:auth");
    expect(outages.length).toBe(1);
    clock.advance(10_000);
    await l.take("auth", "ip:a:auth");
    expect(outages.map((o) => o.count)).toEqual([1, 5]);
  });

  it("lets the caller's bugs through instead of treating them as an outage", async () => {
    const { limiter: l } = limiter(new MemoryTokenBucketStore());
    await expect(l.take("auth", "bad key")).rejects.toThrow(TypeError);
    await expect(l.take("auth", "k", 3)).rejects.toThrow(RangeError);
  });
});

describe("rate limit policies", () => {
  it("fails closed only for auth by default, and keeps defaults under a partial override", () => {
    expect(
      Object.entries(DEFAULT_RATE_LIMIT_POLICIES).map(([name, p]) => [name, p.onUnavailable]),
    ).toEqual([
      ["tokenize", "local"],
      ["reveal", "local"],
      ["auth", "closed"],
      ["forward", "local"],
      ["webhook", "local"],
    ]);
    const resolved = resolveRateLimitPolicies({ reveal: { capacity: 5 } });
    expect(resolved.reveal).toEqual({
      ...DEFAULT_RATE_LIMIT_POLICIES.reveal,
      capacity: 5,
    });
    expect(resolved.reveal.refillPerSecond).toBe(
      DEFAULT_RATE_LIMIT_POLICIES.reveal.refillPerSecond,
    );
    expect(resolved.tokenize).toEqual(DEFAULT_RATE_LIMIT_POLICIES.tokenize);
    expect(Object.isFrozen(resolved.auth)).toBe(true);
  });

  it("refuses a policy that cannot work", () => {
    expect(() => resolveRateLimitPolicies({ auth: { capacity: 0 } })).toThrow(RangeError);
    expect(() => resolveRateLimitPolicies({ auth: { refillPerSecond: -1 } })).toThrow(RangeError);
    expect(() =>
      resolveRateLimitPolicies({ auth: { onUnavailable: "maybe" as unknown as "open" } }),
    ).toThrow(RangeError);
  });
});
