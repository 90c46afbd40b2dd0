import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import type {
  BucketPolicy,
  BucketTake,
  RateLimitDecision,
  TokenBucketStore,
} from "./token-bucket.js";
import { checkBucketPolicy, checkCost, checkLimitKey } from "./token-bucket.js";
import type { BucketState } from "./token-bucket-math.js";
import { refill, TOKEN_EPSILON, takeTokens } from "./token-bucket-math.js";

export interface MemoryTokenBucketStoreOptions {
  /** Refill is read from this clock, so tests move time instead of sleeping. */
  readonly clock?: Clock;
  /** At most this many buckets are held (default 100 000). */
  readonly maxBuckets?: number;
}

interface HeldBucket {
  readonly state: BucketState;
  readonly policy: BucketPolicy;
}

export const DEFAULT_MAX_BUCKETS = 100_000;
/** How many of the least recently used buckets a full store looks at for one that refilled. */
const EVICTION_SCAN = 32;

/**
 * The embedded default: buckets in a Map of this process, refilled lazily when read. The Map is
 * kept in least-recently-used order (a touched bucket moves to the end). At the bound, a new
 * bucket first evicts full buckets among the oldest few (forgetting a full bucket changes no
 * answer); only if none is full does it evict the least recently used one, which hands that key
 * a fresh bucket early. Such forced evictions are counted, so an operator can see the bound is
 * too small or the vault is being flooded with distinct keys. Single-threaded, so every take is
 * atomic.
 */
export class MemoryTokenBucketStore implements TokenBucketStore {
  private readonly buckets = new Map<string, HeldBucket>();
  private readonly clock: Clock;
  private readonly maxBuckets: number;
  private forced = 0;

  constructor(options: MemoryTokenBucketStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    if (!Number.isSafeInteger(this.maxBuckets) || this.maxBuckets < 1) {
      throw new RangeError("maxBuckets must be a whole number, at least 1");
    }
  }

  async take(policy: BucketPolicy, key: string, cost: number): Promise<RateLimitDecision> {
    checkBucketPolicy(policy);
    checkLimitKey(key);
    checkCost(policy, cost);
    const now = this.clock.now().getTime();
    const held = this.buckets.get(key);
    const step = takeTokens(held?.state, policy, now, cost);
    // A refused take touches the bucket too: the client hammering it is its most recent user.
    if (held !== undefined) this.buckets.delete(key);
    if (step.next !== undefined) {
      if (held === undefined) this.makeRoom(now);
      this.buckets.set(key, { state: step.next, policy });
    } else if (held !== undefined) {
      this.buckets.set(key, held);
    }
    return step.decision;
  }

  async takeAll(takes: readonly BucketTake[], cost: number): Promise<RateLimitDecision[]> {
    for (const { policy, key } of takes) {
      checkBucketPolicy(policy);
      checkLimitKey(key);
      checkCost(policy, cost);
    }
    const now = this.clock.now().getTime();
    const steps = takes.map(({ policy, key }) =>
      takeTokens(this.buckets.get(key)?.state, policy, now, cost),
    );
    // All or none: one refusal leaves every bucket as it was (refilling keeps the same answer).
    if (steps.some((step) => step.next === undefined)) return steps.map((step) => step.decision);
    takes.forEach(({ policy, key }, i) => {
      const next = (steps[i] as (typeof steps)[number]).next as BucketState;
      if (!this.buckets.delete(key)) this.makeRoom(now);
      this.buckets.set(key, { state: next, policy });
    });
    return steps.map((step) => step.decision);
  }

  /** Buckets held now (full ones included until evicted). */
  get size(): number {
    return this.buckets.size;
  }

  /** Buckets evicted before they had refilled: each gave its key a full bucket early. */
  get forcedEvictions(): number {
    return this.forced;
  }

  private makeRoom(now: number): void {
    if (this.buckets.size < this.maxBuckets) return;
    let scanned = 0;
    for (const [key, held] of this.buckets) {
      if (scanned++ >= EVICTION_SCAN) break;
      const { tokens } = refill(held.state, held.policy, now);
      if (tokens + TOKEN_EPSILON >= held.policy.capacity) this.buckets.delete(key);
    }
    if (this.buckets.size < this.maxBuckets) return;
    const oldest = this.buckets.keys().next();
    if (oldest.done === true) return;
    this.buckets.delete(oldest.value);
    this.forced += 1;
  }
}
