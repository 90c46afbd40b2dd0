import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { luhnValid } from "../../../src/domain/luhn.js";
import type { RandomSource } from "../../../src/domain/token-format.js";
import {
  isCardAlias,
  isRandomToken,
  newCardAlias,
  newRandomToken,
  parseTokenId,
} from "../../../src/domain/token-format.js";
import { panArb, parsePan, testCard, testCards } from "./test-cards.js";

/** A source that cycles through `bytes` forever. */
function cycling(bytes: readonly number[]): RandomSource {
  let next = 0;
  return (n) => Uint8Array.from({ length: n }, () => bytes[next++ % bytes.length] ?? 0);
}

describe("random tokens", () => {
  it("are tok_ + 22 base62 characters of 16 random bytes", () => {
    let asked = 0;
    const zeros: RandomSource = (n) => {
      asked = n;
      return new Uint8Array(n);
    };
    expect(newRandomToken(zeros)).toBe(`tok_${"0".repeat(22)}`);
    expect(asked).toBe(16);
    const token = newRandomToken(randomBytes);
    expect(token).toMatch(/^tok_[0-9A-Za-z]{22}$/);
    expect(isRandomToken(token)).toBe(true);
    expect(newRandomToken(randomBytes)).not.toBe(token);
  });

  it("refuse a random source that returns the wrong number of bytes", () => {
    expect(() => newRandomToken(() => new Uint8Array(15))).toThrow(RangeError);
  });

  it.each([
    "",
    "tok_",
    `tok_${"a".repeat(21)}`,
    `tok_${"a".repeat(23)}`,
    `tk_${"a".repeat(23)}`,
    `tok_${"a".repeat(21)}-`,
    `TOK_${"a".repeat(22)}`,
  ])("isRandomToken rejects %j", (s) => {
    expect(isRandomToken(s)).toBe(false);
  });
});

describe("card aliases", () => {
  it("keep the length, BIN and last 4, and fail Luhn for every published card", () => {
    for (const { number } of testCards.valid) {
      const pan = parsePan(number);
      const alias = newCardAlias(pan, randomBytes);
      expect(alias).toHaveLength(number.length);
      expect(alias.startsWith(pan.bin)).toBe(true);
      expect(alias.endsWith(pan.last4)).toBe(true);
      expect(luhnValid(alias)).toBe(false);
      expect(isCardAlias(alias)).toBe(true);
    }
  });

  it("move one middle digit when the random digits would pass Luhn", () => {
    // BIN 42424242 + middle 4242 + last 4 4242 would be the card itself.
    const alias = newCardAlias(parsePan(testCard("visa")), cycling([4, 2]));
    expect(alias).toBe("4242424242434242");
  });

  it("draw middle digits by rejection sampling, skipping bytes 250-255", () => {
    const amex = parsePan(testCard("amex"));
    // 255 and 250 are skipped; 13 -> 3, 249 -> 9, 10 -> 0, 7 -> 7, 21 -> 1.
    const alias = newCardAlias(amex, cycling([255, 13, 250, 249, 10, 7, 21]));
    expect(alias.slice(6, 11)).toBe("39071");
    expect(() => newCardAlias(amex, cycling([250, 255]))).toThrow();
  });

  it("hold for random PANs of every length 12-19 and any random source", () => {
    const source = fc
      .uint8Array({ minLength: 1, maxLength: 40 })
      .filter((b) => b.some((x) => x < 250));
    fc.assert(
      fc.property(panArb, source, (pan, bytes) => {
        const alias = newCardAlias(pan, cycling([...bytes]));
        expect(alias).toHaveLength(pan.length);
        expect(alias).toMatch(/^[0-9]+$/);
        expect(alias.slice(0, pan.bin.length)).toBe(pan.bin);
        expect(alias.slice(-4)).toBe(pan.last4);
        expect(luhnValid(alias)).toBe(false);
        expect(isCardAlias(alias)).toBe(true);
        expect(parseTokenId(alias)).toBe(alias);
      }),
      { numRuns: 500 },
    );
  });

  it("isCardAlias accepts only 12-19 digits that fail Luhn", () => {
    for (const { number } of testCards.valid) expect(isCardAlias(number)).toBe(false);
    for (const number of testCards.invalid_luhn) expect(isCardAlias(number)).toBe(true);
    const invalid = testCards.invalid_luhn[0] ?? "";
    expect(isCardAlias(invalid.slice(0, 11))).toBe(false);
    expect(isCardAlias(`${invalid}0000`)).toBe(false);
    expect(isCardAlias(`${invalid.slice(0, -1)}x`)).toBe(false);
  });
});

describe("parseTokenId", () => {
  it("accepts both formats and nothing else", () => {
    const token = newRandomToken(randomBytes);
    const invalid = testCards.invalid_luhn[0] ?? "";
    expect(parseTokenId(token)).toBe(token);
    expect(parseTokenId(invalid)).toBe(invalid);
    // A real card number is never a token id, so it never reaches a lookup.
    expect(parseTokenId(testCard("visa"))).toBeUndefined();
    expect(parseTokenId(`${token}a`)).toBeUndefined();
    expect(parseTokenId(`${token} `)).toBeUndefined();
    expect(parseTokenId("x".repeat(10_000))).toBeUndefined();
    for (const input of [undefined, null, 42, {}, [token]])
      expect(parseTokenId(input)).toBeUndefined();
  });
});
