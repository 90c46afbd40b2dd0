import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { VaultError } from "../errors/registry.js";
import type { Logger } from "../log/logger.js";
import { BackoffAuthThrottle } from "../ratelimit/auth-throttle.js";
import { addressBucketOf } from "../ratelimit/client-address.js";
import { rateLimitHeaders } from "../ratelimit/rate-limit-headers.js";
import type { RouteClass } from "../ratelimit/rate-limit-policies.js";
import { scopePolicy } from "../ratelimit/rate-limit-policies.js";
import type {
  RateLimitOutage,
  RouteRateLimiter,
  ScopedBucket,
} from "../ratelimit/route-rate-limiter.js";
import type { Principal } from "../services/principal.js";
import type { HttpDeps } from "./context.js";

const CALLER_PREFIX: Readonly<Record<Principal["kind"], string>> = {
  api_key: "key",
  user: "user",
  capture_session: "session",
};

/**
 * The buckets of one request (docs/rate-limits.md): its caller (API key or admin user), the
 * caller's tenant and its client address (IPv6: its /64), each per route class. A public route
 * has no caller yet, so only its address counts.
 */
export function bucketsOf(
  routeClass: RouteClass,
  ip: string | undefined,
  principal: Principal | undefined,
): ScopedBucket[] {
  const buckets: ScopedBucket[] = [{ scope: "ip", key: `ip:${addressBucketOf(ip)}:${routeClass}` }];
  if (principal === undefined) return buckets;
  buckets.unshift(
    {
      scope: "principal",
      key: `${CALLER_PREFIX[principal.kind]}:${principal.keyId}:${routeClass}`,
    },
    { scope: "tenant", key: `tenant:${principal.tenantId}:${routeClass}` },
  );
  return buckets;
}

/**
 * Rate limits of the route classes (issue 5 point 4), after the auth hook so the caller is known.
 * Routes without a class cost nothing here. One store call per request (one Redis script over
 * every bucket), and its answer:
 * - allowed: served, with the RateLimit and RateLimit-Policy fields of the bucket nearest empty;
 * - limited: 429 RATE_LIMITED, Retry-After and the fields of the bucket that refused;
 * - the store down: the class's mode (`closed` → 503 RATE_LIMIT_UNAVAILABLE, `local` → this
 *   node's buckets, `open` → served unchecked), each degraded answer reported to the log.
 */
export function rateLimitHook(limiter: RouteRateLimiter) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const spec = request.routeOptions.config.route;
    const routeClass = spec?.rateClass;
    if (routeClass === undefined) return;
    const principal = spec?.access === "public" ? undefined : request.principal;
    const verdict = await limiter.takeAll(routeClass, bucketsOf(routeClass, request.ip, principal));
    switch (verdict.outcome) {
      case "unchecked":
        return;
      case "unavailable":
        throw new VaultError("RATE_LIMIT_UNAVAILABLE");
      case "allowed":
      case "limited": {
        const headers = rateLimitHeaders(
          `${routeClass}.${verdict.scope}`,
          scopePolicy(limiter.policies[routeClass], verdict.scope),
          verdict.decision,
        );
        if (verdict.outcome === "allowed") {
          reply.headers(headers);
          return;
        }
        throw new VaultError("RATE_LIMITED", { headers });
      }
    }
  };
}

/** Degraded answers and backoff outages go to the log: class, mode, reason, count; never a key. */
function logOutages(deps: HttpDeps, logger: Logger): void {
  deps.rateLimiter?.reportOutagesTo((outage: RateLimitOutage) =>
    logger.warn(
      {
        route_class: outage.routeClass,
        mode: outage.mode,
        reason: outage.reason,
        count: outage.count,
      },
      "rate limit store unavailable: answering degraded",
    ),
  );
  if (deps.authThrottle instanceof BackoffAuthThrottle) {
    deps.authThrottle.reportOutagesTo((reason, count) =>
      logger.warn({ reason, count }, "auth backoff store unavailable: this node's backoff applies"),
    );
  }
}

/** Registers the hook (after the auth hook) when the vault has limits; else nothing. */
export function registerRateLimits(app: FastifyInstance, deps: HttpDeps): void {
  logOutages(deps, deps.logger);
  if (deps.rateLimiter !== undefined) app.addHook("onRequest", rateLimitHook(deps.rateLimiter));
}
