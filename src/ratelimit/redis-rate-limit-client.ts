import { Redis } from "ioredis";
import { redisFailureReason } from "../redis/failure-reason.js";
import { RateLimitUnavailableError } from "./token-bucket.js";

export interface RateLimitRedisOptions {
  /** redis:// or rediss:// URL; it may carry credentials, so it never appears in an error. */
  readonly url: string;
  /** Bound on opening the connection at start and on each reconnect. */
  readonly connectTimeoutMs?: number;
  /**
   * Bound on each script. Every rate-limited request waits for it, so it is short: a hung Redis
   * costs each request this much, then the route class's `onUnavailable` mode applies.
   */
  readonly commandTimeoutMs?: number;
  /** Told every connection error the client sees (reason only), e.g. to log it. */
  readonly onError?: (reason: string) => void;
}

export const DEFAULT_RATE_LIMIT_CONNECT_TIMEOUT_MS = 1_000;
export const DEFAULT_RATE_LIMIT_COMMAND_TIMEOUT_MS = 250;
const MAX_RECONNECT_DELAY_MS = 2_000;

/**
 * A client for the Redis rate-limit adapters that fails fast instead of queueing: no offline
 * queue (a take while disconnected is refused at once), no retry of a script that was in flight
 * when the connection dropped (a retry could take tokens twice), a short command timeout, and
 * reconnection in the background. It does not wait for the connection: a vault whose Redis is
 * down starts, and each route class's `onUnavailable` mode decides what its requests get.
 * The caller owns the client and quits it at shutdown.
 */
export function createRateLimitRedis(options: RateLimitRedisOptions): Redis {
  const client = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_RATE_LIMIT_CONNECT_TIMEOUT_MS,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_RATE_LIMIT_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: (times) => Math.min(times * 100, MAX_RECONNECT_DELAY_MS),
  });
  // Without a listener ioredis prints every connection error to the console.
  client.on("error", (err: unknown) => options.onError?.(redisFailureReason(err)));
  client.connect().catch(() => undefined);
  return client;
}

/**
 * Resolves once the client is connected and ready, or fails with RateLimitUnavailableError after
 * `timeoutMs`: for a start-up or readiness check (the limiter itself never waits for it).
 */
export async function whenRateLimitRedisReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return;
  let timer: NodeJS.Timeout | undefined;
  let onReady: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve;
      client.once("ready", onReady);
      timer = setTimeout(() => reject(new RateLimitUnavailableError("not ready")), timeoutMs);
    });
  } finally {
    clearTimeout(timer);
    if (onReady !== undefined) client.off("ready", onReady);
  }
}

/**
 * Runs a Lua script by its SHA-1, loading it on NOSCRIPT (a restarted or failed-over Redis has
 * an empty script cache). Every failure becomes RateLimitUnavailableError with a short reason.
 */
export async function runScript(
  client: Redis,
  script: { readonly source: string; readonly sha1: string },
  key: string,
  args: readonly (string | number)[],
): Promise<unknown> {
  return runScriptOnKeys(client, script, [key], args);
}

/** runScript over several keys (a multi-bucket take or a check of several backoff keys). */
export async function runScriptOnKeys(
  client: Redis,
  script: { readonly source: string; readonly sha1: string },
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    try {
      return await client.evalsha(script.sha1, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return await client.eval(script.source, keys.length, ...keys, ...args);
    }
  } catch (err) {
    throw new RateLimitUnavailableError(redisFailureReason(err));
  }
}
