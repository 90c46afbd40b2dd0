import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SecretBytes } from "../../../src/crypto/secret.js";
import { readSingleHeader } from "../../../src/webhooks/signatures/header-reader.js";
import { matchingSecretIndex } from "../../../src/webhooks/signatures/mac-match.js";
import {
  signStandardWebhook,
  standardWebhookSecret,
  verifyStandardWebhook,
} from "../../../src/webhooks/signatures/standard-webhooks.js";
import {
  signStripeWebhook,
  stripeSigningSecret,
  verifyStripeWebhook,
} from "../../../src/webhooks/signatures/stripe.js";
import { checkTolerance, parseUnixSeconds } from "../../../src/webhooks/signatures/unix-time.js";
import { clockAt, NOW } from "./fixtures.js";

describe("readSingleHeader", () => {
  it("returns one value within the cap and names the header on refusal", () => {
    expect(readSingleHeader({ "x-a": "v" }, "x-a", 1)).toEqual({ ok: true, value: "v" });
    expect(readSingleHeader({}, "x-a", 1)).toEqual({
      ok: false,
      reason: "missing_header",
      header: "x-a",
    });
    expect(readSingleHeader({ "x-a": [] }, "x-a", 1)).toMatchObject({ reason: "missing_header" });
    expect(readSingleHeader({ "x-a": ["v", "w"] }, "x-a", 1)).toMatchObject({
      reason: "duplicate_header",
    });
    expect(readSingleHeader({ "x-a": "vw" }, "x-a", 1)).toMatchObject({
      reason: "header_too_large",
    });
  });
});

describe("unix seconds and the window", () => {
  it("parses only plain decimal digits, at most 12", () => {
    expect(parseUnixSeconds("0")).toBe(0);
    expect(parseUnixSeconds("999999999999")).toBe(999_999_999_999);
    for (const bad of ["", " 1", "1 ", "+1", "-1", "1e3", "0x1", "1.0", "9999999999999", "١٢"]) {
      expect(parseUnixSeconds(bad), bad).toBeUndefined();
    }
  });

  it("includes both edges and nothing beyond", () => {
    expect(checkTolerance(1000, 1300, 300, "h")).toBeUndefined();
    expect(checkTolerance(1000, 700, 300, "h")).toBeUndefined();
    expect(checkTolerance(1000, 1301, 300, "h")).toMatchObject({ reason: "timestamp_too_old" });
    expect(checkTolerance(1000, 699, 300, "h")).toMatchObject({ reason: "timestamp_in_future" });
  });
});

describe("matchingSecretIndex", () => {
  it("finds nothing with no secrets or no signatures", () => {
    const key = SecretBytes.from(Buffer.alloc(32, 1));
    expect(matchingSecretIndex("sha256", [], [Buffer.from("x")], [Buffer.alloc(32)])).toBe(-1);
    expect(matchingSecretIndex("sha256", [key], [Buffer.from("x")], [])).toBe(-1);
  });
});

describe("round trips on arbitrary bytes (property-based)", () => {
  const stripeSecret = "whsec_property_secret_0123456789";
  const standardSecret = `whsec_${Buffer.alloc(32, 3).toString("base64")}`;

  it("Stripe: what we sign verifies; any single changed byte does not", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.nat(), (bytes, at) => {
        const body = Buffer.from(bytes);
        const clock = clockAt(NOW);
        const secrets = [stripeSigningSecret(stripeSecret)];
        const headers = { "stripe-signature": signStripeWebhook(body, { secrets, clock }) };
        expect(verifyStripeWebhook(body, headers, { secrets, clock }).ok).toBe(true);
        const changed = Buffer.from(body);
        const i = at % changed.length;
        changed[i] = changed[i]! ^ 0x80;
        expect(verifyStripeWebhook(changed, headers, { secrets, clock }).ok).toBe(false);
      }),
    );
  });

  it("Standard Webhooks: what we sign verifies; any single changed byte does not", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.nat(), (bytes, at) => {
        const body = Buffer.from(bytes);
        const clock = clockAt(NOW);
        const secrets = [standardWebhookSecret(standardSecret)];
        const headers = signStandardWebhook(body, { id: "msg_prop", secrets, clock });
        expect(verifyStandardWebhook(body, headers, { secrets, clock }).ok).toBe(true);
        const changed = Buffer.from(body);
        const i = at % changed.length;
        changed[i] = changed[i]! ^ 0x01;
        expect(verifyStandardWebhook(changed, headers, { secrets, clock }).ok).toBe(false);
      }),
    );
  });

  it("Stripe: no header string of printable ASCII crashes the parser", () => {
    const secrets = [stripeSigningSecret(stripeSecret)];
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (value) => {
        const result = verifyStripeWebhook(
          Buffer.from("{}"),
          { "stripe-signature": value },
          { secrets, clock: clockAt(NOW) },
        );
        expect(result.ok).toBe(false);
      }),
    );
  });
});
