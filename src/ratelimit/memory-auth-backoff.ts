import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import type { AuthBackoff, BackoffPolicy, BackoffState } from "./auth-backoff.js";
import {
  backoffDelayMs,
  checkBackoffPolicy,
  DEFAULT_BACKOFF_POLICY,
  longestBlock,
} from "./auth-backoff.js";
import { checkLimitKey } from "./token-bucket.js";

export interface MemoryAuthBackoffOptions {
  readonly policy?: BackoffPolicy;
  readonly clock?: Clock;
  /** At most this many keys are remembered (default 100 000). */
  readonly maxEntries?: number;
}

interface Failures {
  readonly count: number;
  readonly blockedUntil: number;
  readonly forgetAt: number;
}

export const DEFAULT_MAX_BACKOFF_ENTRIES = 100_000;

const CLEAR: BackoffState = { blocked: false, failures: 0, retryAfterMs: 0 };

/**
 * Failure counts in a Map of this process, in least-recently-failed order. At the bound, a new key
 * evicts the entry that failed longest ago (most likely no longer blocked); forced evictions of a
 * still-blocked key are counted. A flood of distinct keys large enough to evict a blocked one
 * needs as many client IPs, each blocked in turn by its own `ip:` key. Single-threaded, so each
 * call is atomic.
 */
export class MemoryAuthBackoff implements AuthBackoff {
  private readonly entries = new Map<string, Failures>();
  private readonly policy: BackoffPolicy;
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private forced = 0;

  constructor(options: MemoryAuthBackoffOptions = {}) {
    this.policy = options.policy ?? DEFAULT_BACKOFF_POLICY;
    checkBackoffPolicy(this.policy);
    this.clock = options.clock ?? systemClock;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_BACKOFF_ENTRIES;
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError("maxEntries must be a whole number, at least 1");
    }
  }

  async failure(key: string): Promise<BackoffState> {
    checkLimitKey(key);
    const now = this.clock.now().getTime();
    const count = (this.live(key, now)?.count ?? 0) + 1;
    const delay = backoffDelayMs(count, this.policy);
    this.entries.delete(key);
    this.makeRoom(now);
    this.entries.set(key, {
      count,
      blockedUntil: now + delay,
      forgetAt: now + delay + this.policy.forgetAfterMs,
    });
    return { blocked: true, failures: count, retryAfterMs: delay };
  }

  async success(key: string): Promise<void> {
    checkLimitKey(key);
    this.entries.delete(key);
  }

  async check(key: string): Promise<BackoffState> {
    checkLimitKey(key);
    const now = this.clock.now().getTime();
    const entry = this.live(key, now);
    if (entry === undefined) return CLEAR;
    const retryAfterMs = Math.max(0, entry.blockedUntil - now);
    return { blocked: retryAfterMs > 0, failures: entry.count, retryAfterMs };
  }

  async checkAll(keys: readonly string[]): Promise<BackoffState> {
    return longestBlock(await Promise.all(keys.map((key) => this.check(key))));
  }

  async failureUnlessBlocked(
    keys: readonly string[],
  ): Promise<BackoffState & { counted: boolean }> {
    const now = await this.checkAll(keys);
    if (now.blocked) return { ...now, counted: false };
    const after = longestBlock(await Promise.all(keys.map((key) => this.failure(key))));
    return { ...after, counted: true };
  }

  get size(): number {
    return this.entries.size;
  }

  /** Entries evicted while still blocked: each let its key try again early. */
  get forcedEvictions(): number {
    return this.forced;
  }

  private live(key: string, now: number): Failures | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || entry.forgetAt > now) return entry;
    this.entries.delete(key);
    return undefined;
  }

  private makeRoom(now: number): void {
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.entries().next();
      if (oldest.done === true) return;
      const [key, entry] = oldest.value;
      this.entries.delete(key);
      if (entry.blockedUntil > now) this.forced += 1;
    }
  }
}
