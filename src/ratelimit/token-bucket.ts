/**
 * The TokenBucketStore port: token buckets under opaque keys, shared by every vault node when the
 * store is shared (issue 5 point 4: per API key, per tenant and per client IP, per route class).
 * The caller builds the key (`key:<api key id>:tokenize`, `tenant:<id>:reveal`, `ip:<addr>:auth`);
 * the store never parses it.
 *
 * A bucket holds at most `capacity` tokens and gains `refillPerSecond` tokens a second; a request
 * takes `cost` tokens or is refused without taking any. An absent bucket is a full one, so a store
 * may forget every bucket that has refilled to capacity without changing any answer.
 *
 * Adapters: memory (one process; lazy refill on read) and Redis (one Lua script per take, so the
 * read, refill, take and write are one atomic step for every node).
 */
export interface TokenBucketStore {
  /** Takes `cost` tokens from the bucket under `key`, or refuses and takes none. */
  take(policy: BucketPolicy, key: string, cost: number): Promise<RateLimitDecision>;
  /**
   * Takes `cost` tokens from every bucket at once, or from none: a request that one bucket refuses
   * (its client IP, say) costs the others (its tenant) nothing. One answer per take, in order.
   * The Redis adapter does it in one script: one round trip however many buckets a request has.
   */
  takeAll(takes: readonly BucketTake[], cost: number): Promise<RateLimitDecision[]>;
}

/** One bucket of a multi-bucket take. */
export interface BucketTake {
  readonly policy: BucketPolicy;
  readonly key: string;
}

export interface BucketPolicy {
  /** The most tokens a bucket holds: the largest burst. A whole number, at least 1. */
  readonly capacity: number;
  /** Tokens added per second, up to capacity: the sustained rate. Positive. */
  readonly refillPerSecond: number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** Whole tokens left after this take (after the refusal, when refused). */
  readonly remaining: number;
  /** 0 when allowed; else how long until `cost` tokens are back (ms, rounded up). */
  readonly retryAfterMs: number;
  /** How long until the bucket is full again (ms, rounded up); 0 when it is full. */
  readonly resetMs: number;
  /** The bucket's capacity. */
  readonly limit: number;
}

/**
 * The store cannot be reached or used (Redis down, timed out, refused the script). Carries a short
 * reason for the log, never a key (keys hold client IPs and API key ids) or a URL.
 */
export class RateLimitUnavailableError extends Error {
  override readonly name = "RateLimitUnavailableError";
  readonly code = "RATE_LIMIT_UNAVAILABLE" as const;
  constructor(readonly reason: string) {
    super(`the rate limit store is unavailable (${reason})`);
  }
}

/** Every key the Redis adapters write starts with this prefix, then `rl:` or `backoff:`. */
export const DEFAULT_RATE_LIMIT_PREFIX = "payvault:";

const KEY_PATTERN = /^[\x21-\x7e]{1,512}$/;
const PREFIX_PATTERN = /^[\x21-\x7e]{1,64}$/;

/** Printable ASCII without spaces (an IPv6 address and its zone fit), so logs read the same. */
export function checkLimitKey(key: string): void {
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    throw new TypeError("a rate limit key must be 1..512 printable ASCII characters");
  }
}

export function checkLimitPrefix(prefix: string): void {
  if (typeof prefix !== "string" || !PREFIX_PATTERN.test(prefix)) {
    throw new TypeError("a rate limit key prefix must be 1..64 printable ASCII characters");
  }
}

export function checkBucketPolicy(policy: BucketPolicy): void {
  const { capacity, refillPerSecond } = policy;
  if (!Number.isSafeInteger(capacity) || capacity < 1) {
    throw new RangeError("a bucket's capacity must be a whole number of tokens, at least 1");
  }
  if (!Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
    throw new RangeError("a bucket's refill rate must be a positive number of tokens a second");
  }
}

/** A cost above the capacity could never be paid: that is the caller's bug, not a 429. */
export function checkCost(policy: BucketPolicy, cost: number): void {
  if (!Number.isSafeInteger(cost) || cost < 1 || cost > policy.capacity) {
    throw new RangeError(`a take costs 1..${policy.capacity} whole tokens`);
  }
}

/** A store bound to one policy: what a route class calls. */
export class TokenBucket {
  constructor(
    private readonly store: TokenBucketStore,
    readonly policy: BucketPolicy,
  ) {
    checkBucketPolicy(policy);
  }

  take(key: string, cost = 1): Promise<RateLimitDecision> {
    return this.store.take(this.policy, key, cost);
  }
}
