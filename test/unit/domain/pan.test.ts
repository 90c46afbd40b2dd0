import { inspect } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { binOf, maskPan, Pan } from "../../../src/domain/pan.js";
import { digitsArb, panArb, parsePan, testCard, testCards, withCheckDigit } from "./test-cards.js";

function issueCode(input: unknown): string | undefined {
  const parsed = Pan.parse(input);
  return parsed.ok ? undefined : parsed.issues[0]?.code;
}

describe("Pan.parse", () => {
  it("accepts every published valid test card with its documented brand", () => {
    for (const { brand, number } of testCards.valid) {
      const pan = parsePan(number);
      expect(pan.brand, number).toBe(brand);
      expect(pan.revealDigits()).toBe(number);
      expect(pan.length).toBe(number.length);
    }
  });

  it("rejects every published invalid_luhn number with PAN_LUHN on card.number", () => {
    for (const number of testCards.invalid_luhn) {
      expect(Pan.parse(number)).toEqual({
        ok: false,
        issues: [{ field: "card.number", code: "PAN_LUHN", message: expect.any(String) }],
      });
    }
  });

  it("strips ASCII spaces and dashes only", () => {
    const visa = testCard("visa");
    const amex = testCard("amex");
    const grouped = (s: string, sep: string) => s.match(/.{1,4}/g)?.join(sep) ?? "";
    expect(parsePan(grouped(visa, " ")).revealDigits()).toBe(visa);
    expect(parsePan(grouped(visa, "-")).revealDigits()).toBe(visa);
    expect(parsePan(` ${visa} `).revealDigits()).toBe(visa);
    const amexGrouped = `${amex.slice(0, 4)} ${amex.slice(4, 10)} ${amex.slice(10)}`;
    expect(parsePan(amexGrouped).revealDigits()).toBe(amex);
    expect(issueCode(grouped(visa, "\t"))).toBe("PAN_NOT_DIGITS");
    expect(issueCode(grouped(visa, "."))).toBe("PAN_NOT_DIGITS");
    expect(issueCode(grouped(visa, "\u00a0"))).toBe("PAN_NOT_DIGITS");
    expect(issueCode(`${visa}x`)).toBe("PAN_NOT_DIGITS");
    // Fullwidth digits look like a card number but are not ASCII digits.
    expect(issueCode("４２４２４２４２４２４２４２４２")).toBe("PAN_NOT_DIGITS");
  });

  it("rejects anything but a string with PAN_INVALID_TYPE", () => {
    for (const input of [Number(testCard("visa")), undefined, null, {}, [testCard("visa")]]) {
      expect(issueCode(input)).toBe("PAN_INVALID_TYPE");
    }
  });

  it("rejects fewer than 12 or more than 19 digits with PAN_LENGTH", () => {
    const longest = testCards.valid.map((c) => c.number).find((n) => n.length === 19) ?? "";
    expect(issueCode("")).toBe("PAN_LENGTH");
    expect(issueCode(" - ")).toBe("PAN_LENGTH");
    expect(issueCode(testCard("visa").slice(0, 11))).toBe("PAN_LENGTH");
    expect(issueCode(`${longest}0`)).toBe("PAN_LENGTH");
    expect(issueCode(" ".repeat(100) + testCard("visa"))).toBe("PAN_LENGTH");
  });

  it("rejects a Luhn-valid length the brand does not issue with PAN_LENGTH_FOR_BRAND", () => {
    // Visa issues 13, 16 and 19 digits; Amex only 15.
    const wrongLength = fc.oneof(
      digitsArb(13).map((rest) => withCheckDigit(`4${rest}`)),
      digitsArb(13).map((rest) => withCheckDigit(`37${rest}`)),
    );
    fc.assert(
      fc.property(wrongLength, (digits) => {
        expect(issueCode(digits)).toBe("PAN_LENGTH_FOR_BRAND");
      }),
    );
  });

  it("accepts 622126-622925 as Discover and other 62 numbers as UnionPay", () => {
    const discover = fc
      .tuple(fc.integer({ min: 622126, max: 622925 }), digitsArb(9))
      .map(([bin, rest]) => withCheckDigit(`${bin}${rest}`));
    const unionpay = fc
      .tuple(fc.integer({ min: 620000, max: 629999 }), digitsArb(9, 12))
      .filter(([bin]) => bin < 622126 || bin > 622925)
      .map(([bin, rest]) => withCheckDigit(`${bin}${rest}`));
    fc.assert(fc.property(discover, (d) => void expect(parsePan(d).brand).toBe("discover")));
    fc.assert(fc.property(unionpay, (d) => void expect(parsePan(d).brand).toBe("unionpay")));
  });

  it("uses the given field path", () => {
    const parsed = Pan.parse(testCards.invalid_luhn[0], "cards/3/card.number");
    expect(parsed.ok ? undefined : parsed.issues[0]?.field).toBe("cards/3/card.number");
  });

  it("never repeats the input in an issue message", () => {
    fc.assert(
      fc.property(digitsArb(3, 30), (digits) => {
        const parsed = Pan.parse(digits);
        if (parsed.ok) return;
        for (const issue of parsed.issues) expect(issue.message).not.toContain(digits);
      }),
    );
  });
});

describe("Pan masking", () => {
  it.each([
    [testCard("visa"), "42424242", "4242", "42424242****4242"],
    [testCard("amex"), "378282", "0005", "378282*****0005"],
    [testCard("diners"), "30569300", "0004", "30569300****0004"],
    ["36227206271667", "362272", "1667", "362272****1667"],
    ["6205500000000000004", "62055000", "0004", "62055000*******0004"],
  ])("%s has BIN %s, last 4 %s, masked %s", (digits, bin, last4, masked) => {
    const pan = parsePan(digits);
    expect(pan.bin).toBe(bin);
    expect(pan.last4).toBe(last4);
    expect(pan.masked).toBe(masked);
    expect(maskPan(digits)).toBe(masked);
    expect(binOf(digits)).toBe(bin);
  });

  it("never shows more than the BIN and the last 4 (PCI DSS 3.4.1)", () => {
    fc.assert(
      fc.property(panArb, (pan) => {
        const digits = pan.revealDigits();
        const binLength = digits.length >= 16 ? 8 : 6;
        const masked = pan.masked;
        expect(masked).toHaveLength(digits.length);
        expect(masked.replace(/\*/g, "")).toHaveLength(binLength + 4);
        expect(masked.slice(0, binLength)).toBe(digits.slice(0, binLength));
        expect(masked.slice(-4)).toBe(digits.slice(-4));
        expect(masked.slice(binLength, -4)).toMatch(/^\*+$/);
      }),
    );
  });

  it("stars everything shorter than a PAN", () => {
    expect(maskPan("12345678901")).toBe("*".repeat(11));
    expect(maskPan("1234")).toBe("****");
    expect(maskPan("")).toBe("");
  });

  it("never renders the digits through toString, JSON or util.inspect", () => {
    fc.assert(
      fc.property(panArb, (pan) => {
        const digits = pan.revealDigits();
        const renderings = [
          String(pan),
          `${pan}`,
          JSON.stringify(pan),
          JSON.stringify({ card: { pan } }),
          JSON.stringify({ ...pan }),
          inspect(pan),
          inspect({ nested: [pan] }, { depth: 10 }),
          inspect(pan, { customInspect: false, showHidden: true }),
        ];
        for (const text of renderings) expect(text).not.toContain(digits);
        expect(String(pan)).toBe(pan.masked);
        expect(JSON.stringify(pan)).toBe(JSON.stringify(pan.masked));
        expect(inspect(pan)).toBe(pan.masked);
      }),
    );
  });
});
