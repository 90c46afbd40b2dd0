import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import { MemoryTokenBucketStore } from "./memory-token-bucket-store.js";
import type {
  LimitScope,
  RateLimitPolicies,
  RouteClass,
  UnavailableMode,
} from "./rate-limit-policies.js";
import { DEFAULT_RATE_LIMIT_POLICIES, scopePolicy } from "./rate-limit-policies.js";
import type { RateLimitDecision, TokenBucketStore } from "./token-bucket.js";
import { RateLimitUnavailableError } from "./token-bucket.js";

/**
 * What the HTTP layer does with a request:
 * - `allowed`: serve it (with the RateLimit fields from `decision`);
 * - `limited`: 429 with Retry-After and the RateLimit fields;
 * - `unchecked`: serve it; the store is down and the class fails open;
 * - `unavailable`: 503; the store is down and the class fails closed.
 * `source` is `local` when this node's memory buckets decided because the store is down.
 */
export type RateLimitVerdict =
  | {
      readonly outcome: "allowed" | "limited";
      readonly decision: RateLimitDecision;
      readonly source: "store" | "local";
    }
  | { readonly outcome: "unchecked" }
  | { readonly outcome: "unavailable"; readonly reason: string };

/** One report of the store being down, for the log: never the key (it holds IPs and key ids). */
export interface RateLimitOutage {
  readonly routeClass: RouteClass;
  readonly mode: UnavailableMode;
  readonly reason: string;
  /** Degraded answers for this class since the last report, this one included. */
  readonly count: number;
}

/** One bucket of a request: which scope it bounds and its key (`key:<id>:tokenize`, …). */
export interface ScopedBucket {
  readonly scope: LimitScope;
  readonly key: string;
}

/**
 * A multi-bucket verdict: the decision and scope that bind, i.e. on a refusal the bucket that
 * makes the client wait longest, else the one with the fewest tokens left (ties: the first).
 */
export type ScopedVerdict =
  | {
      readonly outcome: "allowed" | "limited";
      readonly decision: RateLimitDecision;
      readonly scope: LimitScope;
      readonly source: "store" | "local";
    }
  | { readonly outcome: "unchecked" }
  | { readonly outcome: "unavailable"; readonly reason: string };

export interface RouteRateLimiterOptions {
  /** The shared store (Redis), or memory when the vault runs on one node. */
  readonly store: TokenBucketStore;
  readonly policies?: RateLimitPolicies;
  /** The buckets of the `local` mode; a memory store of its own by default. */
  readonly fallback?: TokenBucketStore;
  /** Told of degraded answers: the first at once, then at most once per interval per class. */
  readonly onUnavailable?: (outage: RateLimitOutage) => void;
  readonly reportIntervalMs?: number;
  readonly clock?: Clock;
}

export const DEFAULT_OUTAGE_REPORT_INTERVAL_MS = 10_000;

/**
 * The route classes' token buckets, with each class's answer for a store that is down. Only
 * RateLimitUnavailableError counts as down: a bad key or cost is the caller's bug and throws.
 */
export class RouteRateLimiter {
  readonly policies: RateLimitPolicies;
  private readonly store: TokenBucketStore;
  private readonly fallback: TokenBucketStore;
  private onUnavailable: (outage: RateLimitOutage) => void;
  private readonly reportIntervalMs: number;
  private readonly clock: Clock;
  private readonly outages = new Map<RouteClass, { reportedAt: number; count: number }>();

  constructor(options: RouteRateLimiterOptions) {
    this.store = options.store;
    this.policies = options.policies ?? DEFAULT_RATE_LIMIT_POLICIES;
    this.clock = options.clock ?? systemClock;
    this.fallback = options.fallback ?? new MemoryTokenBucketStore({ clock: this.clock });
    this.onUnavailable = options.onUnavailable ?? (() => undefined);
    this.reportIntervalMs = options.reportIntervalMs ?? DEFAULT_OUTAGE_REPORT_INTERVAL_MS;
  }

  async take(routeClass: RouteClass, key: string, cost = 1): Promise<RateLimitVerdict> {
    const policy = this.policies[routeClass];
    try {
      return verdictOf(await this.store.take(policy, key, cost), "store");
    } catch (err) {
      if (!(err instanceof RateLimitUnavailableError)) throw err;
      this.report(routeClass, policy.onUnavailable, err.reason);
      switch (policy.onUnavailable) {
        case "closed":
          return { outcome: "unavailable", reason: err.reason };
        case "open":
          return { outcome: "unchecked" };
        case "local":
          return verdictOf(await this.fallback.take(policy, key, cost), "local");
      }
    }
  }

  /**
   * Takes one token (or `cost`) from each of a request's buckets at once, or from none (the
   * store's takeAll: one Redis round trip), with the class's outage mode when the store is down.
   */
  async takeAll(
    routeClass: RouteClass,
    buckets: readonly ScopedBucket[],
    cost = 1,
  ): Promise<ScopedVerdict> {
    const policy = this.policies[routeClass];
    const takes = buckets.map(({ scope, key }) => ({ policy: scopePolicy(policy, scope), key }));
    let source: "store" | "local" = "store";
    let decisions: RateLimitDecision[];
    try {
      decisions = await this.store.takeAll(takes, cost);
    } catch (err) {
      if (!(err instanceof RateLimitUnavailableError)) throw err;
      this.report(routeClass, policy.onUnavailable, err.reason);
      if (policy.onUnavailable === "closed") return { outcome: "unavailable", reason: err.reason };
      if (policy.onUnavailable === "open") return { outcome: "unchecked" };
      source = "local";
      decisions = await this.fallback.takeAll(takes, cost);
    }
    return bindingVerdict(buckets, decisions, source);
  }

  /** Where degraded answers are reported from now on (the HTTP layer's logger). */
  reportOutagesTo(listener: (outage: RateLimitOutage) => void): void {
    this.onUnavailable = listener;
  }

  private report(routeClass: RouteClass, mode: UnavailableMode, reason: string): void {
    const now = this.clock.now().getTime();
    const outage = this.outages.get(routeClass) ?? { reportedAt: -Infinity, count: 0 };
    outage.count += 1;
    this.outages.set(routeClass, outage);
    if (now - outage.reportedAt < this.reportIntervalMs) return;
    this.onUnavailable({ routeClass, mode, reason, count: outage.count });
    outage.reportedAt = now;
    outage.count = 0;
  }
}

function verdictOf(decision: RateLimitDecision, source: "store" | "local"): RateLimitVerdict {
  return { outcome: decision.allowed ? "allowed" : "limited", decision, source };
}

function bindingVerdict(
  buckets: readonly ScopedBucket[],
  decisions: readonly RateLimitDecision[],
  source: "store" | "local",
): ScopedVerdict {
  let bind = 0;
  const allowed = decisions.every((d) => d.allowed);
  decisions.forEach((d, i) => {
    const best = decisions[bind] as RateLimitDecision;
    const tighter = allowed ? d.remaining < best.remaining : d.retryAfterMs > best.retryAfterMs;
    if (tighter) bind = i;
  });
  const decision = decisions[bind];
  const bucket = buckets[bind];
  if (decision === undefined || bucket === undefined) throw new RangeError("no buckets to take");
  return { outcome: allowed ? "allowed" : "limited", decision, scope: bucket.scope, source };
}
