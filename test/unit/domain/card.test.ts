import { describe, expect, it } from "vitest";
import { parseCard } from "../../../src/domain/card.js";
import { testCard, testCards } from "./test-cards.js";

const now = new Date("2025-06-15T12:00:00Z");
const visa = testCard("visa");
const amex = testCard("amex");

function fieldCodes(input: unknown, opts?: Parameters<typeof parseCard>[2]): string[] {
  const parsed = parseCard(input, now, opts);
  return parsed.ok ? [] : parsed.issues.map((i) => `${i.field}:${i.code}`);
}

describe("parseCard", () => {
  it("parses a complete card", () => {
    const input = {
      number: "4242 4242 4242 4242",
      exp_month: 12,
      exp_year: 30,
      cvc: "737",
      name: " Jane Doe ",
    };
    const parsed = parseCard(input, now);
    if (!parsed.ok) throw new Error(parsed.issues.map((i) => i.code).join());
    const { card, cvc } = parsed.value;
    expect(card.pan.revealDigits()).toBe(visa);
    expect(card.pan.brand).toBe("visa");
    expect([card.expMonth, card.expYear, card.name]).toEqual([12, 2030, "Jane Doe"]);
    expect(cvc?.revealDigits()).toBe("737");
  });

  it("leaves out name and cvc when they are absent", () => {
    const parsed = parseCard({ number: amex, exp_month: 1, exp_year: 2027 }, now);
    if (!parsed.ok) throw new Error("expected a valid card");
    expect("cvc" in parsed.value).toBe(false);
    expect("name" in parsed.value.card).toBe(false);
  });

  it("collects every field's issue, not just the first", () => {
    const input = {
      number: testCards.invalid_luhn[0],
      exp_month: 13,
      exp_year: "x",
      cvc: "12",
      name: "",
    };
    expect(fieldCodes(input)).toEqual([
      "card.number:PAN_LUHN",
      "card.exp_month:EXP_MONTH_INVALID",
      "card.exp_year:EXP_YEAR_INVALID",
      "card.cvc:CVC_INVALID",
      "card.name:NAME_INVALID",
    ]);
  });

  it("reports missing required fields", () => {
    expect(fieldCodes({})).toEqual([
      "card.number:PAN_INVALID_TYPE",
      "card.exp_month:EXP_MONTH_INVALID",
      "card.exp_year:EXP_YEAR_INVALID",
    ]);
  });

  it.each([null, undefined, "card", 42, [visa]])("rejects %j with CARD_INVALID_TYPE", (input) => {
    expect(fieldCodes(input)).toEqual(["card:CARD_INVALID_TYPE"]);
  });

  it("checks the CVC against the detected brand", () => {
    const base = { exp_month: 1, exp_year: 2027 };
    expect(fieldCodes({ ...base, number: amex, cvc: "1234" })).toEqual([]);
    expect(fieldCodes({ ...base, number: amex, cvc: "123" })).toEqual(["card.cvc:CVC_INVALID"]);
    expect(fieldCodes({ ...base, number: visa, cvc: "1234" })).toEqual(["card.cvc:CVC_INVALID"]);
  });

  it("requires a CVC only when asked", () => {
    const card = { number: visa, exp_month: 1, exp_year: 2027 };
    expect(fieldCodes(card)).toEqual([]);
    expect(fieldCodes(card, { requireCvc: true })).toEqual(["card.cvc:CVC_REQUIRED"]);
    expect(fieldCodes({ ...card, cvc: "123" }, { requireCvc: true })).toEqual([]);
  });

  it("puts issues under the given prefix", () => {
    const input = { number: visa, exp_month: 1, exp_year: 2020 };
    expect(fieldCodes(input, { fieldPrefix: "cards/3/card" })).toEqual([
      "cards/3/card.exp_year:CARD_EXPIRED",
    ]);
  });

  it("refuses unknown fields, naming only plain field names", () => {
    const input = { number: visa, exp_month: 1, exp_year: 2027, pan: visa, [visa]: "x" };
    expect(fieldCodes(input)).toEqual(["card.pan:CARD_UNKNOWN_FIELD", "card:CARD_UNKNOWN_FIELD"]);
  });

  it("never lets the number or CVC out through JSON, valid or not", () => {
    const valid = parseCard({ number: visa, exp_month: 1, exp_year: 2027, cvc: "737" }, now);
    expect(valid.ok).toBe(true);
    expect(JSON.stringify(valid)).not.toContain(visa);
    expect(JSON.stringify(valid)).not.toContain("737");
    const invalid = testCards.invalid_luhn[0] ?? "";
    const rejected = parseCard({ number: invalid, exp_month: 1, exp_year: 2027, cvc: "9" }, now);
    expect(JSON.stringify(rejected)).not.toContain(invalid);
  });
});
