/**
 * Arithmetic in GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b),
 * FIPS 197 §4 — the field Shamir secret sharing (shamir.ts) works in.
 *
 * Written by hand for payvault (no code taken from elsewhere). Every operation runs the same
 * sequence of instructions whatever the operand values: no branch and no table lookup depends on
 * a byte, because the bytes multiplied here are shares of the unseal key (a log/exp table
 * lookup indexed by a secret byte leaks it through the cache). Masks stand in for branches:
 * `-(bit)` is 0 or all ones.
 *
 * Operands are bytes (0..255); bits above the lowest eight are ignored.
 */

/** Addition (and subtraction, the same thing in characteristic 2): bitwise XOR. */
export function gfAdd(a: number, b: number): number {
  return (a ^ b) & 0xff;
}

/**
 * Multiplication: shift-and-add over the eight bits of `b`, reducing by 0x11b after each
 * doubling ("xtime", FIPS 197 §4.2.1). Always eight rounds, no data-dependent branch.
 */
export function gfMul(a: number, b: number): number {
  let x = a & 0xff;
  let y = b & 0xff;
  let product = 0;
  for (let round = 0; round < 8; round++) {
    product ^= x & -(y & 1);
    // xtime: x·{02}; when bit 7 falls off, add the reduction polynomial's low byte 0x1b.
    x = ((x << 1) ^ (0x1b & -(x >> 7))) & 0xff;
    y >>= 1;
  }
  return product;
}

/**
 * Multiplicative inverse as a^254 (a^255 = 1 for every nonzero a), by a fixed
 * square-and-multiply chain, so the running time does not depend on `a` (unlike the extended
 * Euclidean algorithm). The inverse of 0 does not exist; like the AES S-box (FIPS 197 §5.1.1)
 * this returns 0 for it, and callers that divide make sure the divisor is nonzero.
 */
export function gfInverse(a: number): number {
  const a2 = gfMul(a, a);
  const a3 = gfMul(a2, a);
  const a6 = gfMul(a3, a3);
  const a7 = gfMul(a6, a);
  const a14 = gfMul(a7, a7);
  const a15 = gfMul(a14, a);
  const a30 = gfMul(a15, a15);
  const a60 = gfMul(a30, a30);
  const a120 = gfMul(a60, a60);
  const a127 = gfMul(a120, a7);
  // 254 = 2 · 127
  return gfMul(a127, a127);
}

/**
 * The polynomial c[0] + c[1]·x + … + c[k]·x^k at `x`, by Horner's rule. `coefficients` is in
 * ascending order (the constant term first, which is where Shamir keeps the secret byte).
 * The loop length depends only on the number of coefficients (the public threshold).
 */
export function gfEvalPolynomial(coefficients: Uint8Array, x: number): number {
  let value = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) {
    value = gfMul(value, x) ^ (coefficients[i] ?? 0);
  }
  return value;
}
