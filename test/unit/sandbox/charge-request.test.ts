import { describe, expect, it } from "vitest";
import { MAX_AMOUNT, parseChargeRequest } from "../../../src/sandbox/charge-request.js";

const NOW = new Date("2026-06-15T12:00:00Z");
const VISA = "4242424242424242";
const AMEX = "378282246310005";
const LUHN_INVALID = "4242424242424241";

function body(overrides: Record<string, unknown> = {}, card: Record<string, unknown> = {}) {
  return {
    amount: 1000,
    currency: "USD",
    card: { number: VISA, exp_month: 12, exp_year: 2030, cvc: "123", ...card },
    ...overrides,
  };
}

function issueCodes(input: unknown): string[] {
  const parsed = parseChargeRequest(input, NOW);
  return parsed.ok ? [] : parsed.issues.map((i) => `${i.field}:${i.code}`);
}

describe("sandbox charge request", () => {
  it("accepts a JSON charge, lower-cases the currency and keeps the card masked", () => {
    const parsed = parseChargeRequest(body({ description: "Order 17" }, { name: "Jane Doe" }), NOW);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const { pan, cvc, ...rest } = parsed.value;
    expect(rest).toEqual({
      amount: 1000,
      currency: "usd",
      expMonth: 12,
      expYear: 2030,
      expired: false,
    });
    expect(pan.brand).toBe("visa");
    expect(pan.last4).toBe("4242");
    expect(JSON.stringify(parsed.value)).not.toContain(VISA);
    expect(JSON.stringify(parsed.value)).not.toContain('"123"');
    expect(cvc?.revealDigits()).toBe("123");
  });

  it("accepts form-shaped strings: digit amounts, YY years, no CVC", () => {
    const parsed = parseChargeRequest(
      { amount: "250", currency: "eur", card: { number: AMEX, exp_month: "07", exp_year: "31" } },
      NOW,
    );
    expect(parsed).toMatchObject({
      ok: true,
      value: { amount: 250, currency: "eur", expMonth: 7, expYear: 2031, cvc: undefined },
    });
  });

  it("flags a card past its expiry month as expired (an outcome, not bad input)", () => {
    const parsed = parseChargeRequest(body({}, { exp_month: 5, exp_year: 26 }), NOW);
    expect(parsed).toMatchObject({
      ok: true,
      value: { expMonth: 5, expYear: 2026, expired: true },
    });
    const current = parseChargeRequest(body({}, { exp_month: 6, exp_year: 2026 }), NOW);
    expect(current).toMatchObject({ ok: true, value: { expired: false } });
  });

  it.each([
    ["zero", 0],
    ["negative", -5],
    ["fractional", 10.5],
    ["too large", MAX_AMOUNT + 1],
    ["non-digit string", "10e3"],
    ["missing", undefined],
    ["boolean", true],
  ])("refuses a %s amount", (_case, amount) => {
    expect(issueCodes(body({ amount }))).toEqual(["amount:AMOUNT_INVALID"]);
  });

  it.each([["US"], ["usd1"], [840], ["U$D"], [undefined]])(
    "refuses the currency %j",
    (currency) => {
      expect(issueCodes(body({ currency }))).toEqual(["currency:CURRENCY_INVALID"]);
    },
  );

  it("refuses a Luhn-invalid number, and never repeats it", () => {
    const parsed = parseChargeRequest(body({}, { number: LUHN_INVALID }), NOW);
    expect(parsed).toMatchObject({
      ok: false,
      issues: [{ field: "card.number", code: "PAN_LUHN" }],
    });
    expect(JSON.stringify(parsed)).not.toContain(LUHN_INVALID);
  });

  it("reports every bad field at once", () => {
    const codes = issueCodes({
      amount: 0,
      currency: "x",
      card: { number: "12", exp_month: 13, exp_year: 2030, cvc: "1" },
      extra: 1,
    });
    expect(codes).toEqual(
      expect.arrayContaining([
        "extra:FIELD_UNKNOWN",
        "amount:AMOUNT_INVALID",
        "currency:CURRENCY_INVALID",
        "card.number:PAN_LENGTH",
        "card.exp_month:EXP_MONTH_INVALID",
      ]),
    );
  });

  it("refuses a CVC of the wrong length for the brand", () => {
    expect(issueCodes(body({}, { cvc: "1234" }))).toEqual(["card.cvc:CVC_INVALID"]);
    expect(issueCodes(body({}, { number: AMEX, cvc: "123" }))).toEqual(["card.cvc:CVC_INVALID"]);
  });

  it("refuses unknown fields without quoting a name that could hold a card number", () => {
    const parsed = parseChargeRequest(body({ [VISA]: 1 }, { track2: "x" }), NOW);
    expect(parsed.ok).toBe(false);
    expect(issueCodes(body({ [VISA]: 1 }, { track2: "x" }))).toEqual(
      expect.arrayContaining(["(unnamed):FIELD_UNKNOWN", "card.(unnamed):FIELD_UNKNOWN"]),
    );
    expect(JSON.stringify(parsed)).not.toContain(VISA);
  });

  it("refuses a body or card that is not an object, and a card number in the description", () => {
    expect(issueCodes([1])).toEqual(["(body):BODY_INVALID"]);
    expect(issueCodes(body({ card: VISA }))).toEqual(["card:CARD_INVALID_TYPE"]);
    expect(issueCodes(body({ description: `card ${VISA}` }))).toEqual([
      "description:DESCRIPTION_INVALID",
    ]);
    expect(issueCodes(body({}, { exp_year: 2060 }))).toEqual(["card.exp_year:EXP_YEAR_TOO_FAR"]);
  });

  it("accepts string metadata (as form templates send metadata[order]=…) and refuses anything else", () => {
    expect(issueCodes(body({ metadata: { order: "A-17", note: "" } }))).toEqual([]);
    for (const metadata of [
      "x",
      { n: 1 },
      { card: `x ${VISA}` },
      Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"])),
    ]) {
      expect(issueCodes(body({ metadata }))).toEqual(["metadata:METADATA_INVALID"]);
    }
  });
});
