/**
 * The AuthBackoff port: failed authentications back off exponentially per client IP and per
 * principal (issue 5 point 4). After n consecutive failures under a key, the key is blocked for
 * min(base × 2^(n−1), max); a success clears it. The count is forgotten `forgetAfterMs` after the
 * block of the last failure ends, so a user who mistyped last week starts again at `base`.
 *
 * This slows guessing (OWASP ASVS V2.2.1, NIST SP 800-63B §5.2.2 "rate limiting") without the
 * denial of service of a hard lockout; the admin-user lockout of PCI DSS v4.0.1 8.3.4 (10 attempts,
 * 30 minutes) is a separate rule on the user record.
 *
 * The caller calls `check` before verifying a credential and refuses a blocked key with 429 and
 * Retry-After, without verifying; it calls `failure` or `success` after verifying.
 */
export interface AuthBackoff {
  /** Records one more failure and blocks the key for its delay, from now. */
  failure(key: string): Promise<BackoffState>;
  /** Clears the key: the next failure waits `base` again. */
  success(key: string): Promise<void>;
  /** Whether the key is blocked now, and for how long. Changes nothing. */
  check(key: string): Promise<BackoffState>;
  /** `check` over several keys at once (one Redis round trip): the longest block among them. */
  checkAll(keys: readonly string[]): Promise<BackoffState>;
  /**
   * One more failure under every key, unless one of them is blocked now: then nothing is counted
   * and the answer is that block (`counted: false`), so an attempt made while blocked neither
   * passes nor extends the wait. One Redis round trip.
   */
  failureUnlessBlocked(keys: readonly string[]): Promise<BackoffState & { counted: boolean }>;
}

/** The longest of several states (the one a client must wait out). */
export function longestBlock(states: readonly BackoffState[]): BackoffState {
  let longest: BackoffState = { blocked: false, failures: 0, retryAfterMs: 0 };
  for (const state of states) {
    if (
      state.retryAfterMs > longest.retryAfterMs ||
      (state.retryAfterMs === longest.retryAfterMs && state.failures > longest.failures)
    )
      longest = state;
  }
  return longest;
}

export interface BackoffState {
  readonly blocked: boolean;
  /** Consecutive failures remembered under the key. */
  readonly failures: number;
  /** How long until the key may try again (ms, rounded up); 0 when not blocked. */
  readonly retryAfterMs: number;
}

export interface BackoffPolicy {
  /** The block after the first failure, in ms (default 1 s). */
  readonly baseMs: number;
  /** The longest block, in ms (default 15 min). */
  readonly maxMs: number;
  /** The count is forgotten this long after the last block ends (default 24 h). */
  readonly forgetAfterMs: number;
}

export const DEFAULT_BACKOFF_POLICY: BackoffPolicy = {
  baseMs: 1_000,
  maxMs: 15 * 60_000,
  forgetAfterMs: 24 * 60 * 60_000,
};

/** 2^40 × 1 ms is 35 years: enough doublings that any sane max is reached first. */
export const MAX_BACKOFF_EXPONENT = 40;

/** The block after `failures` consecutive failures: min(base × 2^(failures−1), max). */
export function backoffDelayMs(failures: number, policy: BackoffPolicy): number {
  if (failures < 1) return 0;
  const exponent = Math.min(failures - 1, MAX_BACKOFF_EXPONENT);
  return Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
}

export function checkBackoffPolicy(policy: BackoffPolicy): void {
  const { baseMs, maxMs, forgetAfterMs } = policy;
  for (const ms of [baseMs, maxMs, forgetAfterMs]) {
    if (!Number.isSafeInteger(ms) || ms < 1) {
      throw new RangeError("backoff durations must be whole numbers of ms, at least 1");
    }
  }
  if (maxMs < baseMs) throw new RangeError("the longest backoff must be at least the first");
}
