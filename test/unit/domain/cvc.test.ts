import { inspect } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCvc } from "../../../src/domain/cvc.js";
import type { Brand } from "../../../src/domain/iin-table.js";
import { digitsArb } from "./test-cards.js";

function accepts(input: unknown, brand: Brand): boolean {
  return parseCvc(input, brand).ok;
}

describe("parseCvc", () => {
  it("takes 3 digits for most brands and 4 for Amex", () => {
    for (const brand of [
      "visa",
      "mastercard",
      "discover",
      "diners",
      "jcb",
      "unionpay",
      "mir",
    ] as const) {
      expect(accepts("123", brand), brand).toBe(true);
      expect(accepts("1234", brand), brand).toBe(false);
    }
    expect(accepts("1234", "amex")).toBe(true);
    expect(accepts("123", "amex")).toBe(false);
  });

  it("takes 3 or 4 digits when the brand is unknown", () => {
    expect(accepts("123", "unknown")).toBe(true);
    expect(accepts("1234", "unknown")).toBe(true);
    expect(accepts("12", "unknown")).toBe(false);
    expect(accepts("12345", "unknown")).toBe(false);
  });

  it.each([123, "12a", " 123", "123 ", "１２３", "", null, undefined, ["123"]])(
    "rejects %j with CVC_INVALID on card.cvc",
    (input) => {
      expect(parseCvc(input, "visa")).toEqual({
        ok: false,
        issues: [{ field: "card.cvc", code: "CVC_INVALID", message: expect.any(String) }],
      });
    },
  );

  it("keeps leading zeros and uses the given field path", () => {
    const parsed = parseCvc("012", "visa");
    expect(parsed.ok && parsed.value.revealDigits()).toBe("012");
    const failed = parseCvc("1", "visa", "cards/0/card.cvc");
    expect(failed.ok ? undefined : failed.issues[0]?.field).toBe("cards/0/card.cvc");
  });

  it("renders as *** everywhere and never repeats the input in a message", () => {
    fc.assert(
      fc.property(digitsArb(3, 4), (digits) => {
        const parsed = parseCvc(digits, "unknown");
        if (!parsed.ok) throw new Error("expected a valid CVC");
        const cvc = parsed.value;
        expect(cvc.revealDigits()).toBe(digits);
        expect(cvc.length).toBe(digits.length);
        for (const text of [String(cvc), JSON.stringify({ cvc }), inspect({ cvc }), `${cvc}`]) {
          expect(text).not.toContain(digits);
        }
        expect(inspect(cvc, { customInspect: false, showHidden: true })).not.toContain(digits);
        expect(String(cvc)).toBe("***");
        const rejected = parseCvc(digits, digits.length === 3 ? "amex" : "visa");
        expect(rejected.ok ? "" : rejected.issues[0]?.message).not.toContain(digits);
      }),
    );
  });
});
