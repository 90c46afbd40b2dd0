import type { BackoffState } from "./auth-backoff.js";
import type { BucketPolicy, RateLimitDecision } from "./token-bucket.js";

/**
 * Response fields for a rate-limit decision, per draft-ietf-httpapi-ratelimit-headers-10
 * (September 2025): `RateLimit-Policy` lists the quota policy as a Structured Field Item (RFC 8941)
 * named by a String, with `q` (quota) and `w` (window, seconds); `RateLimit` gives that policy's
 * remaining quota `r` and the seconds until it resets `t`. A token bucket maps onto them as:
 * q = capacity (the burst), w = the seconds a drained bucket takes to refill (so q/w is the
 * sustained rate), r = whole tokens left, t = seconds until the bucket is full again, or on a
 * refusal the same instant as Retry-After (the draft's §"Server Behavior": both SHOULD name the
 * same point in time). The partition key `pk` is left out: it would echo the client's IP or API
 * key id in every response for no use to the client.
 *
 * `legacy: true` adds the older RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset fields
 * (draft -06 and earlier), which many clients still read.
 */
export interface RateLimitHeaderOptions {
  readonly legacy?: boolean;
}

const POLICY_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;

export function rateLimitHeaders(
  policyName: string,
  policy: BucketPolicy,
  decision: RateLimitDecision,
  options: RateLimitHeaderOptions = {},
): Record<string, string> {
  // A name in this alphabet is an sf-string with nothing to escape.
  if (!POLICY_NAME.test(policyName)) {
    throw new TypeError("a rate limit policy name must be 1..64 of a-z, 0-9, '_', '.', '-'");
  }
  const windowSeconds = Math.max(1, Math.ceil(policy.capacity / policy.refillPerSecond));
  const resetSeconds = decision.allowed
    ? Math.ceil(decision.resetMs / 1000)
    : retryAfterSeconds(decision.retryAfterMs);
  const headers: Record<string, string> = {
    "RateLimit-Policy": `"${policyName}";q=${decision.limit};w=${windowSeconds}`,
    RateLimit: `"${policyName}";r=${decision.remaining};t=${resetSeconds}`,
  };
  if (options.legacy === true) {
    headers["RateLimit-Limit"] = String(decision.limit);
    headers["RateLimit-Remaining"] = String(decision.remaining);
    headers["RateLimit-Reset"] = String(resetSeconds);
  }
  if (!decision.allowed) headers["Retry-After"] = String(resetSeconds);
  return headers;
}

/** Retry-After for a blocked authentication (a 429 without a quota to advertise). */
export function backoffHeaders(state: BackoffState): Record<string, string> {
  return state.blocked ? { "Retry-After": String(retryAfterSeconds(state.retryAfterMs)) } : {};
}

/**
 * RFC 9110 §10.2.3: Retry-After as delay-seconds, a whole number. Rounded up so a client that
 * waits exactly that long is not refused again, and at least 1 on a refusal (0 invites an
 * immediate retry).
 */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
