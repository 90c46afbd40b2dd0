import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gfMul } from "../../../src/crypto/gf256.js";
import { randomBytes } from "../../../src/crypto/random.js";
import { combineShares, MAX_SHARES, splitSecret } from "../../../src/crypto/shamir.js";

/** A random source that hands out `bytes` in order and records every buffer it returned. */
function scripted(bytes: readonly number[]) {
  let next = 0;
  const handedOut: Buffer[] = [];
  const requests: number[] = [];
  const source = (n: number): Buffer => {
    requests.push(n);
    const buf = Buffer.from(Array.from({ length: n }, () => bytes[next++ % bytes.length] ?? 0));
    handedOut.push(buf);
    return buf;
  };
  return { source, handedOut, requests };
}

/** n, t with 2 <= t <= n <= 10, and a permutation of the n share positions. */
const schemeArb = fc.integer({ min: 2, max: 10 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    t: fc.integer({ min: 2, max: n }),
    order: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => i),
      { minLength: n, maxLength: n },
    ),
  }),
);

const hexOf = (shares: { index: number; value: Buffer }[]) =>
  shares.map((s) => [s.index, s.value.toString("hex")]);

describe("splitSecret with an injected random source (hand-computed examples)", () => {
  it("t=2, coefficient 0x05: p(x) = 0x42 + 0x05·x", () => {
    const shares = splitSecret(Uint8Array.of(0x42), 2, 2, () => Buffer.from([0x05]));
    // p(1) = 0x42 ^ 0x05; p(2) = 0x42 ^ (0x05·{02} = 0x0a)
    expect(hexOf(shares)).toEqual([
      [1, "47"],
      [2, "48"],
    ]);
  });

  it("draws fresh coefficients for every byte: 2 bytes, 3 shares, t=2", () => {
    const { source, requests } = scripted([0x05, 0xff]);
    const shares = splitSecret(Uint8Array.of(0x42, 0x00), 3, 2, source);
    // byte 0: 0x42 + 0x05·x; byte 1: 0x00 + 0xff·x, with 0xff·{02} = 0xfe ^ 0x1b = 0xe5
    // and 0xff·{03} = 0xe5 ^ 0xff = 0x1a; 0x05·{03} = 0x0f.
    expect(hexOf(shares)).toEqual([
      [1, "47ff"],
      [2, "48e5"],
      [3, "4d1a"],
    ]);
    expect(requests).toEqual([1, 1]);
  });

  it("t=3: p(x) = 0x01 + 0x02·x + 0x03·x^2, and any two of three shares do not suffice", () => {
    const { source, requests } = scripted([0x02, 0x03]);
    const shares = splitSecret(Uint8Array.of(0x01), 3, 3, source);
    // p(1) = 1^2^3 = 0; p(2) = 1 ^ 4 ^ 3·4 (= 0x0c) = 0x09; p(3) = 1 ^ 2·3 (= 6) ^ 3·5 (= 0x0f) = 0x08
    expect(hexOf(shares)).toEqual([
      [1, "00"],
      [2, "09"],
      [3, "08"],
    ]);
    expect(requests).toEqual([2]);
    expect(combineShares(shares).toString("hex")).toBe("01");
    expect(combineShares(shares.slice(0, 2)).toString("hex")).not.toBe("01");
  });

  it("is deterministic for a given random source", () => {
    const secret = randomBytes(32);
    const first = splitSecret(secret, 5, 3, scripted([1, 2, 3, 250, 7]).source);
    const second = splitSecret(secret, 5, 3, scripted([1, 2, 3, 250, 7]).source);
    expect(hexOf(second)).toEqual(hexOf(first));
    expect(combineShares(first.slice(2))).toEqual(secret);
  });

  it("asks for threshold - 1 bytes per secret byte and zeroizes every buffer it was given", () => {
    const { source, handedOut, requests } = scripted([0x11, 0x22, 0x33]);
    splitSecret(randomBytes(16), 6, 4, source);
    expect(requests).toEqual(Array.from({ length: 16 }, () => 3));
    expect(handedOut.every((buf) => buf.every((b) => b === 0))).toBe(true);
  });

  it("refuses a random source that returns the wrong number of bytes", () => {
    expect(() => splitSecret(randomBytes(4), 3, 3, () => Buffer.alloc(1))).toThrow(RangeError);
    expect(() => splitSecret(randomBytes(4), 3, 3, () => Buffer.alloc(3))).toThrow(RangeError);
  });
});

describe("splitSecret", () => {
  it("gives shares indexed 1..n, each the secret's full length (not halves of a key)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), schemeArb, (secret, { n, t }) => {
        const shares = splitSecret(secret, n, t);
        expect(shares.map((s) => s.index)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        for (const share of shares) {
          expect(share.value).toHaveLength(secret.length);
        }
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ["threshold 1", 3, 1],
    ["threshold above shares", 3, 4],
    ["256 shares", 256, 2],
    ["fractional threshold", 3, 2.5],
    ["NaN shares", Number.NaN, 2],
  ])("refuses %s", (_, shares, threshold) => {
    expect(() => splitSecret(randomBytes(16), shares, threshold)).toThrow(RangeError);
  });

  it("refuses an empty secret", () => {
    expect(() => splitSecret(new Uint8Array(0), 3, 2)).toThrow(RangeError);
  });

  it("allows the extremes 2-of-2 and 255-of-255", () => {
    const secret = randomBytes(8);
    expect(combineShares(splitSecret(secret, 2, 2))).toEqual(secret);
    const all = splitSecret(secret, MAX_SHARES, MAX_SHARES);
    expect(all.at(-1)?.index).toBe(255);
    expect(combineShares(all)).toEqual(secret);
  });

  it("leaves the secret unchanged", () => {
    const secret = randomBytes(32);
    const copy = Buffer.from(secret);
    splitSecret(secret, 5, 3);
    expect(secret).toEqual(copy);
  });
});

describe("combineShares", () => {
  it("recovers the secret from ANY t or more shares, in any order", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        schemeArb.chain((scheme) =>
          fc.record({
            scheme: fc.constant(scheme),
            take: fc.integer({ min: scheme.t, max: scheme.n }),
          }),
        ),
        (secret, { scheme: { n, t, order }, take }) => {
          const shares = splitSecret(secret, n, t);
          const subset = order.slice(0, take).map((i) => shares[i]!);
          expect(combineShares(subset)).toEqual(Buffer.from(secret));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("does NOT recover a 32-byte secret from t - 1 shares (t >= 3)", () => {
    fc.assert(
      fc.property(
        schemeArb.filter(({ t }) => t >= 3),
        ({ n, t, order }) => {
          const secret = randomBytes(32);
          const shares = splitSecret(secret, n, t);
          const subset = order.slice(0, t - 1).map((i) => shares[i]!);
          // Each byte comes out right with probability 1/256 only: all 32 is 2^-256.
          expect(combineShares(subset)).not.toEqual(secret);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("throws on a repeated index", () => {
    const [a, b] = splitSecret(randomBytes(16), 3, 2);
    expect(() => combineShares([a!, b!, a!])).toThrow(/index 1 appears more than once/);
    expect(() => combineShares([a!, { index: 1, value: b!.value }])).toThrow(RangeError);
  });

  it.each([0, 256, -1, 1.5, Number.NaN])("throws on index %s", (index) => {
    const [a, b] = splitSecret(randomBytes(16), 2, 2);
    expect(() => combineShares([a!, { index, value: b!.value }])).toThrow(RangeError);
  });

  it("throws on values of different or zero length", () => {
    const [a, b] = splitSecret(randomBytes(16), 2, 2);
    expect(() => combineShares([a!, { index: 2, value: b!.value.subarray(1) }])).toThrow(
      /differ in length/,
    );
    expect(() =>
      combineShares([
        { index: 1, value: new Uint8Array(0) },
        { index: 2, value: new Uint8Array(0) },
      ]),
    ).toThrow(RangeError);
  });

  it("throws with fewer than two shares", () => {
    const [a] = splitSecret(randomBytes(16), 2, 2);
    expect(() => combineShares([])).toThrow(RangeError);
    expect(() => combineShares([a!])).toThrow(RangeError);
  });

  it("accepts plain Uint8Array values and returns a fresh buffer", () => {
    const secret = randomBytes(16);
    const shares = splitSecret(secret, 3, 2).map((s) => ({
      index: s.index,
      value: new Uint8Array(s.value),
    }));
    const recovered = combineShares(shares);
    expect(recovered).toEqual(secret);
    expect(recovered.buffer).not.toBe(shares[0]?.value.buffer);
  });
});

describe("secrecy of fewer than t shares (exact, over every coefficient)", () => {
  it("t=2: for any secret and any x, one share takes every byte value exactly once", () => {
    // One split of a 256-byte secret whose bytes are all `s`, with coefficient j for byte j:
    // share x, byte j = s + j·x. For every x the 256 bytes must be a permutation of 0..255,
    // so a single share is uniformly distributed whatever the secret.
    const coefficients = Array.from({ length: 256 }, (_, j) => j);
    for (const s of [0x00, 0x42, 0xff]) {
      const secret = new Uint8Array(256).fill(s);
      const shares = splitSecret(secret, MAX_SHARES, 2, scripted(coefficients).source);
      for (const share of shares) {
        expect(new Set(share.value).size, `s=${s} x=${share.index}`).toBe(256);
        expect(share.value[0]).toBe(s);
      }
    }
  });

  it("t=3: any two shares take every pair of byte values exactly once", () => {
    // 65536 bytes of secret `s`; byte j gets coefficients (j >> 8, j & 0xff).
    const coefficients = Array.from({ length: 2 * 65536 }, (_, k) =>
      k % 2 === 0 ? (k >> 1) >> 8 : (k >> 1) & 0xff,
    );
    for (const s of [0x00, 0xa5]) {
      const secret = new Uint8Array(65536).fill(s);
      const shares = splitSecret(secret, 4, 3, scripted(coefficients).source);
      for (const [x, y] of [
        [0, 1],
        [0, 3],
        [2, 3],
      ] as const) {
        const pairs = new Set<number>();
        const sx = shares[x]!.value;
        const sy = shares[y]!.value;
        for (let j = 0; j < 65536; j++) pairs.add(((sx[j] ?? 0) << 8) | (sy[j] ?? 0));
        expect(pairs.size, `s=${s} shares ${x + 1},${y + 1}`).toBe(65536);
      }
    }
  });

  it("the injected coefficients really are the ones used (the checks above are not vacuous)", () => {
    const shares = splitSecret(Uint8Array.of(0x10), 3, 2, () => Buffer.from([0x07]));
    expect(shares.map((s) => s.value[0])).toEqual([1, 2, 3].map((x) => 0x10 ^ gfMul(0x07, x)));
  });
});
