import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { redisFailureReason } from "../redis/failure-reason.js";
import type { AuthBackoff, BackoffPolicy, BackoffState } from "./auth-backoff.js";
import {
  checkBackoffPolicy,
  DEFAULT_BACKOFF_POLICY,
  longestBlock,
  MAX_BACKOFF_EXPONENT,
} from "./auth-backoff.js";
import { runScript, runScriptOnKeys } from "./redis-rate-limit-client.js";
import {
  checkLimitKey,
  checkLimitPrefix,
  DEFAULT_RATE_LIMIT_PREFIX,
  RateLimitUnavailableError,
} from "./token-bucket.js";

export interface RedisAuthBackoffOptions {
  /** From createRateLimitRedis; shared with the token buckets, owned by the caller. */
  readonly client: Redis;
  readonly prefix?: string;
  readonly policy?: BackoffPolicy;
}

const TIME_NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

/**
 * One failure, atomic: of concurrent failures on several nodes each counts once, and the block
 * grows from the count they agree on. Time is Redis's (`TIME`), as for the token buckets. The
 * hash {n: failures, b: blocked until (ms)} expires `forgetAfterMs` after its block ends.
 * ARGV: base, max, forget after, max exponent. Reply: {failures, delay}.
 */
const FAILURE_SOURCE = `
if redis.replicate_commands then redis.replicate_commands() end
${TIME_NOW}
local base, max, forget, maxExp = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = (tonumber(redis.call('HGET', KEYS[1], 'n')) or 0) + 1
local delay = math.min(base * 2 ^ math.min(n - 1, maxExp), max)
redis.call('HSET', KEYS[1], 'n', n, 'b', string.format('%.17g', now + delay))
redis.call('PEXPIRE', KEYS[1], delay + forget)
return {n, delay}
`;

/** Reply: {failures, retryAfterMs}; {0, 0} for a key with no failures remembered. */
const CHECK_SOURCE = `
${TIME_NOW}
local held = redis.call('HMGET', KEYS[1], 'n', 'b')
local n, blockedUntil = tonumber(held[1]), tonumber(held[2])
if n == nil or blockedUntil == nil then return {0, 0} end
return {n, math.max(0, blockedUntil - now)}
`;

/** CHECK_SOURCE over every key. Reply: {failures, retryAfterMs} per key, in order. */
const CHECK_ALL_SOURCE = `
${TIME_NOW}
local reply = {}
for i = 1, #KEYS do
  local held = redis.call('HMGET', KEYS[i], 'n', 'b')
  local n, blockedUntil = tonumber(held[1]), tonumber(held[2])
  if n == nil or blockedUntil == nil then n, blockedUntil = 0, now end
  table.insert(reply, n)
  table.insert(reply, math.max(0, blockedUntil - now))
end
return reply
`;

/**
 * FAILURE_SOURCE over every key, unless one is blocked now: then nothing is written.
 * ARGV as FAILURE_SOURCE. Reply: {counted 0|1, then failures and wait per key}.
 */
const FAILURE_UNLESS_BLOCKED_SOURCE = `
if redis.replicate_commands then redis.replicate_commands() end
${TIME_NOW}
local base, max, forget, maxExp = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local counts, blocked = {}, false
for i = 1, #KEYS do
  local held = redis.call('HMGET', KEYS[i], 'n', 'b')
  local n, blockedUntil = tonumber(held[1]) or 0, tonumber(held[2]) or 0
  counts[i] = {n, math.max(0, blockedUntil - now)}
  if blockedUntil > now then blocked = true end
end
local reply = {0}
if blocked then
  for i = 1, #KEYS do
    table.insert(reply, counts[i][1])
    table.insert(reply, counts[i][2])
  end
  return reply
end
reply[1] = 1
for i = 1, #KEYS do
  local n = counts[i][1] + 1
  local delay = math.min(base * 2 ^ math.min(n - 1, maxExp), max)
  redis.call('HSET', KEYS[i], 'n', n, 'b', string.format('%.17g', now + delay))
  redis.call('PEXPIRE', KEYS[i], delay + forget)
  table.insert(reply, n)
  table.insert(reply, delay)
end
return reply
`;

const scriptOf = (source: string) => ({
  source,
  sha1: createHash("sha1").update(source).digest("hex"),
});
const FAILURE_SCRIPT = scriptOf(FAILURE_SOURCE);
const CHECK_SCRIPT = scriptOf(CHECK_SOURCE);
const CHECK_ALL_SCRIPT = scriptOf(CHECK_ALL_SOURCE);
const FAILURE_UNLESS_BLOCKED_SCRIPT = scriptOf(FAILURE_UNLESS_BLOCKED_SOURCE);

/** The shared adapter: every vault node sees the same failure counts and blocks. */
export class RedisAuthBackoff implements AuthBackoff {
  readonly prefix: string;
  private readonly client: Redis;
  private readonly policy: BackoffPolicy;

  constructor(options: RedisAuthBackoffOptions) {
    this.client = options.client;
    this.prefix = options.prefix ?? DEFAULT_RATE_LIMIT_PREFIX;
    checkLimitPrefix(this.prefix);
    this.policy = options.policy ?? DEFAULT_BACKOFF_POLICY;
    checkBackoffPolicy(this.policy);
  }

  async failure(key: string): Promise<BackoffState> {
    const [failures, delay] = pairOf(
      await runScript(this.client, FAILURE_SCRIPT, this.nameOf(key), [
        this.policy.baseMs,
        this.policy.maxMs,
        this.policy.forgetAfterMs,
        MAX_BACKOFF_EXPONENT,
      ]),
    );
    return { blocked: true, failures, retryAfterMs: delay };
  }

  async success(key: string): Promise<void> {
    const name = this.nameOf(key);
    try {
      await this.client.del(name);
    } catch (err) {
      throw new RateLimitUnavailableError(redisFailureReason(err));
    }
  }

  async check(key: string): Promise<BackoffState> {
    const [failures, retryAfterMs] = pairOf(
      await runScript(this.client, CHECK_SCRIPT, this.nameOf(key), []),
    );
    return { blocked: retryAfterMs > 0, failures, retryAfterMs };
  }

  async checkAll(keys: readonly string[]): Promise<BackoffState> {
    const names = keys.map((key) => this.nameOf(key));
    const reply = await runScriptOnKeys(this.client, CHECK_ALL_SCRIPT, names, []);
    return longestBlock(statesOf(reply, 0, keys.length));
  }

  async failureUnlessBlocked(
    keys: readonly string[],
  ): Promise<BackoffState & { counted: boolean }> {
    const names = keys.map((key) => this.nameOf(key));
    const reply = await runScriptOnKeys(this.client, FAILURE_UNLESS_BLOCKED_SCRIPT, names, [
      this.policy.baseMs,
      this.policy.maxMs,
      this.policy.forgetAfterMs,
      MAX_BACKOFF_EXPONENT,
    ]);
    const counted = Array.isArray(reply) && reply[0] === 1;
    return { ...longestBlock(statesOf(reply, 1, keys.length)), counted };
  }

  private nameOf(key: string): string {
    checkLimitKey(key);
    return `${this.prefix}backoff:${key}`;
  }
}

function pairOf(reply: unknown): [number, number] {
  if (!Array.isArray(reply) || reply.length !== 2 || !reply.every(Number.isSafeInteger)) {
    throw new RateLimitUnavailableError("unexpected reply");
  }
  return reply as [number, number];
}

/** {failures, wait} pairs from `offset` of a script's reply, checked. */
function statesOf(reply: unknown, offset: number, n: number): BackoffState[] {
  if (!Array.isArray(reply) || reply.length !== offset + 2 * n) {
    throw new RateLimitUnavailableError("unexpected reply");
  }
  const states: BackoffState[] = [];
  for (let i = 0; i < n; i++) {
    const [failures, retryAfterMs] = pairOf(reply.slice(offset + 2 * i, offset + 2 * i + 2));
    states.push({ blocked: retryAfterMs > 0, failures, retryAfterMs });
  }
  return states;
}
