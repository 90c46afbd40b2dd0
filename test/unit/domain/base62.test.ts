import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base62Length, encodeBase62, isBase62 } from "../../../src/domain/base62.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Independent decoder: the encoding must be an exact big-endian base-62 numeral. */
function decode(s: string): bigint {
  let value = 0n;
  for (const char of s) value = value * 62n + BigInt(ALPHABET.indexOf(char));
  return value;
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.reduce((acc, byte) => acc * 256n + BigInt(byte), 0n);
}

describe("encodeBase62", () => {
  it("has the fixed lengths ceil(bits / log2 62)", () => {
    expect(base62Length(0)).toBe(0);
    expect(base62Length(1)).toBe(2);
    expect(base62Length(16)).toBe(22);
    expect(base62Length(32)).toBe(43);
  });

  it("matches known encodings, padded with leading zeros", () => {
    expect(encodeBase62(new Uint8Array([]))).toBe("");
    expect(encodeBase62(new Uint8Array([0]))).toBe("00");
    expect(encodeBase62(new Uint8Array([255]))).toBe("47");
    expect(encodeBase62(new Uint8Array(16))).toBe("0".repeat(22));
    expect(encodeBase62(new Uint8Array(16).fill(255))).toBe("7n42DGM5Tflk9n8mt7Fhc7");
    const oneToSixteen = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    expect(encodeBase62(oneToSixteen)).toBe("01tuWckR0Qgud2DqqiTysq");
  });

  it("always has the fixed length, the alphabet, and the input's exact value", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const encoded = encodeBase62(bytes);
        expect(encoded).toHaveLength(base62Length(bytes.length));
        expect(isBase62(encoded)).toBe(true);
        expect(decode(encoded)).toBe(toBigInt(bytes));
      }),
    );
  });
});

describe("isBase62", () => {
  it("accepts only non-empty strings of 0-9, A-Z, a-z", () => {
    expect(isBase62("0aZ9")).toBe(true);
    expect(isBase62("")).toBe(false);
    expect(isBase62("tok_abc")).toBe(false);
    expect(isBase62("abc-")).toBe(false);
    expect(isBase62("abc ")).toBe(false);
    expect(isBase62("é")).toBe(false);
  });
});
