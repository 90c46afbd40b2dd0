import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Pan } from "../../../src/domain/pan.js";
import { httpStatusOf, OUTCOME_TABLE, outcomeFor } from "../../../src/sandbox/outcome-table.js";
import { panDigitsArb, testCards } from "../domain/test-cards.js";

const TABLE_NUMBERS = new Set(OUTCOME_TABLE.map((row) => row.number));

describe("sandbox outcome table", () => {
  it("lists each number once, and every number is a valid Visa test PAN", () => {
    expect(TABLE_NUMBERS.size).toBe(OUTCOME_TABLE.length);
    for (const row of OUTCOME_TABLE) {
      const pan = Pan.parse(row.number);
      expect(pan.ok, row.number.slice(-4)).toBe(true);
      expect(pan.ok && pan.value.brand).toBe("visa");
    }
  });

  it("answers the documented outcome for each row", () => {
    const byCode = Object.fromEntries(
      OUTCOME_TABLE.map((row) => [row.number, outcomeFor(row.number, false)]),
    );
    expect(byCode["4000000000000002"]).toMatchObject({
      code: "card_declined",
      declineCode: "generic_decline",
    });
    expect(byCode["4000000000009995"]).toMatchObject({
      code: "card_declined",
      declineCode: "insufficient_funds",
    });
    expect(byCode["4000000000009987"]).toMatchObject({
      code: "card_declined",
      declineCode: "lost_card",
    });
    expect(byCode["4000000000000069"]).toMatchObject({ kind: "declined", code: "expired_card" });
    expect(byCode["4000000000000127"]).toMatchObject({ kind: "declined", code: "incorrect_cvc" });
    expect(byCode["4000000000000119"]).toMatchObject({ kind: "error", code: "processing_error" });
  });

  it("approves every published valid test card (none of them is in the table)", () => {
    for (const card of testCards.valid) {
      expect(TABLE_NUMBERS.has(card.number)).toBe(false);
      expect(outcomeFor(card.number, false)).toEqual({ kind: "approved" });
    }
  });

  it("approves any other valid number, and declines any card past its expiry month", () => {
    fc.assert(
      fc.property(panDigitsArb, (digits) => {
        fc.pre(!TABLE_NUMBERS.has(digits));
        expect(outcomeFor(digits, false)).toEqual({ kind: "approved" });
        expect(outcomeFor(digits, true)).toMatchObject({ kind: "declined", code: "expired_card" });
      }),
    );
    for (const row of OUTCOME_TABLE) {
      expect(outcomeFor(row.number, true)).toMatchObject({ code: "expired_card" });
    }
  });

  it("maps approved to 200, a decline to 402 and a processing error to 500", () => {
    expect(httpStatusOf({ kind: "approved" })).toBe(200);
    expect(httpStatusOf(outcomeFor("4000000000000002", false))).toBe(402);
    expect(httpStatusOf(outcomeFor("4000000000000119", false))).toBe(500);
  });
});
