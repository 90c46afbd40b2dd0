import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { IinRange } from "../../../src/domain/iin-table.js";
import { brandRules, detectBrand, IIN_RANGES } from "../../../src/domain/iin-table.js";
import { digitsArb, testCards } from "./test-cards.js";

/** "2221-2720" -> { from: 2221, to: 2720, digits: 4 }; "4" -> { from: 4, to: 4, digits: 1 }. */
function expandPrefix(prefix: string): Omit<IinRange, "brand"> {
  const [from = "", to = from] = prefix.split("-");
  return { from: Number(from), to: Number(to), digits: from.length };
}

const byRange = (a: Omit<IinRange, "brand">, b: Omit<IinRange, "brand">) =>
  a.digits - b.digits || a.from - b.from;

describe("IIN table", () => {
  it("transcribes test-cards.json's iin_ranges, plus Discover's 622126-622925", () => {
    for (const entry of testCards.iin_ranges) {
      const expected = entry.prefixes.map(expandPrefix);
      if (entry.brand === "discover") expected.push({ from: 622126, to: 622925, digits: 6 });
      const actual = IIN_RANGES.filter((r) => r.brand === entry.brand).map(
        ({ from, to, digits }) => ({ from, to, digits }),
      );
      expect(actual.sort(byRange), entry.brand).toEqual(expected.sort(byRange));
      expect(brandRules(entry.brand).lengths, entry.brand).toEqual(entry.lengths);
      expect(brandRules(entry.brand).cvcLength, entry.brand).toBe(entry.cvc_length ?? 3);
    }
    const brands = new Set(testCards.iin_ranges.map((e) => e.brand));
    expect(new Set(IIN_RANGES.map((r) => r.brand))).toEqual(brands);
  });

  it("has no two ranges of the same prefix length that overlap", () => {
    for (const a of IIN_RANGES) {
      for (const b of IIN_RANGES) {
        if (a === b || a.digits !== b.digits) continue;
        expect(a.to < b.from || b.to < a.from, `${a.brand} ${a.from} / ${b.brand} ${b.from}`).toBe(
          true,
        );
      }
    }
  });

  it("gives Amex a 4-digit CVC, other brands 3, and unknown 12-19 digits with 3 or 4", () => {
    expect(brandRules("amex").cvcLengths).toEqual([4]);
    expect(brandRules("visa").cvcLengths).toEqual([3]);
    expect(brandRules("unknown").lengths).toEqual([12, 13, 14, 15, 16, 17, 18, 19]);
    expect(brandRules("unknown").cvcLengths).toEqual([3, 4]);
  });
});

describe("detectBrand", () => {
  it("detects the documented brand of every published test card", () => {
    for (const { brand, number } of testCards.valid) {
      expect(detectBrand(number), number).toBe(brand);
    }
  });

  it.each([
    ["4", "visa"],
    ["51", "mastercard"],
    ["55", "mastercard"],
    ["50", "unknown"],
    ["56", "unknown"],
    ["2220", "unknown"],
    ["2221", "mastercard"],
    ["2720", "mastercard"],
    ["2721", "unknown"],
    ["2200", "mir"],
    ["2204", "mir"],
    ["2205", "unknown"],
    ["34", "amex"],
    ["37", "amex"],
    ["35", "unknown"],
    ["300", "diners"],
    ["305", "diners"],
    ["306", "unknown"],
    ["36", "diners"],
    ["38", "diners"],
    ["39", "diners"],
    ["3527", "unknown"],
    ["3528", "jcb"],
    ["3589", "jcb"],
    ["3590", "unknown"],
    ["6011", "discover"],
    ["6012", "unknown"],
    ["643", "unknown"],
    ["644", "discover"],
    ["649", "discover"],
    ["65", "discover"],
    ["62", "unionpay"],
    ["622125", "unionpay"],
    ["622126", "discover"],
    ["622925", "discover"],
    ["622926", "unionpay"],
    ["1", "unknown"],
    ["", "unknown"],
    ["x4", "unknown"],
  ])("prefix %j is %s", (prefix, brand) => {
    expect(detectBrand(prefix)).toBe(brand);
  });

  it("gives 622126-622925 to Discover: the longest prefix wins over UnionPay's 62", () => {
    const arb = fc.tuple(fc.integer({ min: 622126, max: 622925 }), digitsArb(10));
    fc.assert(
      fc.property(arb, ([bin, rest]) => {
        expect(detectBrand(`${bin}${rest}`)).toBe("discover");
      }),
    );
  });

  it("gives every other 62 prefix to UnionPay", () => {
    const outside = fc
      .integer({ min: 620000, max: 629999 })
      .filter((bin) => bin < 622126 || bin > 622925);
    const arb = fc.tuple(outside, digitsArb(10));
    fc.assert(
      fc.property(arb, ([bin, rest]) => {
        expect(detectBrand(`${bin}${rest}`)).toBe("unionpay");
      }),
    );
  });
});
