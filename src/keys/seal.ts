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
  | "UNSEAL_LOCKED"
  | "REKEY_NOT_PENDING";

/** A refused share (or a rekey step with nothing to act on). The message never names the share. */
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

/**
 * Refusals that count toward the lockout before it starts: failed combinations (a threshold of
 * shares that does not open the seal), wrong checksums and duplicate shares. Malformed and
 * foreign shares are refused without counting (they cannot be a guess at this set's key).
 */
export const UNSEAL_MAX_FAILURES = 5;
export const UNSEAL_LOCKOUT_MS = 15 * 60_000;
/** The unseal key is 256 bits, so every share value of a set is exactly 32 bytes. */
export const UNSEAL_KEY_BYTES = 32;

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
 * Collects custodians' shares of one set in memory (never on disk) until the threshold is
 * reached, then combines them and hands the candidate key to the caller's `open`, which checks
 * it against the stored check value (PCI DSS 3.6.1.2). Used for unsealing and for confirming a
 * custodian rekey.
 *
 * Lockout: UNSEAL_MAX_FAILURES counted refusals lock submissions for UNSEAL_LOCKOUT_MS (guessing
 * is not free). A malformed or foreign share is refused without counting and leaves the other
 * custodians' pending shares in place, so junk cannot undo honest progress; a combination that
 * fails forgets every pending share (which one was wrong cannot be told).
 */
export class ShareCollector {
  private readonly pending = new Map<number, Buffer>();
  private failures = 0;
  private lockedUntil = 0;

  constructor(
    readonly set: ShareSet,
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

  /** Distinct valid shares pending in this attempt. */
  get progress(): number {
    return this.pending.size;
  }

  status(sealed: boolean): SealStatus {
    return {
      sealed,
      threshold: this.set.threshold,
      shares: this.set.shares,
      progress: sealed ? this.pending.size : 0,
    };
  }

  /**
   * Takes one share. Returns false while the threshold is not reached, true when the combined
   * key opened (`open` returned true). A combination that does not open is refused with
   * UNSEAL_FAILED. If `open` throws (the key was right but a later step failed), the error
   * passes through uncounted and the custodians submit again.
   */
  submit(text: string, open: (candidate: Buffer) => boolean): boolean {
    const candidate = this.collect(text);
    if (candidate === undefined) return false;
    let opened: boolean;
    try {
      opened = open(candidate);
    } finally {
      zeroize(candidate);
    }
    return this.settle(opened);
  }

  /** `submit` with an asynchronous `open` (confirming a rekey writes the KEK file). */
  async submitAsync(text: string, open: (candidate: Buffer) => Promise<boolean>): Promise<boolean> {
    const candidate = this.collect(text);
    if (candidate === undefined) return false;
    let opened: boolean;
    try {
      opened = await open(candidate);
    } finally {
      zeroize(candidate);
    }
    return this.settle(opened);
  }

  /** Forgets every pending share (zeroed). */
  reset(): void {
    for (const value of this.pending.values()) zeroize(value);
    this.pending.clear();
  }

  /** The combined candidate once the threshold is reached (pending shares zeroed and cleared). */
  private collect(text: string): Buffer | undefined {
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
      // Not counted, whatever the reason (a wrong checksum included): anyone can send junk, and
      // counting it would let anyone who reaches the route keep a sealed vault locked. What
      // counts needs a share of this set: a duplicate, or a combination that does not open.
      throw new UnsealError("UNSEAL_SHARE_INVALID", `The share is malformed: ${err.message}`);
    }
    if (share.kekSetId !== this.set.setId || share.threshold !== this.set.threshold) {
      zeroize(share.value);
      throw new UnsealError(
        "UNSEAL_SHARE_FOREIGN",
        "The share belongs to another vault or another set of shares.",
      );
    }
    if (share.value.length !== UNSEAL_KEY_BYTES || share.index > this.set.shares) {
      zeroize(share.value);
      throw new UnsealError(
        "UNSEAL_SHARE_INVALID",
        `The share is malformed: it is not one of the ${this.set.shares} shares of a ${UNSEAL_KEY_BYTES}-byte key.`,
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
    if (this.pending.size < this.set.threshold) return undefined;
    const shares = [...this.pending].map(([index, value]) => ({ index, value }));
    this.pending.clear();
    try {
      return combineShares(shares);
    } catch {
      throw this.refuse(
        "UNSEAL_FAILED",
        "The submitted shares do not belong together; start again.",
      );
    } finally {
      for (const { value } of shares) zeroize(value);
    }
  }

  private settle(opened: boolean): boolean {
    if (!opened) {
      throw this.refuse(
        "UNSEAL_FAILED",
        "The submitted shares do not reconstruct the unseal key; start again with valid shares.",
      );
    }
    this.failures = 0;
    return true;
  }

  private refuse(code: UnsealErrorCode, message: string): UnsealError {
    this.failures += 1;
    if (this.failures >= UNSEAL_MAX_FAILURES) {
      this.failures = 0;
      this.lockedUntil = this.now() + UNSEAL_LOCKOUT_MS;
    }
    return new UnsealError(code, message);
  }
}
