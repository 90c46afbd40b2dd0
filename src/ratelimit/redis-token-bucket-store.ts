import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { runScript } from "./redis-rate-limit-client.js";
import type { BucketPolicy, RateLimitDecision, TokenBucketStore } from "./token-bucket.js";
import {
  checkBucketPolicy,
  checkCost,
  checkLimitKey,
  checkLimitPrefix,
  DEFAULT_RATE_LIMIT_PREFIX,
  RateLimitUnavailableError,
} from "./token-bucket.js";

export interface RedisTokenBucketStoreOptions {
  /** From createRateLimitRedis; shared with the backoff adapter, owned by the caller. */
  readonly client: Redis;
  readonly prefix?: string;
}

/**
 * One take, atomic: Redis runs a script with no other command in between, so every node sharing
 * the Redis sees one bucket. The formulas are token-bucket-math.ts's, line for line.
 *
 * Time is Redis's own (`TIME`), not the caller's: every node then refills by one clock, and a node
 * whose clock is ahead cannot refill a bucket early for everyone (or a slow one starve it).
 * Redis 5+ replicates a script's effects, not the script, so reading TIME before a write is
 * allowed; `replicate_commands` asks for that on 3.2 and 4 and is a no-op later.
 *
 * The state is a hash {t: tokens, u: updated at (ms)} that expires when the bucket would be full:
 * an absent bucket is a full one, so idle buckets vanish without changing any answer.
 * ARGV: capacity, refill per second, cost. Reply: {allowed 0|1, remaining, retryAfterMs, resetMs}.
 */
const TAKE_SOURCE = `
if redis.replicate_commands then redis.replicate_commands() end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local eps, msEps = 1e-9, 1e-6
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens, updated = tonumber(held[1]), tonumber(held[2])
if tokens == nil or updated == nil then
  tokens, updated = capacity, now
elseif now > updated then
  tokens = math.min(capacity, tokens + ((now - updated) * rate) / 1000)
  updated = now
end
local function msUntil(have, target)
  if have + eps >= target then return 0 end
  return math.ceil(((target - have) * 1000) / rate - msEps)
end
if tokens + eps < cost then
  return {0, math.floor(tokens + eps), msUntil(tokens, cost), msUntil(tokens, capacity)}
end
tokens = math.max(0, tokens - cost)
local resetMs = msUntil(tokens, capacity)
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', updated)
redis.call('PEXPIRE', KEYS[1], math.max(1, resetMs))
return {1, math.floor(tokens + eps), 0, resetMs}
`;

const TAKE_SCRIPT = {
  source: TAKE_SOURCE,
  sha1: createHash("sha1").update(TAKE_SOURCE).digest("hex"),
};

export class RedisTokenBucketStore implements TokenBucketStore {
  readonly prefix: string;
  private readonly client: Redis;

  constructor(options: RedisTokenBucketStoreOptions) {
    this.client = options.client;
    this.prefix = options.prefix ?? DEFAULT_RATE_LIMIT_PREFIX;
    checkLimitPrefix(this.prefix);
  }

  async take(policy: BucketPolicy, key: string, cost: number): Promise<RateLimitDecision> {
    checkBucketPolicy(policy);
    checkLimitKey(key);
    checkCost(policy, cost);
    const reply = await runScript(this.client, TAKE_SCRIPT, `${this.prefix}rl:${key}`, [
      policy.capacity,
      // Full precision, so Lua refills by exactly the rate the memory adapter uses.
      policy.refillPerSecond.toPrecision(17),
      cost,
    ]);
    const [allowed, remaining, retryAfterMs, resetMs] = integersOf(reply, 4);
    return {
      allowed: allowed === 1,
      remaining,
      retryAfterMs,
      resetMs,
      limit: policy.capacity,
    };
  }
}

/** The script's reply, checked: four integers, or the store is not the one we expect. */
function integersOf(reply: unknown, n: 4): [number, number, number, number] {
  if (!Array.isArray(reply) || reply.length !== n || !reply.every(Number.isSafeInteger)) {
    throw new RateLimitUnavailableError("unexpected reply");
  }
  return reply as [number, number, number, number];
}
