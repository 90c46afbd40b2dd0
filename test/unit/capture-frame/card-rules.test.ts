import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseCardholderName } from "../../../src/domain/cardholder-name.js";
import { parseCvc } from "../../../src/domain/cvc.js";
import { parseExpiry } from "../../../src/domain/expiry.js";
import type { Brand } from "../../../src/domain/iin-table.js";
import { IIN_RANGES, detectBrand as vaultDetectBrand } from "../../../src/domain/iin-table.js";
import { luhnValid as vaultLuhnValid } from "../../../src/domain/luhn.js";
import { Pan } from "../../../src/domain/pan.js";
import type { BrandTable } from "../../../static/capture/card-rules.js";
import {
  brandTableFrom,
  checkCvc,
  checkExpiry,
  checkName,
  checkNumber,
  detectBrand,
  expiryPartsOf,
  luhnValid,
  validateCard,
} from "../../../static/capture/card-rules.js";
import { servedBrandTable, testCards } from "./brand-table.js";

const digitsArb = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: min, maxLength: max });
/** Digits that start inside a brand's IIN range: where the interesting cases are. */
const prefixedDigitsArb = fc
  .tuple(fc.constantFrom(...IIN_RANGES), digitsArb(0, 19))
  .chain(([range, rest]) =>
    fc.integer({ min: range.from, max: range.to }).map((prefix) => `${prefix}${rest}`.slice(0, 22)),
  );
const numberArb = fc.oneof(digitsArb(0, 22), prefixedDigitsArb);
const now = new Date("2026-06-15T12:00:00Z");

let table: BrandTable;
beforeAll(async () => {
  table = await servedBrandTable();
});

describe("the frame's brand table", () => {
  it("detects every test card's brand", () => {
    for (const card of testCards.valid) expect(detectBrand(table, card.number)).toBe(card.brand);
  });

  it("agrees with the vault's detectBrand on every prefix (one table, served from the domain)", () => {
    fc.assert(
      fc.property(numberArb, (digits) => {
        expect(detectBrand(table, digits)).toBe(vaultDetectBrand(digits));
      }),
      { numRuns: 2000 },
    );
  });

  it("lets the longest prefix win: 622126 is Discover inside UnionPay's 62", () => {
    expect(detectBrand(table, "6221260000")).toBe("discover");
    expect(detectBrand(table, "6221250000")).toBe("unionpay");
  });

  it("refuses a brands.json without rules for unknown or for a brand it lists", () => {
    expect(() => brandTableFrom({ ranges: [], rules: {} })).toThrow(TypeError);
    expect(() =>
      brandTableFrom({
        ranges: [{ brand: "visa", from: 4, to: 4, digits: 1 }],
        rules: { unknown: { lengths: [16], cvcLength: 3, cvcLengths: [3] } },
      }),
    ).toThrow(TypeError);
    expect(() => brandTableFrom(null)).toThrow(TypeError);
  });
});

describe("checkNumber", () => {
  it("accepts every valid test card and rejects every invalid_luhn one with PAN_LUHN", () => {
    for (const card of testCards.valid) expect(checkNumber(table, card.number)).toBeUndefined();
    for (const number of testCards.invalid_luhn) {
      expect(checkNumber(table, number)).toEqual({ field: "number", code: "PAN_LUHN" });
    }
  });

  it("accepts exactly the numbers the vault accepts (Luhn, 12-19 digits, the brand's lengths)", () => {
    fc.assert(
      fc.property(numberArb, (digits) => {
        expect(checkNumber(table, digits) === undefined).toBe(Pan.parse(digits).ok);
      }),
      { numRuns: 3000 },
    );
  });

  it("computes Luhn as the vault does", () => {
    fc.assert(
      fc.property(digitsArb(1, 19), (digits) => {
        expect(luhnValid(digits)).toBe(vaultLuhnValid(digits));
      }),
    );
    expect(luhnValid("")).toBe(false);
  });

  it("says what is wrong: missing, too short for any card, wrong length for the brand", () => {
    expect(checkNumber(table, "")).toEqual({ field: "number", code: "FIELD_REQUIRED" });
    expect(checkNumber(table, "42424242")?.code).toBe("PAN_LENGTH");
    const visa15 = testCards.valid.find((c) => c.brand === "visa")?.number.slice(0, 15) ?? "";
    expect(checkNumber(table, visa15)).toEqual({
      field: "number",
      code: "PAN_LENGTH_FOR_BRAND",
      brand: "visa",
    });
    const amex = testCards.valid.find((c) => c.brand === "amex")?.number ?? "";
    expect(checkNumber(table, `${amex}0`)?.code).toBe("PAN_LENGTH_FOR_BRAND");
  });
});

describe("checkExpiry", () => {
  const codes = (text: string, at = now) =>
    checkExpiry(text, at).map((i) => `${i.field}:${i.code}`);

  it("reads MM / YY as the form formats it, and MM/YYYY or M/YY from autofill", () => {
    expect(expiryPartsOf("12 / 28")).toEqual({ month: "12", year: "28" });
    expect(expiryPartsOf("12/2028")).toEqual({ month: "12", year: "28" });
    expect(expiryPartsOf("1/28")).toEqual({ month: "01", year: "28" });
    expect(expiryPartsOf("1228")).toEqual({ month: "12", year: "28" });
  });

  it("accepts the current month and refuses the previous one (judged in UTC, as the vault)", () => {
    expect(codes("06 / 26")).toEqual([]);
    expect(codes("05 / 26")).toEqual(["exp_year:CARD_EXPIRED"]);
    expect(codes("06 / 26", new Date("2026-07-01T00:30:00+02:00"))).toEqual([]);
  });

  it("names the part that is wrong: month 01-12, a two-digit year, too far ahead", () => {
    expect(codes("")).toEqual(["exp_month:FIELD_REQUIRED"]);
    expect(codes("13 / 28")).toEqual(["exp_month:EXP_MONTH_INVALID"]);
    expect(codes("00 / 28")).toEqual(["exp_month:EXP_MONTH_INVALID"]);
    expect(codes("12 / 2")).toEqual(["exp_year:EXP_YEAR_INVALID"]);
    expect(codes("1")).toEqual(["exp_month:EXP_MONTH_INVALID", "exp_year:EXP_YEAR_INVALID"]);
    expect(codes("12 / 46")).toEqual([]);
    expect(codes("01 / 47")).toEqual(["exp_year:EXP_YEAR_TOO_FAR"]);
  });

  it("accepts exactly the month/year pairs the vault accepts", () => {
    fc.assert(
      fc.property(digitsArb(2, 2), digitsArb(2, 2), (month, year) => {
        const browser = checkExpiry(`${month} / ${year}`, now);
        const vault = parseExpiry(month, year, now);
        expect(browser.length === 0).toBe(vault.ok);
        if (!vault.ok) expect(browser.map((i) => i.code)).toEqual(vault.issues.map((i) => i.code));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("checkCvc", () => {
  const brands = [...new Set(IIN_RANGES.map((r) => r.brand)), "unknown"] as Brand[];

  it("wants 4 digits for Amex, 3 for the others, either when the brand is unknown", () => {
    expect(checkCvc(table, "amex", "1234")).toBeUndefined();
    expect(checkCvc(table, "amex", "123")).toEqual({
      field: "cvc",
      code: "CVC_INVALID",
      brand: "amex",
    });
    expect(checkCvc(table, "visa", "1234")?.code).toBe("CVC_INVALID");
    expect(checkCvc(table, "unknown", "1234")).toBeUndefined();
    expect(checkCvc(table, "visa", "")).toEqual({ field: "cvc", code: "CVC_REQUIRED" });
  });

  it("accepts exactly the codes the vault accepts for each brand", () => {
    fc.assert(
      fc.property(fc.constantFrom(...brands), digitsArb(1, 6), (brand, cvc) => {
        expect(checkCvc(table, brand, cvc) === undefined).toBe(parseCvc(cvc, brand).ok);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("checkName", () => {
  it("wants 1-100 characters after trimming, without controls, bidi overrides or a card number", () => {
    expect(checkName("  Ada Lovelace ")).toBeUndefined();
    expect(checkName("Zoë Ørsted-Łukasz")).toBeUndefined();
    expect(checkName("   ")).toEqual({ field: "name", code: "FIELD_REQUIRED" });
    expect(checkName("a".repeat(100))).toBeUndefined();
    expect(checkName("a".repeat(101))).toMatchObject({ code: "NAME_INVALID", reason: "too_long" });
    expect(checkName("Ada\u202ELovelace")).toMatchObject({ reason: "characters" });
    expect(checkName("Ada\nLovelace")).toMatchObject({ reason: "characters" });
    const number = testCards.valid[0]?.number ?? "";
    expect(checkName(`Ada ${number}`)).toMatchObject({ reason: "card_number" });
    expect(checkName(`Ada ${number.replace(/(\d{4})/g, "$1 ").trim()}`)).toMatchObject({
      reason: "card_number",
    });
  });

  it("never accepts a name the vault refuses", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 120 }), fc.string({ unit: "binary", maxLength: 120 })),
        (name) => {
          if (checkName(name) === undefined) expect(parseCardholderName(name).ok).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("validateCard", () => {
  const visa = testCards.valid.find((c) => c.brand === "visa")?.number ?? "";

  it("builds the tokenize contract's card: digits, numeric month and 4-digit year, trimmed name", () => {
    const checked = validateCard(
      table,
      { number: visa, expiry: "12 / 28", cvc: "123", name: " Ada Lovelace " },
      now,
    );
    expect(checked).toEqual({
      ok: true,
      card: { number: visa, exp_month: 12, exp_year: 2028, cvc: "123", name: "Ada Lovelace" },
    });
  });

  it("reports every field's issue at once, each naming a contract field, none holding a value", () => {
    const checked = validateCard(
      table,
      { number: testCards.invalid_luhn[0] ?? "", expiry: "01 / 20", cvc: "12", name: "" },
      now,
    );
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.issues).toEqual([
      { field: "number", code: "PAN_LUHN" },
      { field: "exp_year", code: "CARD_EXPIRED" },
      { field: "cvc", code: "CVC_INVALID", brand: "visa" },
      { field: "name", code: "FIELD_REQUIRED" },
    ]);
    expect(JSON.stringify(checked.issues)).not.toMatch(/[0-9]{4}/);
  });
});
