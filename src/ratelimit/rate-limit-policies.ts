import type { BucketPolicy } from "./token-bucket.js";
import { checkBucketPolicy } from "./token-bucket.js";

/** The route classes of issue 5 point 4; each route declares one. */
export const ROUTE_CLASSES = ["tokenize", "reveal", "auth"] as const;
export type RouteClass = (typeof ROUTE_CLASSES)[number];

/**
 * What a request gets when the shared store (Redis) cannot answer:
 * - `closed`: refused with 503; nothing runs unthrottled.
 * - `local`: this node's own memory buckets decide, with the same policy: the limit still holds
 *   per node (so at most nodes × limit across the cluster) until Redis is back.
 * - `open`: allowed unthrottled.
 * Every degraded answer is reported (onUnavailable) so the outage is logged. docs/rate-limits.md
 * gives the reasons for each default.
 */
export type UnavailableMode = "closed" | "local" | "open";

export interface RouteLimitPolicy extends BucketPolicy {
  readonly onUnavailable: UnavailableMode;
}

export type RateLimitPolicies = Readonly<Record<RouteClass, RouteLimitPolicy>>;

export type RateLimitPolicyOverrides = Partial<Record<RouteClass, Partial<RouteLimitPolicy>>>;

/**
 * Defaults per bucket (one bucket per API key, per tenant or per IP, and route class):
 * - tokenize: bursts of 100, 50 a second sustained: checkout traffic, and cheap to serve.
 * - reveal: bursts of 20, 2 a second (7 200 an hour): a full PAN leaves the vault on each one
 *   (PCI DSS v4.0.1 3.4.1), so a stolen key drains cards slowly and the alert has time to fire.
 * - auth: bursts of 10, then one every 6 s (10 a minute): guessing is slow even before the
 *   exponential backoff of failures (auth-backoff.ts) starts.
 */
export const DEFAULT_RATE_LIMIT_POLICIES: RateLimitPolicies = {
  tokenize: { capacity: 100, refillPerSecond: 50, onUnavailable: "local" },
  reveal: { capacity: 20, refillPerSecond: 2, onUnavailable: "local" },
  auth: { capacity: 10, refillPerSecond: 1 / 6, onUnavailable: "closed" },
};

const MODES: readonly UnavailableMode[] = ["closed", "local", "open"];

/** The defaults with the operator's overrides laid over them, each checked. */
export function resolveRateLimitPolicies(
  overrides: RateLimitPolicyOverrides = {},
): RateLimitPolicies {
  const resolve = (routeClass: RouteClass): RouteLimitPolicy => {
    const policy = { ...DEFAULT_RATE_LIMIT_POLICIES[routeClass], ...overrides[routeClass] };
    checkBucketPolicy(policy);
    if (!MODES.includes(policy.onUnavailable)) {
      throw new RangeError(`onUnavailable must be one of ${MODES.join(", ")}`);
    }
    return Object.freeze(policy);
  };
  return Object.freeze({
    tokenize: resolve("tokenize"),
    reveal: resolve("reveal"),
    auth: resolve("auth"),
  });
}
