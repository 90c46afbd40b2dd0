import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  dynamicTruncation,
  hotp,
  type TotpAlgorithm,
  totpAt,
  totpStep,
} from "../../../src/auth/totp.js";
import { loadVectors } from "../crypto/load-vectors.js";

interface VectorFile {
  source: string;
  rfc6238: {
    period: number;
    digits: number;
    seeds: Record<TotpAlgorithm, string>;
    tests: { time: number; utc: string; step: string; algorithm: TotpAlgorithm; totp: string }[];
  };
  rfc4226: {
    secret: string;
    digits: number;
    tests: { counter: number; hmac: string; truncated: number; hotp: string }[];
  };
}

const vectors = loadVectors<VectorFile>("rfc6238-totp.json");
const { rfc6238, rfc4226 } = vectors;

describe("RFC 6238 Appendix B: TOTP test vectors", () => {
  it("holds all 18 rows: 6 times x SHA-1, SHA-256, SHA-512, 8 digits, 30 s", () => {
    expect(vectors.source).toMatch(/RFC 6238/);
    expect(rfc6238.tests).toHaveLength(18);
    expect(rfc6238.period).toBe(30);
    expect(rfc6238.digits).toBe(8);
    for (const algorithm of ["SHA1", "SHA256", "SHA512"] as const) {
      expect(rfc6238.tests.filter((t) => t.algorithm === algorithm)).toHaveLength(6);
    }
    // The RFC's seeds are the hash sizes: 20, 32 and 64 bytes.
    expect(Buffer.byteLength(rfc6238.seeds.SHA1)).toBe(20);
    expect(Buffer.byteLength(rfc6238.seeds.SHA256)).toBe(32);
    expect(Buffer.byteLength(rfc6238.seeds.SHA512)).toBe(64);
  });

  it.each(rfc6238.tests)("$algorithm at $time ($utc) is $totp", (t) => {
    expect(Date.parse(t.utc) / 1000).toBe(t.time);
    expect(totpStep(t.time)).toBe(Number.parseInt(t.step, 16));
    const seed = Buffer.from(rfc6238.seeds[t.algorithm], "ascii");
    expect(totpAt(seed, t.time, { algorithm: t.algorithm, digits: rfc6238.digits })).toBe(t.totp);
  });
});

describe("RFC 4226 Appendix D: HOTP test values", () => {
  const secret = Buffer.from(rfc4226.secret, "ascii");

  it("holds counters 0 to 9", () => {
    expect(rfc4226.tests.map((t) => t.counter)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it.each(rfc4226.tests)("counter $counter is $hotp", (t) => {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(t.counter));
    const digest = createHmac("sha1", secret).update(counter).digest();
    expect(digest.toString("hex")).toBe(t.hmac);
    expect(dynamicTruncation(digest)).toBe(t.truncated);
    expect(hotp(secret, t.counter, { digits: rfc4226.digits })).toBe(t.hotp);
  });

  it("TOTP is HOTP of the step: the RFC 6238 SHA-1 row at 59 s ends in HOTP(1)", () => {
    expect(totpAt(secret, 59)).toBe(rfc4226.tests[1]!.hotp);
  });
});

describe("hotp argument checks", () => {
  const key = Buffer.alloc(20, 1);
  it.each([-1, 1.5, Number.NaN, 2 ** 53])("refuses counter %s", (counter) => {
    expect(() => hotp(key, counter)).toThrow(RangeError);
  });
  it.each([5, 9, 6.5])("refuses %s digits", (digits) => {
    expect(() => hotp(key, 0, { digits })).toThrow(RangeError);
  });
  it("refuses a digest too short to truncate", () => {
    expect(() => dynamicTruncation(Buffer.from([0, 0, 0, 0x0f]))).toThrow(RangeError);
  });
});
