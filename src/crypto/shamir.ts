/**
 * Shamir secret sharing over GF(2^8) (Shamir, "How to Share a Secret", CACM 1979), byte by byte:
 * the sealed mode splits the unseal key so that `threshold` of `shares` custodians are needed to
 * rebuild it (PCI DSS v4.0.1 3.6.1.2: split knowledge and dual control). Each share is as long as
 * the secret and any `threshold - 1` of them reveal nothing about it: never "halves of a key",
 * which would hand each custodian half of the key bits.
 *
 * Written by hand for payvault, with no code taken from elsewhere: no small, maintained library
 * offers it together with the share text format custodians handle (src/keys/unseal-share.ts),
 * and the algorithm is short enough to review in full.
 *
 * For each byte position j of the secret, a fresh polynomial of degree threshold - 1 is drawn:
 * p_j(x) = secret[j] + a_1·x + … + a_{t-1}·x^{t-1}, with a_1..a_{t-1} uniformly random bytes
 * (zero included: uniform coefficients are what makes t - 1 shares independent of the secret).
 * Share i (i = 1..shares) holds p_j(i) for every j. Combining interpolates at x = 0 (Lagrange).
 *
 * Combining fewer than `threshold` shares does not fail: it silently returns a wrong value.
 * That is inherent in the scheme, so the caller checks the result against a stored key check
 * value before trusting it.
 */
import { gfEvalPolynomial, gfInverse, gfMul } from "./gf256.js";
import { randomBytes } from "./random.js";
import { zeroize } from "./secret.js";

/** Share x-coordinates are 1..255: a nonzero byte (x = 0 would be the secret itself). */
export const MAX_SHARES = 255;
/** Fewer than two shares would be the key itself, not split knowledge. */
export const MIN_THRESHOLD = 2;

export interface SecretShare {
  /** The x-coordinate, 1..255. Public: it says which custodian holds the share. */
  readonly index: number;
  /** p(index) for every byte of the secret: as long as the secret, and as secret. */
  readonly value: Buffer;
}

/**
 * Splits `secret` into `shares` shares (indices 1..shares), any `threshold` of which rebuild it.
 * `random` supplies `threshold - 1` coefficient bytes per secret byte, in byte order (injectable
 * for deterministic tests; the default is the OS CSPRNG). Coefficients are zeroized after use.
 * The caller owns the returned share values and zeroizes them once handed out.
 */
export function splitSecret(
  secret: Uint8Array,
  shares: number,
  threshold: number,
  random: (n: number) => Uint8Array = randomBytes,
): SecretShare[] {
  if (secret.length === 0) {
    throw new RangeError("secret to split must not be empty");
  }
  if (
    !Number.isInteger(shares) ||
    !Number.isInteger(threshold) ||
    threshold < MIN_THRESHOLD ||
    threshold > shares ||
    shares > MAX_SHARES
  ) {
    throw new RangeError(`need ${MIN_THRESHOLD} <= threshold <= shares <= ${MAX_SHARES}`);
  }
  const result: SecretShare[] = Array.from({ length: shares }, (_, i) => ({
    index: i + 1,
    value: Buffer.alloc(secret.length),
  }));
  // coefficients[0] is the secret byte, coefficients[1..] the random ones.
  const coefficients = Buffer.alloc(threshold);
  try {
    for (let j = 0; j < secret.length; j++) {
      const drawn = random(threshold - 1);
      try {
        if (drawn.length !== threshold - 1) {
          throw new RangeError("random source returned the wrong number of bytes");
        }
        coefficients[0] = secret[j] ?? 0;
        coefficients.set(drawn, 1);
      } finally {
        zeroize(drawn);
      }
      for (const share of result) {
        share.value[j] = gfEvalPolynomial(coefficients, share.index);
      }
    }
  } catch (err) {
    for (const share of result) zeroize(share.value);
    throw err;
  } finally {
    zeroize(coefficients);
  }
  return result;
}

/**
 * Rebuilds the secret from shares by Lagrange interpolation at x = 0:
 * secret = Σ_i y_i · Π_{m≠i} x_m / (x_m − x_i), with subtraction being XOR in GF(2^8).
 * The basis weights depend only on the (public) indices; the share bytes only ever go through
 * the constant-time `gfMul`.
 *
 * Throws a RangeError for fewer than two shares, an index outside 1..255, a repeated index, or
 * values of different (or zero) lengths. Too few shares yield a wrong secret without an error
 * (see the file comment): check the result against a key check value.
 */
export function combineShares(shares: readonly { index: number; value: Uint8Array }[]): Buffer {
  if (shares.length < MIN_THRESHOLD) {
    throw new RangeError(`need at least ${MIN_THRESHOLD} shares to combine`);
  }
  const length = shares[0]?.value.length ?? 0;
  if (length === 0) {
    throw new RangeError("share values must not be empty");
  }
  const seen = new Set<number>();
  for (const { index, value } of shares) {
    if (!Number.isInteger(index) || index < 1 || index > MAX_SHARES) {
      throw new RangeError(`share index must be an integer from 1 to ${MAX_SHARES}`);
    }
    if (seen.has(index)) {
      throw new RangeError(`share index ${index} appears more than once`);
    }
    seen.add(index);
    if (value.length !== length) {
      throw new RangeError("share values differ in length");
    }
  }
  const weights = shares.map(({ index: xi }) => {
    let numerator = 1;
    let denominator = 1;
    for (const { index: xm } of shares) {
      if (xm !== xi) {
        numerator = gfMul(numerator, xm);
        denominator = gfMul(denominator, xm ^ xi);
      }
    }
    // Distinct nonzero indices: the denominator is nonzero, so its inverse exists.
    return gfMul(numerator, gfInverse(denominator));
  });
  const secret = Buffer.alloc(length);
  for (let j = 0; j < length; j++) {
    let byte = 0;
    for (let i = 0; i < shares.length; i++) {
      byte ^= gfMul(weights[i] ?? 0, shares[i]?.value[j] ?? 0);
    }
    secret[j] = byte;
  }
  return secret;
}
