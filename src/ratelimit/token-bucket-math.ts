import type { BucketPolicy, RateLimitDecision } from "./token-bucket.js";

/**
 * The token bucket arithmetic, pure: the memory adapter runs it, and the Redis adapter's Lua
 * script (redis-token-bucket-store.ts) is the same formulas line for line, so both adapters give
 * the same answers (the contract suite checks it).
 */
export interface BucketState {
  /** Tokens at `updatedAt`: a fraction between refills. */
  readonly tokens: number;
  /** Milliseconds since the epoch. */
  readonly updatedAt: number;
}

export interface BucketStep {
  readonly decision: RateLimitDecision;
  /** The state to keep; undefined when refused (the stored state still refills to the same). */
  readonly next: BucketState | undefined;
}

/**
 * Tokens are fractions, and 3 × ⅓ s of refill must make a whole token: a billionth of a token
 * absorbs the rounding of binary floating point, and is far below any token anyone pays.
 */
export const TOKEN_EPSILON = 1e-9;
/** Likewise for durations in ms, before they are rounded up. */
const MS_EPSILON = 1e-6;

/** The bucket refilled up to `nowMs`; absent is full. A clock that went back refills nothing. */
export function refill(
  state: BucketState | undefined,
  policy: BucketPolicy,
  nowMs: number,
): BucketState {
  if (state === undefined) return { tokens: policy.capacity, updatedAt: nowMs };
  if (nowMs <= state.updatedAt) return state;
  const tokens = Math.min(
    policy.capacity,
    state.tokens + ((nowMs - state.updatedAt) * policy.refillPerSecond) / 1000,
  );
  return { tokens, updatedAt: nowMs };
}

/** How long until the bucket holds `target` tokens, in whole ms rounded up. */
export function msUntil(tokens: number, target: number, policy: BucketPolicy): number {
  if (tokens + TOKEN_EPSILON >= target) return 0;
  return Math.ceil(((target - tokens) * 1000) / policy.refillPerSecond - MS_EPSILON);
}

export function takeTokens(
  state: BucketState | undefined,
  policy: BucketPolicy,
  nowMs: number,
  cost: number,
): BucketStep {
  const current = refill(state, policy, nowMs);
  if (current.tokens + TOKEN_EPSILON < cost) {
    return {
      decision: {
        allowed: false,
        remaining: Math.floor(current.tokens + TOKEN_EPSILON),
        retryAfterMs: msUntil(current.tokens, cost, policy),
        resetMs: msUntil(current.tokens, policy.capacity, policy),
        limit: policy.capacity,
      },
      next: undefined,
    };
  }
  const tokens = Math.max(0, current.tokens - cost);
  return {
    decision: {
      allowed: true,
      remaining: Math.floor(tokens + TOKEN_EPSILON),
      retryAfterMs: 0,
      resetMs: msUntil(tokens, policy.capacity, policy),
      limit: policy.capacity,
    },
    next: { tokens, updatedAt: current.updatedAt },
  };
}
