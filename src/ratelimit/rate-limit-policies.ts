import type { BucketPolicy } from "./token-bucket.js";
import { checkBucketPolicy } from "./token-bucket.js";

/** The route classes of issue 5 point 4; each route declares one. */
export const ROUTE_CLASSES = ["tokenize", "reveal", "auth", "forward", "webhook"] as const;
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

/** The buckets a request takes from: its caller, the caller's tenant and its client address. */
export const LIMIT_SCOPES = ["principal", "tenant", "ip"] as const;
export type LimitScope = (typeof LIMIT_SCOPES)[number];

/**
 * A route class's limits. The policy itself (capacity, refill) is the bucket of one caller: one
 * API key or admin user. `perTenant` bounds all of a tenant's callers together, `perIp` one client
 * address (IPv6: one /64) whoever it authenticates as; public routes have only `perIp`.
 */
export interface RouteLimitPolicy extends BucketPolicy {
  readonly onUnavailable: UnavailableMode;
  readonly perTenant: BucketPolicy;
  readonly perIp: BucketPolicy;
}

export type RateLimitPolicies = Readonly<Record<RouteClass, RouteLimitPolicy>>;

export type RateLimitPolicyOverrides = Partial<Record<RouteClass, Partial<RouteLimitPolicy>>>;

/**
 * Defaults (docs/rate-limits.md, "Defaults", gives the reasoning). A limit here is a guard
 * against a runaway client or a stolen key, not capacity planning: the operator of a large
 * merchant raises it.
 * - tokenize: a merchant's checkout can send thousands of cards a second through one key, and a
 *   tokenization discloses nothing: 5 000/s per key (bursts of 10 000), 10 000/s per tenant.
 * - reveal: a full PAN leaves the vault on each one (PCI DSS v4.0.1 3.4.1, 3.5.1). 100/s per key
 *   covers a merchant that reveals once per authorization at peak, while a stolen key needs hours,
 *   not seconds, to drain a million cards, so the alert has time to fire.
 * - auth: bursts of 10, then one every 6 s per address or user (10 a minute): guessing is slow
 *   even before the exponential backoff of failures (auth-backoff.ts) starts.
 * - forward: each one sends a card to a processor; a checkout authorizes far less often than it
 *   tokenizes: 1 000/s per key, 2 000/s per tenant.
 * - webhook (public intake, per client address only): processors send from few addresses, in
 *   bursts after an outage, so the bucket is wide (5 000/s, bursts of 10 000); it bounds a flood
 *   of forged requests, which are refused anyway but cost an HMAC each.
 */
export const DEFAULT_RATE_LIMIT_POLICIES: RateLimitPolicies = {
  tokenize: {
    capacity: 10_000,
    refillPerSecond: 5_000,
    onUnavailable: "local",
    perTenant: { capacity: 20_000, refillPerSecond: 10_000 },
    perIp: { capacity: 10_000, refillPerSecond: 5_000 },
  },
  reveal: {
    capacity: 200,
    refillPerSecond: 100,
    onUnavailable: "local",
    perTenant: { capacity: 400, refillPerSecond: 200 },
    perIp: { capacity: 200, refillPerSecond: 100 },
  },
  auth: {
    capacity: 10,
    refillPerSecond: 1 / 6,
    onUnavailable: "closed",
    perTenant: { capacity: 100, refillPerSecond: 1 },
    perIp: { capacity: 10, refillPerSecond: 1 / 6 },
  },
  forward: {
    capacity: 2_000,
    refillPerSecond: 1_000,
    onUnavailable: "local",
    perTenant: { capacity: 4_000, refillPerSecond: 2_000 },
    perIp: { capacity: 2_000, refillPerSecond: 1_000 },
  },
  webhook: {
    capacity: 10_000,
    refillPerSecond: 5_000,
    onUnavailable: "local",
    perTenant: { capacity: 10_000, refillPerSecond: 5_000 },
    perIp: { capacity: 10_000, refillPerSecond: 5_000 },
  },
};

const MODES: readonly UnavailableMode[] = ["closed", "local", "open"];

/** The bucket policy of one scope of a class. */
export function scopePolicy(policy: RouteLimitPolicy, scope: LimitScope): BucketPolicy {
  switch (scope) {
    case "principal":
      return policy;
    case "tenant":
      return policy.perTenant;
    case "ip":
      return policy.perIp;
  }
}

/** The defaults with the operator's overrides laid over them, each checked. */
export function resolveRateLimitPolicies(
  overrides: RateLimitPolicyOverrides = {},
): RateLimitPolicies {
  const resolve = (routeClass: RouteClass): RouteLimitPolicy => {
    const policy = { ...DEFAULT_RATE_LIMIT_POLICIES[routeClass], ...overrides[routeClass] };
    for (const scope of LIMIT_SCOPES) checkBucketPolicy(scopePolicy(policy, scope));
    if (!MODES.includes(policy.onUnavailable)) {
      throw new RangeError(`onUnavailable must be one of ${MODES.join(", ")}`);
    }
    return Object.freeze({
      ...policy,
      perTenant: Object.freeze({ ...policy.perTenant }),
      perIp: Object.freeze({ ...policy.perIp }),
    });
  };
  return Object.freeze({
    tokenize: resolve("tokenize"),
    reveal: resolve("reveal"),
    auth: resolve("auth"),
    forward: resolve("forward"),
    webhook: resolve("webhook"),
  });
}

/**
 * Parses an operator's limit, `capacity:refillPerSecond[:mode]` (`2000:1000`, `20:0.5:closed`);
 * `withMode: false` refuses the mode (the tenant and address buckets share their class's mode).
 * Throws RangeError with the expected form.
 */
export function parseLimitSpec(
  spec: string,
  withMode: boolean,
): BucketPolicy & { readonly onUnavailable?: UnavailableMode } {
  const parts = spec.split(":");
  const [capacity, refill, mode] = parts;
  const number = /^\d+(\.\d+)?$/;
  const form = withMode
    ? "capacity:refillPerSecond[:closed|local|open]"
    : "capacity:refillPerSecond";
  if (
    parts.length > (withMode ? 3 : 2) ||
    capacity === undefined ||
    refill === undefined ||
    !/^\d+$/.test(capacity) ||
    !number.test(refill) ||
    (mode !== undefined && !MODES.includes(mode as UnavailableMode))
  ) {
    throw new RangeError(`expected ${form}`);
  }
  const policy = { capacity: Number(capacity), refillPerSecond: Number(refill) };
  checkBucketPolicy(policy);
  return mode === undefined ? policy : { ...policy, onUnavailable: mode as UnavailableMode };
}
