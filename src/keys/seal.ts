import { zeroize } from "../crypto/secret.js";
import { combineShares, splitSecret } from "../crypto/shamir.js";
import { decodeShare, encodeShare, ShareFormatError } from "./unseal-share.js";

/** What `readyz`, `POST /v1/sys/unseal` and `payvault unseal` report. */
export interface SealStatus {
  readonly sealed: boolean;
  readonly threshold: number;
  readonly shares: number;
  /** Distinct valid shares submitted so far in this attempt. */
  readonly progress: number;
}

export type UnsealErrorCode =
  | "UNSEAL_SHARE_INVALID"
  | "UNSEAL_SHARE_FOREIGN"
  | "UNSEAL_SHARE_DUPLICATE"
  | "UNSEAL_FAILED"
  | "UNSEAL_LOCKED";

/** A refused share. The message names what is wrong, never the share. */
export class UnsealError extends Error {
  override readonly name = "UnsealError";
  constructor(
    readonly code: UnsealErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Failed submissions (malformed, foreign, duplicate, wrong combination) before the lockout. */
export const UNSEAL_MAX_FAILURES = 5;
export const UNSEAL_LOCKOUT_MS = 15 * 60_000;

export interface ShareSet {
  readonly setId: string;
  readonly threshold: number;
  readonly shares: number;
}

/** Whether N shares with threshold T is a split the vault makes: 2 <= T <= N <= 255. */
export function isValidShareSplit(shares: unknown, threshold: unknown): boolean {
  return (
    Number.isInteger(shares) &&
    Number.isInteger(threshold) &&
    (threshold as number) >= 2 &&
    (shares as number) >= (threshold as number) &&
    (shares as number) <= 255
  );
}

/**
 * Collects custodians' unseal shares in memory (never on disk) until the threshold is reached,
 * then combines them and hands the candidate key to `tryUnseal`, which checks it against the
 * stored check value. Every refused share counts toward a lockout: after UNSEAL_MAX_FAILURES
 * failures, submissions are refused for UNSEAL_LOCKOUT_MS (guessing shares is not free).
 */
export class ShareCollector {
  private readonly pending = new Map<number, Buffer>();
  private failures = 0;
  private lockedUntil = 0;

  constructor(
    private readonly set: ShareSet,
    private readonly tryUnseal: (candidate: Buffer) => boolean,
    private readonly now: () => number,
  ) {}

  /** Splits an unseal key into share texts, one per custodian (PCI DSS 3.6.1.2). */
  static split(
    setId: string,
    key: Buffer,
    options: { shares: number; threshold: number },
  ): string[] {
    const { shares, threshold } = options;
    if (!isValidShareSplit(shares, threshold)) {
      throw new RangeError("need 2 <= threshold <= shares <= 255");
    }
    return splitSecret(key, shares, threshold).map((share) => {
      try {
        return encodeShare({ kekSetId: setId, index: share.index, threshold, value: share.value });
      } finally {
        zeroize(share.value);
      }
    });
  }

  status(sealed: boolean): SealStatus {
    return {
      sealed,
      threshold: this.set.threshold,
      shares: this.set.shares,
      progress: sealed ? this.pending.size : 0,
    };
  }

  submit(text: string): SealStatus {
    const now = this.now();
    if (now < this.lockedUntil) {
      throw new UnsealError(
        "UNSEAL_LOCKED",
        "Too many refused unseal shares; try again later.",
        Math.ceil((this.lockedUntil - now) / 1000),
      );
    }
    let share: ReturnType<typeof decodeShare>;
    try {
      share = decodeShare(text);
    } catch (err) {
      if (!(err instanceof ShareFormatError)) throw err;
      throw this.refuse("UNSEAL_SHARE_INVALID", `The share is malformed: ${err.message}`);
    }
    if (share.kekSetId !== this.set.setId || share.threshold !== this.set.threshold) {
      zeroize(share.value);
      throw this.refuse(
        "UNSEAL_SHARE_FOREIGN",
        "The share belongs to another vault or an older set of shares.",
      );
    }
    if (this.pending.has(share.index)) {
      zeroize(share.value);
      throw this.refuse(
        "UNSEAL_SHARE_DUPLICATE",
        `Share number ${share.index} was already submitted.`,
      );
    }
    this.pending.set(share.index, share.value);
    if (this.pending.size < this.set.threshold) return this.status(true);
    let candidate: Buffer;
    try {
      candidate = combineShares([...this.pending].map(([index, value]) => ({ index, value })));
    } catch {
      // Shares of different lengths cannot come from one split.
      throw this.refuse(
        "UNSEAL_FAILED",
        "The submitted shares do not belong together; start again.",
      );
    } finally {
      this.reset();
    }
    try {
      if (this.tryUnseal(candidate)) {
        this.failures = 0;
        return this.status(false);
      }
    } finally {
      zeroize(candidate);
    }
    throw this.refuse(
      "UNSEAL_FAILED",
      "The submitted shares do not reconstruct the unseal key; start again with valid shares.",
    );
  }

  /** Forgets every pending share (zeroed). */
  reset(): void {
    for (const value of this.pending.values()) zeroize(value);
    this.pending.clear();
  }

  private refuse(code: UnsealErrorCode, message: string): UnsealError {
    this.failures += 1;
    if (this.failures >= UNSEAL_MAX_FAILURES) {
      this.failures = 0;
      this.lockedUntil = this.now() + UNSEAL_LOCKOUT_MS;
      this.reset();
    }
    return new UnsealError(code, message);
  }
}
