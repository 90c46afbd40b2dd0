import { describe, expect, it } from "vitest";
import {
  backoffHeaders,
  rateLimitHeaders,
  retryAfterSeconds,
} from "../../../src/ratelimit/rate-limit-headers.js";

const POLICY = { capacity: 100, refillPerSecond: 50 };

describe("rate limit headers (draft-ietf-httpapi-ratelimit-headers-10)", () => {
  it("advertises the policy and what is left on an allowed request", () => {
    expect(
      rateLimitHeaders("tokenize", POLICY, {
        allowed: true,
        remaining: 42,
        retryAfterMs: 0,
        resetMs: 1_160,
        limit: 100,
      }),
    ).toEqual({
      "RateLimit-Policy": '"tokenize";q=100;w=2',
      RateLimit: '"tokenize";r=42;t=2',
    });
  });

  it("adds Retry-After on a refusal, naming the same instant as t", () => {
    expect(
      rateLimitHeaders(
        "auth",
        { capacity: 10, refillPerSecond: 1 / 6 },
        { allowed: false, remaining: 0, retryAfterMs: 5_001, resetMs: 60_000, limit: 10 },
      ),
    ).toEqual({
      "RateLimit-Policy": '"auth";q=10;w=60',
      RateLimit: '"auth";r=0;t=6',
      "Retry-After": "6",
    });
  });

  it("adds the older three fields when asked", () => {
    const headers = rateLimitHeaders(
      "reveal",
      { capacity: 20, refillPerSecond: 2 },
      { allowed: true, remaining: 19, retryAfterMs: 0, resetMs: 500, limit: 20 },
      { legacy: true },
    );
    expect(headers).toEqual({
      "RateLimit-Policy": '"reveal";q=20;w=10',
      RateLimit: '"reveal";r=19;t=1',
      "RateLimit-Limit": "20",
      "RateLimit-Remaining": "19",
      "RateLimit-Reset": "1",
    });
  });

  it("says t=0 for a full bucket, and never a window of 0", () => {
    const headers = rateLimitHeaders(
      "burst",
      { capacity: 1, refillPerSecond: 1_000 },
      { allowed: true, remaining: 1, retryAfterMs: 0, resetMs: 0, limit: 1 },
    );
    expect(headers).toEqual({
      "RateLimit-Policy": '"burst";q=1;w=1',
      RateLimit: '"burst";r=1;t=0',
    });
  });

  it("refuses a policy name that would need escaping or break the field", () => {
    const decision = { allowed: true, remaining: 1, retryAfterMs: 0, resetMs: 0, limit: 1 };
    for (const name of ['a"b', "a,b", "", "Upper", "a;q=1", "x".repeat(65)]) {
      expect(() => rateLimitHeaders(name, POLICY, decision)).toThrow(TypeError);
    }
  });

  it("gives Retry-After in whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3)", () => {
    expect([0, 1, 999, 1_000, 1_001, 900_000].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 900]);
    expect(backoffHeaders({ blocked: true, failures: 3, retryAfterMs: 3_500 })).toEqual({
      "Retry-After": "4",
    });
    expect(backoffHeaders({ blocked: false, failures: 3, retryAfterMs: 0 })).toEqual({});
  });
});
