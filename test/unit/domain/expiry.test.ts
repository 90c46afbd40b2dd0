import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseExpiry } from "../../../src/domain/expiry.js";

const now = new Date("2025-06-15T12:00:00Z");

function codes(month: unknown, year: unknown, at = now): string[] {
  const parsed = parseExpiry(month, year, at);
  return parsed.ok ? [] : parsed.issues.map((i) => `${i.field}:${i.code}`);
}

describe("parseExpiry", () => {
  it("accepts the current month: a card is good through the last day of its month", () => {
    expect(parseExpiry(6, 2025, now)).toEqual({ ok: true, value: { month: 6, year: 2025 } });
    expect(codes(6, 2025, new Date("2025-06-30T23:59:59.999Z"))).toEqual([]);
  });

  it("rejects the previous month, and the expiry month once it is over in UTC", () => {
    expect(codes(5, 2025)).toEqual(["card.exp_year:CARD_EXPIRED"]);
    expect(codes(12, 2024)).toEqual(["card.exp_year:CARD_EXPIRED"]);
    expect(codes(6, 2025, new Date("2025-07-01T00:00:00Z"))).toEqual([
      "card.exp_year:CARD_EXPIRED",
    ]);
    // 00:30 on 1 July in UTC+2 is still 30 June in UTC.
    expect(codes(6, 2025, new Date("2025-07-01T00:30:00+02:00"))).toEqual([]);
  });

  it("reads 2-digit years as 20YY and accepts 4-digit years", () => {
    expect(parseExpiry(1, 26, now)).toEqual({ ok: true, value: { month: 1, year: 2026 } });
    expect(parseExpiry("01", "26", now)).toEqual({ ok: true, value: { month: 1, year: 2026 } });
    expect(parseExpiry(7, 2025, now)).toEqual({ ok: true, value: { month: 7, year: 2025 } });
    expect(codes(12, 0)).toEqual(["card.exp_year:CARD_EXPIRED"]);
    expect(codes(12, 1999)).toEqual(["card.exp_year:CARD_EXPIRED"]);
  });

  it("accepts up to 20 years ahead and rejects further with EXP_YEAR_TOO_FAR", () => {
    expect(codes(12, 2045)).toEqual([]);
    expect(codes(12, 45)).toEqual([]);
    expect(codes(1, 2046)).toEqual(["card.exp_year:EXP_YEAR_TOO_FAR"]);
    expect(codes(1, 46)).toEqual(["card.exp_year:EXP_YEAR_TOO_FAR"]);
    expect(codes(1, 9999)).toEqual(["card.exp_year:EXP_YEAR_TOO_FAR"]);
  });

  it.each([0, 13, -1, 1.5, Number.NaN, "13", "1a", "", " 1", null, undefined, [6], true])(
    "rejects month %j with EXP_MONTH_INVALID",
    (month) => {
      expect(codes(month, 2030)).toEqual(["card.exp_month:EXP_MONTH_INVALID"]);
    },
  );

  it.each([100, 999, 10000, -1, 2030.5, "20301", "2030x", "", null, undefined, { y: 2030 }])(
    "rejects year %j with EXP_YEAR_INVALID",
    (year) => {
      expect(codes(6, year)).toEqual(["card.exp_year:EXP_YEAR_INVALID"]);
    },
  );

  it("reports both fields when both are invalid, under the given prefix", () => {
    const parsed = parseExpiry(13, "x", now, "cards/3/card");
    expect(parsed.ok ? [] : parsed.issues.map((i) => i.field)).toEqual([
      "cards/3/card.exp_month",
      "cards/3/card.exp_year",
    ]);
  });

  it("refuses an invalid clock", () => {
    expect(() => parseExpiry(1, 2030, new Date(Number.NaN))).toThrow(RangeError);
  });

  it("expires exactly when the first instant of the next month (UTC) has passed", () => {
    const arb = fc.tuple(
      fc.date({
        min: new Date("2000-01-01T00:00:00Z"),
        max: new Date("2079-12-31T23:59:59Z"),
        noInvalidDate: true,
      }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 2000, max: 2099 }),
    );
    fc.assert(
      fc.property(arb, ([at, month, year]) => {
        const expired = Date.UTC(year, month, 1) <= at.getTime();
        const tooFar = year > at.getUTCFullYear() + 20;
        const expected = expired ? "CARD_EXPIRED" : tooFar ? "EXP_YEAR_TOO_FAR" : undefined;
        const parsed = parseExpiry(month, year, at);
        expect(parsed.ok ? undefined : parsed.issues[0]?.code).toBe(expected);
      }),
    );
  });
});
