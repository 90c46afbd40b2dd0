import type { RateLimitSettings } from "../config/rate-limit-config.js";
import type { Clock } from "../services/clock.js";
import type { AuthBackoff } from "./auth-backoff.js";
import { BackoffAuthThrottle } from "./auth-throttle.js";
import { MemoryAuthBackoff } from "./memory-auth-backoff.js";
import { MemoryTokenBucketStore } from "./memory-token-bucket-store.js";
import { RouteRateLimiter } from "./route-rate-limiter.js";
import type { TokenBucketStore } from "./token-bucket.js";

export interface RateLimits {
  /** The route classes' buckets; undefined when the limits are off. */
  readonly rateLimiter: RouteRateLimiter | undefined;
  /** The backoff of failed authentications; undefined when it is off. */
  readonly authThrottle: BackoffAuthThrottle | undefined;
  close(): Promise<void>;
}

/** How long start-up waits for the rate-limit Redis before serving degraded (never fails). */
const READY_WAIT_MS = 2_000;

/**
 * Opens the rate limits: Redis when a URL is configured (every node shares the buckets and the
 * backoff), else this process's memory. A Redis that is down does not stop the start: each route
 * class's outage mode answers until it is back (docs/rate-limits.md). The Redis client loads on
 * demand, so the embedded default never imports it.
 */
export async function openRateLimits(
  settings: RateLimitSettings,
  clock: Clock,
): Promise<RateLimits> {
  const policy = settings.backoff === undefined ? {} : { policy: settings.backoff };
  let store: TokenBucketStore;
  let backoff: AuthBackoff;
  let close: () => Promise<void> = async () => undefined;
  if (settings.redisUrl === undefined) {
    store = new MemoryTokenBucketStore({ clock });
    backoff = new MemoryAuthBackoff({ ...policy, clock });
  } else {
    const { createRateLimitRedis, whenRateLimitRedisReady } = await import(
      "./redis-rate-limit-client.js"
    );
    const { RedisTokenBucketStore } = await import("./redis-token-bucket-store.js");
    const { RedisAuthBackoff } = await import("./redis-auth-backoff.js");
    const client = createRateLimitRedis({ url: settings.redisUrl });
    await whenRateLimitRedisReady(client, READY_WAIT_MS).catch(() => undefined);
    const prefix = settings.redisPrefix === undefined ? {} : { prefix: settings.redisPrefix };
    store = new RedisTokenBucketStore({ client, ...prefix });
    backoff = new RedisAuthBackoff({ client, ...prefix, ...policy });
    close = async () => {
      await client.quit().catch(() => client.disconnect());
    };
  }
  return {
    rateLimiter:
      settings.policies === undefined
        ? undefined
        : new RouteRateLimiter({ store, policies: settings.policies, clock }),
    authThrottle:
      settings.backoff === undefined
        ? undefined
        : new BackoffAuthThrottle({
            backoff,
            fallback: new MemoryAuthBackoff({ ...policy, clock }),
            clock,
          }),
    close,
  };
}
