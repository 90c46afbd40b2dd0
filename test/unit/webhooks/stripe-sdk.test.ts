import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { systemClock } from "../../../src/services/clock.js";
import {
  signStripeWebhook,
  stripeSigningSecret,
  verifyStripeWebhook,
} from "../../../src/webhooks/signatures/stripe.js";
import { clockAt, NOW, PROCESSOR_BODY, reserialized } from "./fixtures.js";

/**
 * Independent client (issue 6, point 5): the official Stripe Node SDK signs and verifies with
 * its own code, so a shared misunderstanding of the format cannot pass on both sides.
 */
const SECRET = "whsec_sdk_interop_3d9f1a7c5e2b8d4f";
const OTHER = "whsec_sdk_interop_rotated_0c4e8a2f";
const payload = PROCESSOR_BODY.toString("utf8");

describe("Stripe SDK → our verifier", () => {
  it("verifies a header from stripe.webhooks.generateTestHeaderString", () => {
    const sdkHeader = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRET,
      timestamp: NOW,
    });
    const result = verifyStripeWebhook(
      PROCESSOR_BODY,
      { "stripe-signature": sdkHeader },
      { secrets: [stripeSigningSecret(SECRET)], clock: clockAt(NOW) },
    );
    expect(result).toEqual({ ok: true, value: { timestamp: NOW, secretIndex: 0 } });
  });

  it("refuses the SDK's header for another secret, a stale one, or the re-serialized body", () => {
    const opts = { secrets: [stripeSigningSecret(SECRET)], clock: clockAt(NOW) };
    const wrong = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: OTHER,
      timestamp: NOW,
    });
    expect(verifyStripeWebhook(PROCESSOR_BODY, { "stripe-signature": wrong }, opts)).toMatchObject({
      reason: "signature_mismatch",
    });
    const stale = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRET,
      timestamp: NOW - 301,
    });
    expect(verifyStripeWebhook(PROCESSOR_BODY, { "stripe-signature": stale }, opts)).toMatchObject({
      reason: "timestamp_too_old",
    });
    const good = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRET,
      timestamp: NOW,
    });
    const again = reserialized(PROCESSOR_BODY);
    expect(verifyStripeWebhook(again, { "stripe-signature": good }, opts)).toMatchObject({
      reason: "signature_mismatch",
    });
  });
});

describe("our signer → Stripe SDK", () => {
  it("produces a header stripe.webhooks.constructEvent accepts", () => {
    const header = signStripeWebhook(PROCESSOR_BODY, {
      secrets: [stripeSigningSecret(SECRET)],
      clock: systemClock,
    });
    const event = Stripe.webhooks.constructEvent(PROCESSOR_BODY, header, SECRET);
    expect(event.id).toBe("evt_1NG8Du2eZvKYlo2CUI79vXWy");
  });

  it("signs under two secrets so the SDK accepts either during rotation", () => {
    const header = signStripeWebhook(PROCESSOR_BODY, {
      secrets: [stripeSigningSecret(OTHER), stripeSigningSecret(SECRET)],
      clock: systemClock,
    });
    expect(Stripe.webhooks.constructEvent(PROCESSOR_BODY, header, SECRET).type).toBe(
      "payment_intent.succeeded",
    );
    expect(Stripe.webhooks.constructEvent(PROCESSOR_BODY, header, OTHER).object).toBe("event");
  });

  it("is refused by the SDK for a changed body (the SDK really checks)", () => {
    const header = signStripeWebhook(PROCESSOR_BODY, {
      secrets: [stripeSigningSecret(SECRET)],
      clock: systemClock,
    });
    expect(() =>
      Stripe.webhooks.constructEvent(reserialized(PROCESSOR_BODY), header, SECRET),
    ).toThrow(/signature/i);
  });

  it("agrees with the SDK on the window: our header 301 s old is refused by it too", () => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const header = signStripeWebhook(PROCESSOR_BODY, {
      secrets: [stripeSigningSecret(SECRET)],
      clock: clockAt(nowSeconds - 301),
    });
    expect(() => Stripe.webhooks.constructEvent(PROCESSOR_BODY, header, SECRET, 300)).toThrow(
      /tolerance/i,
    );
  });
});
