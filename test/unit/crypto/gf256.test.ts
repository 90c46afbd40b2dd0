import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gfAdd, gfEvalPolynomial, gfInverse, gfMul } from "../../../src/crypto/gf256.js";
import { hex, loadVectors } from "./load-vectors.js";

interface Fips197File {
  source: string;
  multiplication: { section: string; a: string; b: string; product: string }[];
  inverse: { a: string; inverse: string }[];
  sboxExample: { section: string; input: string; output: string };
  sbox: string[];
}

const fips197 = loadVectors<Fips197File>("gf256-fips197.json");
const byteOf = (h: string): number => hex(h)[0] ?? Number.NaN;
const sbox = hex(fips197.sbox.join(""));
const ALL_BYTES = Array.from({ length: 256 }, (_, i) => i);
const byteArb = fc.integer({ min: 0, max: 255 });

/**
 * Reference product computed another way: carry-less multiplication into a 15-bit polynomial,
 * then long division by 0x11b. Slow and branchy, which is fine here.
 */
function referenceMul(a: number, b: number): number {
  let wide = 0;
  for (let bit = 0; bit < 8; bit++) {
    if ((b >> bit) & 1) wide ^= a << bit;
  }
  for (let bit = 14; bit >= 8; bit--) {
    if ((wide >> bit) & 1) wide ^= 0x11b << (bit - 8);
  }
  return wide;
}

/** The SubBytes affine transformation over GF(2) (FIPS 197 §5.1.1, equation 5.1). */
function affine(b: number): number {
  const rotl = (x: number, n: number) => ((x << n) | (x >> (8 - n))) & 0xff;
  return b ^ rotl(b, 1) ^ rotl(b, 2) ^ rotl(b, 3) ^ rotl(b, 4) ^ 0x63;
}

describe("GF(2^8): FIPS 197 published values", () => {
  it("carries its source, the six multiplication examples and a 256-entry S-box", () => {
    expect(fips197.source).toMatch(/FIPS 197/);
    expect(fips197.multiplication).toHaveLength(6);
    expect(sbox).toHaveLength(256);
  });

  it.each(fips197.multiplication)("§$section: {$a} • {$b} = {$product}", ({ a, b, product }) => {
    expect(gfMul(byteOf(a), byteOf(b))).toBe(byteOf(product));
    expect(gfMul(byteOf(b), byteOf(a))).toBe(byteOf(product));
  });

  it.each(fips197.inverse)("{$a}^-1 = {$inverse}", ({ a, inverse }) => {
    expect(gfInverse(byteOf(a))).toBe(byteOf(inverse));
    expect(gfMul(byteOf(a), byteOf(inverse))).toBe(1);
  });

  it("§5.1.1: SubBytes({53}) = {ed} through the inverse", () => {
    const { input, output } = fips197.sboxExample;
    expect(affine(gfInverse(byteOf(input)))).toBe(byteOf(output));
  });

  it("Figure 7: affine(inverse(b)) is the S-box entry for every byte (inverse(0) = 0)", () => {
    for (const b of ALL_BYTES) {
      expect(affine(gfInverse(b)), `S-box[${b}]`).toBe(sbox[b]);
    }
  });
});

describe("gfMul", () => {
  it("equals carry-less multiplication reduced by 0x11b, for all 65536 pairs", () => {
    let mismatches = 0;
    for (const a of ALL_BYTES) {
      for (const b of ALL_BYTES) {
        if (gfMul(a, b) !== referenceMul(a, b)) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
    // The reference itself is not vacuous.
    expect(referenceMul(0x57, 0x83)).toBe(0xc1);
  });

  it("is commutative, with identity 1 and absorbing 0, for all pairs", () => {
    for (const a of ALL_BYTES) {
      expect(gfMul(a, 1)).toBe(a);
      expect(gfMul(a, 0)).toBe(0);
      for (const b of ALL_BYTES) {
        if (gfMul(a, b) !== gfMul(b, a)) expect.fail(`${a}•${b} != ${b}•${a}`);
      }
    }
  });

  it("is associative and distributes over addition", () => {
    fc.assert(
      fc.property(byteArb, byteArb, byteArb, (a, b, c) => {
        expect(gfMul(gfMul(a, b), c)).toBe(gfMul(a, gfMul(b, c)));
        expect(gfMul(a, gfAdd(b, c))).toBe(gfAdd(gfMul(a, b), gfMul(a, c)));
      }),
      { numRuns: 20_000 },
    );
  });

  it("has no zero divisors and every row is a permutation (for a != 0)", () => {
    for (const a of ALL_BYTES.slice(1)) {
      expect(new Set(ALL_BYTES.map((b) => gfMul(a, b))).size).toBe(256);
    }
  });

  it("ignores bits above the lowest eight", () => {
    expect(gfMul(0x157, 0x283)).toBe(0xc1);
    expect(gfAdd(0x1ff, 0x0f)).toBe(0xf0);
  });
});

describe("gfAdd", () => {
  it("is XOR: every element is its own negative and 0 is the identity", () => {
    for (const a of ALL_BYTES) {
      expect(gfAdd(a, a)).toBe(0);
      expect(gfAdd(a, 0)).toBe(a);
      expect(gfAdd(a, 0x5a)).toBe(a ^ 0x5a);
    }
  });
});

describe("gfInverse", () => {
  it("gives a • a^-1 = 1 for every nonzero a", () => {
    for (const a of ALL_BYTES.slice(1)) {
      expect(gfMul(a, gfInverse(a)), `a=${a}`).toBe(1);
    }
  });

  it("is an involution, and maps 0 to 0 (no inverse exists)", () => {
    for (const a of ALL_BYTES) {
      expect(gfInverse(gfInverse(a))).toBe(a);
    }
    expect(gfInverse(0)).toBe(0);
  });
});

describe("gfEvalPolynomial", () => {
  /** Σ c_i · x^i with powers computed by repeated multiplication. */
  function naiveEval(coefficients: Uint8Array, x: number): number {
    let sum = 0;
    let power = 1;
    for (const c of coefficients) {
      sum ^= gfMul(c, power);
      power = gfMul(power, x);
    }
    return sum;
  }

  it("matches the term-by-term sum (Horner's rule is only a reordering)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 12 }), byteArb, (coefficients, x) => {
        expect(gfEvalPolynomial(coefficients, x)).toBe(naiveEval(coefficients, x));
      }),
      { numRuns: 2_000 },
    );
  });

  it("keeps the constant term at x = 0 and sums the coefficients at x = 1", () => {
    const p = Uint8Array.of(0x42, 0x05, 0x13);
    expect(gfEvalPolynomial(p, 0)).toBe(0x42);
    expect(gfEvalPolynomial(p, 1)).toBe(0x42 ^ 0x05 ^ 0x13);
    // 0x42 + 0x05·2 + 0x13·4 = 0x42 ^ 0x0a ^ 0x4c
    expect(gfEvalPolynomial(p, 2)).toBe(0x04);
    expect(gfEvalPolynomial(new Uint8Array(0), 7)).toBe(0);
  });
});
