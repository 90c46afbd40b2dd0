import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { runScript, runScriptOnKeys } from "./redis-rate-limit-client.js";
import type {
  BucketPolicy,
  BucketTake,
  RateLimitDecision,
  TokenBucketStore,
} from "./token-bucket.js";
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

/**
 * The same take over several buckets at once (a request's API key, tenant and client IP): every
 * bucket is refilled and checked, and only if all of them hold `cost` tokens are they all
 * written. One script, so one round trip per request however many buckets it has.
 * ARGV: cost, then capacity and refill per second for each key. Reply: the four integers of
 * TAKE_SOURCE for each key, in order.
 */
const TAKE_ALL_SOURCE = `
if redis.replicate_commands then redis.replicate_commands() end
local cost = tonumber(ARGV[1])
local eps, msEps = 1e-9, 1e-6
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function msUntil(have, target, rate)
  if have + eps >= target then return 0 end
  return math.ceil(((target - have) * 1000) / rate - msEps)
end
local caps, rates, tokens, updated = {}, {}, {}, {}
local refused = false
for i = 1, #KEYS do
  local capacity, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local held = redis.call('HMGET', KEYS[i], 't', 'u')
  local t, u = tonumber(held[1]), tonumber(held[2])
  if t == nil or u == nil then
    t, u = capacity, now
  elseif now > u then
    t = math.min(capacity, t + ((now - u) * rate) / 1000)
    u = now
  end
  caps[i], rates[i], tokens[i], updated[i] = capacity, rate, t, u
  if t + eps < cost then refused = true end
end
local reply = {}
for i = 1, #KEYS do
  local t, capacity, rate = tokens[i], caps[i], rates[i]
  if refused then
    local allowed = 0
    if t + eps >= cost then allowed = 1 end
    local wait = 0
    if allowed == 0 then wait = msUntil(t, cost, rate) end
    table.insert(reply, allowed)
    table.insert(reply, math.floor(t + eps))
    table.insert(reply, wait)
    table.insert(reply, msUntil(t, capacity, rate))
  else
    t = math.max(0, t - cost)
    local resetMs = msUntil(t, capacity, rate)
    redis.call('HSET', KEYS[i], 't', string.format('%.17g', t), 'u', updated[i])
    redis.call('PEXPIRE', KEYS[i], math.max(1, resetMs))
    table.insert(reply, 1)
    table.insert(reply, math.floor(t + eps))
    table.insert(reply, 0)
    table.insert(reply, resetMs)
  end
end
return reply
`;

const TAKE_ALL_SCRIPT = {
  source: TAKE_ALL_SOURCE,
  sha1: createHash("sha1").update(TAKE_ALL_SOURCE).digest("hex"),
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

  async takeAll(takes: readonly BucketTake[], cost: number): Promise<RateLimitDecision[]> {
    const args: (string | number)[] = [cost];
    for (const { policy, key } of takes) {
      checkBucketPolicy(policy);
      checkLimitKey(key);
      checkCost(policy, cost);
      args.push(policy.capacity, policy.refillPerSecond.toPrecision(17));
    }
    const keys = takes.map(({ key }) => `${this.prefix}rl:${key}`);
    const reply = await runScriptOnKeys(this.client, TAKE_ALL_SCRIPT, keys, args);
    if (!Array.isArray(reply) || reply.length !== 4 * takes.length) {
      throw new RateLimitUnavailableError("unexpected reply");
    }
    return takes.map(({ policy }, i) => {
      const [allowed, remaining, retryAfterMs, resetMs] = integersOf(
        reply.slice(4 * i, 4 * i + 4),
        4,
      );
      return { allowed: allowed === 1, remaining, retryAfterMs, resetMs, limit: policy.capacity };
    });
  }
}

/** The script's reply, checked: four integers, or the store is not the one we expect. */
function integersOf(reply: unknown, n: 4): [number, number, number, number] {
  if (!Array.isArray(reply) || reply.length !== n || !reply.every(Number.isSafeInteger)) {
    throw new RateLimitUnavailableError("unexpected reply");
  }
  return reply as [number, number, number, number];
}
