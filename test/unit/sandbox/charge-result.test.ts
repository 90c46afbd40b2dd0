import { describe, expect, it } from "vitest";
import { findPanLikeRuns } from "../../../src/domain/pan-scan.js";
import { parseChargeRequest } from "../../../src/sandbox/charge-request.js";
import {
  chargeBody,
  chargeEvent,
  chargeOf,
  failureBody,
} from "../../../src/sandbox/charge-result.js";
import { outcomeFor } from "../../../src/sandbox/outcome-table.js";

const NOW = new Date("2026-06-15T12:00:00Z");
const IDS = { chargeId: "ch_test", authorizationId: "auth_test" };

function chargeFor(number: string) {
  const parsed = parseChargeRequest(
    { amount: 1999, currency: "GBP", card: { number, exp_month: 3, exp_year: 2029, cvc: "987" } },
    NOW,
  );
  if (!parsed.ok) throw new Error("fixture rejected");
  return chargeOf(parsed.value, outcomeFor(number, false), IDS, NOW);
}

describe("sandbox charge bodies", () => {
  it("an approved charge: Stripe-like charge object with an authorization id, no PAN or CVC", () => {
    const body = chargeBody(chargeFor("5555555555554444"));
    expect(body).toEqual({
      id: "ch_test",
      object: "charge",
      created: NOW.getTime() / 1000,
      livemode: false,
      status: "succeeded",
      paid: true,
      authorization_id: "auth_test",
      amount: 1999,
      currency: "gbp",
      card: { brand: "mastercard", last4: "4444", exp_month: 3, exp_year: 2029 },
    });
  });

  it("a decline: card_error with the decline code and the charge id, no authorization", () => {
    const charge = chargeFor("4000000000009995");
    expect(charge.authorizationId).toBeUndefined();
    expect(failureBody(charge)).toEqual({
      error: {
        type: "card_error",
        code: "card_declined",
        decline_code: "insufficient_funds",
        message: "Your card has insufficient funds.",
        charge: "ch_test",
      },
    });
    expect(failureBody(chargeFor("4000000000000119"))).toMatchObject({
      error: { type: "api_error", code: "processing_error" },
    });
  });

  it("events carry metadata only: no PAN-like run, no CVC, failure code on charge.failed", () => {
    const succeeded = chargeEvent(chargeFor("4242424242424242"), "evt_1");
    expect(succeeded).toMatchObject({
      id: "evt_1",
      object: "event",
      type: "charge.succeeded",
      data: {
        object: {
          id: "ch_test",
          status: "succeeded",
          authorization_id: "auth_test",
          card: { brand: "visa", last4: "4242" },
        },
      },
    });
    const failed = chargeEvent(chargeFor("4000000000000002"), "evt_2");
    expect(failed.type).toBe("charge.failed");
    expect(failed.data.object).toMatchObject({ status: "failed", failure_code: "card_declined" });
    expect(failed.data.object).not.toHaveProperty("authorization_id");
    for (const event of [succeeded, failed]) {
      const text = JSON.stringify(event);
      expect(findPanLikeRuns(text)).toEqual([]);
      expect(text).not.toContain("987");
      expect(Object.keys(event.data.object).sort()).toEqual(
        expect.arrayContaining(["amount", "card", "currency", "id", "object", "status"]),
      );
    }
  });
});
