import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { luhnCheckDigit, luhnValid } from "../../../src/domain/luhn.js";
import { digitsArb, testCards } from "./test-cards.js";

describe("luhnValid", () => {
  it("accepts every published valid test card", () => {
    for (const { number } of testCards.valid) expect(luhnValid(number), number).toBe(true);
  });

  it("rejects every published invalid_luhn number", () => {
    for (const number of testCards.invalid_luhn) expect(luhnValid(number), number).toBe(false);
  });

  it("rejects empty strings, separators and non-ASCII digits", () => {
    expect(luhnValid("")).toBe(false);
    expect(luhnValid("4242 4242 4242 4242")).toBe(false);
    expect(luhnValid("4242-4242-4242-4242")).toBe(false);
    // Fullwidth digits of 4242424242424242.
    expect(luhnValid("４２４２４２４２４２４２４２４２")).toBe(false);
  });

  it("detects every single-digit change of a valid number", () => {
    const validArb = digitsArb(1, 25).map((s) => s + String(luhnCheckDigit(s)));
    const changeArb = fc.tuple(validArb, fc.nat(), fc.integer({ min: 1, max: 9 }));
    fc.assert(
      fc.property(changeArb, ([valid, at, delta]) => {
        const i = at % valid.length;
        const changed = String((Number(valid.charAt(i)) + delta) % 10);
        expect(luhnValid(valid.slice(0, i) + changed + valid.slice(i + 1))).toBe(false);
      }),
    );
  });
});

describe("luhnCheckDigit", () => {
  it("recomputes the last digit of every valid test card", () => {
    for (const { number } of testCards.valid) {
      expect(luhnCheckDigit(number.slice(0, -1)), number).toBe(Number(number.at(-1)));
    }
  });

  it("makes any digit string Luhn-valid, and is the only digit that does", () => {
    fc.assert(
      fc.property(digitsArb(0, 30), (partial) => {
        const check = luhnCheckDigit(partial);
        expect(luhnValid(partial + String(check))).toBe(true);
        const passing = [..."0123456789"].filter((d) => luhnValid(partial + d));
        expect(passing).toEqual([String(check)]);
      }),
    );
  });

  it("refuses non-digit input", () => {
    expect(() => luhnCheckDigit("4242 4242")).toThrow(RangeError);
  });
});
