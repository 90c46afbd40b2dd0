import { describe, expect, it } from "vitest";
import type { BackoffPolicy } from "../../../src/ratelimit/auth-backoff.js";
import { backoffDelayMs, DEFAULT_BACKOFF_POLICY } from "../../../src/ratelimit/auth-backoff.js";
import { MemoryAuthBackoff } from "../../../src/ratelimit/memory-auth-backoff.js";
import { FixedClock } from "./fixed-clock.js";

const POLICY: BackoffPolicy = { baseMs: 1_000, maxMs: 15 * 60_000, forgetAfterMs: 3_600_000 };

function open(policy: BackoffPolicy = POLICY, maxEntries?: number) {
  const clock = new FixedClock();
  const backoff = new MemoryAuthBackoff(
    maxEntries === undefined ? { policy, clock } : { policy, clock, maxEntries },
  );
  return { clock, backoff };
}

describe("backoff delay", () => {
  it("doubles from base and stops at max: min(base × 2^(n−1), max)", () => {
    const delays = Array.from({ length: 13 }, (_, i) => backoffDelayMs(i, POLICY));
    expect(delays).toEqual([
      0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 900_000,
      900_000,
    ]);
    expect(backoffDelayMs(1_000_000, POLICY)).toBe(900_000);
    expect(DEFAULT_BACKOFF_POLICY).toMatchObject({ baseMs: 1_000, maxMs: 900_000 });
  });
});

describe("memory auth backoff", () => {
  it("blocks each failure for its delay, and no longer", async () => {
    const { backoff, clock } = open();
    expect(await backoff.check("ip:203.0.113.9")).toEqual({
      blocked: false,
      failures: 0,
      retryAfterMs: 0,
    });
    const expected = [1_000, 2_000, 4_000, 8_000];
    for (const [i, delay] of expected.entries()) {
      expect(await backoff.failure("ip:203.0.113.9")).toEqual({
        blocked: true,
        failures: i + 1,
        retryAfterMs: delay,
      });
      clock.advance(delay - 1);
      expect(await backoff.check("ip:203.0.113.9")).toEqual({
        blocked: true,
        failures: i + 1,
        retryAfterMs: 1,
      });
      clock.advance(1);
      expect((await backoff.check("ip:203.0.113.9")).blocked).toBe(false);
    }
  });

  it("caps the block at max", async () => {
    const { backoff } = open();
    let last = 0;
    for (let i = 0; i < 15; i++) last = (await backoff.failure("principal:u1")).retryAfterMs;
    expect(last).toBe(900_000);
  });

  it("starts again at base after a success", async () => {
    const { backoff, clock } = open();
    for (let i = 0; i < 5; i++) await backoff.failure("principal:u1");
    clock.advance(16_000);
    await backoff.success("principal:u1");
    expect(await backoff.check("principal:u1")).toMatchObject({ blocked: false, failures: 0 });
    expect((await backoff.failure("principal:u1")).retryAfterMs).toBe(1_000);
  });

  it("forgets the count forgetAfterMs after the block ends", async () => {
    const { backoff, clock } = open();
    await backoff.failure("k");
    await backoff.failure("k"); // blocked 2 s
    clock.advance(2_000 + 3_600_000 - 1);
    expect(await backoff.check("k")).toMatchObject({ blocked: false, failures: 2 });
    clock.advance(1);
    expect(await backoff.check("k")).toMatchObject({ blocked: false, failures: 0 });
    expect((await backoff.failure("k")).failures).toBe(1);
    expect(backoff.size).toBe(1);
  });

  it("keeps keys apart", async () => {
    const { backoff } = open();
    await backoff.failure("ip:a");
    await backoff.failure("ip:a");
    expect((await backoff.check("principal:a")).failures).toBe(0);
    expect((await backoff.failure("principal:a")).retryAfterMs).toBe(1_000);
  });

  it("holds at most maxEntries, evicting the longest-ago failure and counting blocked ones", async () => {
    const { backoff, clock } = open(POLICY, 2);
    await backoff.failure("a");
    clock.advance(5_000); // a's block is over
    await backoff.failure("b");
    await backoff.failure("c"); // evicts a: not blocked
    expect(backoff.size).toBe(2);
    expect(backoff.forcedEvictions).toBe(0);
    await backoff.failure("d"); // evicts b: still blocked
    expect(backoff.forcedEvictions).toBe(1);
    expect((await backoff.check("a")).failures).toBe(0);
    expect((await backoff.check("c")).failures).toBe(1);
  });

  it("refuses a bad key or policy", async () => {
    const { backoff } = open();
    await expect(backoff.failure("")).rejects.toThrow(TypeError);
    await expect(backoff.check("a b")).rejects.toThrow(TypeError);
    expect(() => open({ baseMs: 0, maxMs: 1, forgetAfterMs: 1 })).toThrow(RangeError);
    expect(() => open({ baseMs: 10, maxMs: 5, forgetAfterMs: 1 })).toThrow(RangeError);
  });
});
