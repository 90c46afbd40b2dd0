import { describe, expect, it } from "vitest";
import {
  isEventType,
  isSubscription,
  PAYMENT_EVENT_EXAMPLES,
  paymentEventType,
  subscribes,
  TOKEN_EVENT_TYPES,
} from "../../../src/services/webhooks/outbound/event-catalogue.js";

describe("event catalogue", () => {
  it("knows the token types and well-formed payment types, nothing else", () => {
    for (const type of [...TOKEN_EVENT_TYPES, ...PAYMENT_EVENT_EXAMPLES]) {
      expect(isEventType(type), type).toBe(true);
    }
    for (const type of [
      "token.read",
      "token.created.extra",
      "payment",
      "payment.",
      "payment..x",
      "payment.Charge.succeeded",
      "payment.charge succeeded",
      `payment.${"a".repeat(41)}`,
      "payment.a.b.c.d.e.f.g",
      "*",
      "payment.*",
    ]) {
      expect(isEventType(type), type).toBe(false);
    }
  });

  it("accepts exact types, payment.* and * as subscriptions", () => {
    expect(isSubscription("*")).toBe(true);
    expect(isSubscription("payment.*")).toBe(true);
    expect(isSubscription("token.created")).toBe(true);
    expect(isSubscription("token.*")).toBe(false);
    expect(isSubscription("")).toBe(false);
  });

  it("matches exactly, by the payment family, or everything", () => {
    expect(subscribes(["token.created"], "token.created")).toBe(true);
    expect(subscribes(["token.created"], "token.deleted")).toBe(false);
    expect(subscribes(["payment.*"], "payment.charge.succeeded")).toBe(true);
    expect(subscribes(["payment.*"], "token.created")).toBe(false);
    expect(subscribes(["payment.charge.failed"], "payment.charge.succeeded")).toBe(false);
    expect(subscribes(["*"], "token.deleted")).toBe(true);
    expect(subscribes([], "token.deleted")).toBe(false);
  });

  it("maps provider types into the payment family", () => {
    expect(paymentEventType("charge.succeeded")).toBe("payment.charge.succeeded");
    expect(paymentEventType("PAYMENT.CAPTURE.COMPLETED")).toBe("payment.payment.capture.completed");
    expect(paymentEventType("invoice-paid")).toBe("payment.invoice_paid");
    expect(paymentEventType("")).toBeUndefined();
    expect(paymentEventType("a..b")).toBeUndefined();
  });
});
