import type { BackoffPolicy } from "../ratelimit/auth-backoff.js";
import { checkBackoffPolicy, DEFAULT_BACKOFF_POLICY } from "../ratelimit/auth-backoff.js";
import type {
  RateLimitPolicies,
  RateLimitPolicyOverrides,
  RouteLimitPolicy,
} from "../ratelimit/rate-limit-policies.js";
import {
  parseLimitSpec,
  ROUTE_CLASSES,
  resolveRateLimitPolicies,
} from "../ratelimit/rate-limit-policies.js";

/** Rate limits and the backoff of failed authentications (docs/rate-limits.md). */
export interface RateLimitSettings {
  /** The route classes' buckets; undefined when PAYVAULT_RATE_LIMITS=off (benchmarks only). */
  readonly policies: RateLimitPolicies | undefined;
  /** The Redis of the buckets and the backoff: PAYVAULT_RATE_LIMIT_REDIS_URL, else REDIS_URL's. */
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key (several vaults can share one Redis); `payvault:` by default. */
  readonly redisPrefix: string | undefined;
  /** The backoff of failed authentications; undefined when PAYVAULT_AUTH_BACKOFF=off (tests). */
  readonly backoff: BackoffPolicy | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * PAYVAULT_RATE_LIMIT_<CLASS>=capacity:refillPerSecond[:closed|local|open] sets the bucket of one
 * caller (API key or admin user) and the class's outage mode; PAYVAULT_RATE_LIMIT_<CLASS>_TENANT
 * and _IP set the tenant's and the client address's buckets (capacity:refillPerSecond).
 * PAYVAULT_RATE_LIMITS=off turns the buckets off and PAYVAULT_AUTH_BACKOFF=off the backoff of
 * failed authentications (benchmarks and test suites that fail on purpose from one address).
 */
export function rateLimitSettings(
  env: Env,
  redisUrl: string | undefined,
  configError: (message: string) => Error,
): RateLimitSettings {
  const limitsOn = onOff(env, "PAYVAULT_RATE_LIMITS", configError);
  const backoffOn = onOff(env, "PAYVAULT_AUTH_BACKOFF", configError);
  const spec = (name: string, withMode: boolean) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return undefined;
    try {
      return parseLimitSpec(raw, withMode);
    } catch (err) {
      throw configError(`${name}: ${(err as Error).message}`);
    }
  };
  const overrides: RateLimitPolicyOverrides = {};
  for (const routeClass of ROUTE_CLASSES) {
    const name = `PAYVAULT_RATE_LIMIT_${routeClass.toUpperCase()}`;
    const principal = spec(name, true);
    const perTenant = spec(`${name}_TENANT`, false);
    const perIp = spec(`${name}_IP`, false);
    const override: Partial<{ -readonly [K in keyof RouteLimitPolicy]: RouteLimitPolicy[K] }> = {
      ...principal,
    };
    if (perTenant !== undefined) override.perTenant = perTenant;
    if (perIp !== undefined) override.perIp = perIp;
    overrides[routeClass] = override;
  }
  const backoff: BackoffPolicy = {
    ...DEFAULT_BACKOFF_POLICY,
    ...milliseconds(env, "PAYVAULT_AUTH_BACKOFF_BASE_MS", "baseMs", configError),
    ...milliseconds(env, "PAYVAULT_AUTH_BACKOFF_MAX_MS", "maxMs", configError),
  };
  try {
    checkBackoffPolicy(backoff);
  } catch (err) {
    throw configError(`PAYVAULT_AUTH_BACKOFF_*: ${(err as Error).message}`);
  }
  return {
    policies: limitsOn ? resolveRateLimitPolicies(overrides) : undefined,
    redisUrl,
    redisPrefix: prefix(env, configError),
    backoff: backoffOn ? backoff : undefined,
  };
}

function milliseconds(
  env: Env,
  name: string,
  field: "baseMs" | "maxMs",
  configError: (message: string) => Error,
): Partial<BackoffPolicy> {
  const raw = env[name];
  if (raw === undefined || raw === "") return {};
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < 1) {
    throw configError(`${name} must be a whole number of ms, at least 1`);
  }
  return { [field]: Number(raw) };
}

function onOff(env: Env, name: string, configError: (message: string) => Error): boolean {
  const value = env[name] || "on";
  if (value !== "on" && value !== "off") throw configError(`${name} must be on or off`);
  return value === "on";
}

function prefix(env: Env, configError: (message: string) => Error): string | undefined {
  const value = env.PAYVAULT_RATE_LIMIT_PREFIX || undefined;
  if (value !== undefined && !/^[\x21-\x7e]{1,64}$/.test(value)) {
    throw configError("PAYVAULT_RATE_LIMIT_PREFIX must be 1..64 printable ASCII characters");
  }
  return value;
}
