import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  assertStripeVerifierOptions,
  signStripeWebhook,
  stripeSigningSecret,
  verifyStripeWebhook,
} from "../../../src/webhooks/signatures/stripe.js";
import { clockAt, NOW, PROCESSOR_BODY, reserialized, withOneByteChanged } from "./fixtures.js";

const CURRENT = "whsec_current_5f1c2b7e9a0d4c3e8b6a";
const PREVIOUS = "whsec_previous_0a9b8c7d6e5f4a3b2c1d";
const current = () => stripeSigningSecret(CURRENT);
const previous = () => stripeSigningSecret(PREVIOUS);

function header(body: Buffer, at = NOW, secrets = [current()]): Record<string, string> {
  return { "stripe-signature": signStripeWebhook(body, { secrets, clock: clockAt(at) }) };
}

function verify(
  body: Buffer,
  headers: Record<string, string | string[]>,
  at = NOW,
  secrets = [current()],
) {
  return verifyStripeWebhook(body, headers, { secrets, clock: clockAt(at) });
}

function v1(secret: string, t: number, body: Buffer): string {
  return createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex");
}

describe("Stripe-Signature verification", () => {
  it("accepts a body signed with the endpoint secret, and says which secret matched", () => {
    expect(verify(PROCESSOR_BODY, header(PROCESSOR_BODY))).toEqual({
      ok: true,
      value: { timestamp: NOW, secretIndex: 0 },
    });
  });

  it("signs exactly t=<unix>,v1=HMAC-SHA256(secret, t.body) (computed independently)", () => {
    const expected = `t=${NOW},v1=${v1(CURRENT, NOW, PROCESSOR_BODY)}`;
    expect(header(PROCESSOR_BODY)["stripe-signature"]).toBe(expected);
  });

  it("refuses a signature made with another secret", () => {
    const forged = {
      "stripe-signature": `t=${NOW},v1=${v1("whsec_attacker_guess_0000000", NOW, PROCESSOR_BODY)}`,
    };
    expect(verify(PROCESSOR_BODY, forged)).toEqual({
      ok: false,
      reason: "signature_mismatch",
      header: "stripe-signature",
    });
  });

  it("refuses a body with one byte changed", () => {
    const tampered = withOneByteChanged(PROCESSOR_BODY);
    expect(tampered.equals(PROCESSOR_BODY)).toBe(false);
    expect(verify(tampered, header(PROCESSOR_BODY))).toMatchObject({
      reason: "signature_mismatch",
    });
  });

  it("refuses the same event parsed and re-serialized (verification needs the raw bytes)", () => {
    const again = reserialized(PROCESSOR_BODY);
    expect(again.equals(PROCESSOR_BODY)).toBe(false);
    expect(verify(again, header(PROCESSOR_BODY))).toMatchObject({ reason: "signature_mismatch" });
  });

  it("refuses a body that is not a Buffer (a parsed object or a decoded string)", () => {
    const signed = header(PROCESSOR_BODY);
    const parsed = JSON.parse(PROCESSOR_BODY.toString("utf8")) as unknown as Buffer;
    const text = PROCESSOR_BODY.toString("utf8") as unknown as Buffer;
    expect(verify(parsed, signed)).toEqual({ ok: false, reason: "body_not_raw" });
    expect(verify(text, signed)).toEqual({ ok: false, reason: "body_not_raw" });
  });
});

describe("Stripe timestamp window: 300 s both ways, edges included", () => {
  const signed = header(PROCESSOR_BODY, NOW);

  it.each([
    ["300 s late", NOW + 300, true],
    ["300 s early (signer clock ahead)", NOW - 300, true],
  ])("accepts a signature %s", (_label, at) => {
    expect(verify(PROCESSOR_BODY, signed, at).ok).toBe(true);
  });

  it("accepts up to the last millisecond of second +300", () => {
    const result = verifyStripeWebhook(PROCESSOR_BODY, signed, {
      secrets: [current()],
      clock: clockAt(NOW + 300, 999),
    });
    expect(result.ok).toBe(true);
  });

  it("refuses 301 s late as too old and 301 s early as in the future", () => {
    expect(verify(PROCESSOR_BODY, signed, NOW + 301)).toMatchObject({
      reason: "timestamp_too_old",
    });
    expect(verify(PROCESSOR_BODY, signed, NOW - 301)).toMatchObject({
      reason: "timestamp_in_future",
    });
  });

  it("honours a configured tolerance", () => {
    const opts = { secrets: [current()], clock: clockAt(NOW + 61), toleranceSeconds: 60 };
    expect(verifyStripeWebhook(PROCESSOR_BODY, signed, opts)).toMatchObject({
      reason: "timestamp_too_old",
    });
  });

  it("reports a forged stale request as a mismatch, not as stale", () => {
    const forged = { "stripe-signature": `t=${NOW - 10_000},v1=${"0".repeat(64)}` };
    expect(verify(PROCESSOR_BODY, forged)).toMatchObject({ reason: "signature_mismatch" });
  });
});

describe("Stripe secret rotation", () => {
  it("accepts a header carrying v1 signatures under the old and the new secret", () => {
    const both = header(PROCESSOR_BODY, NOW, [previous(), current()]);
    expect(both["stripe-signature"]?.match(/v1=/g)).toHaveLength(2);
    expect(verify(PROCESSOR_BODY, both, NOW, [current()])).toMatchObject({ ok: true });
    expect(verify(PROCESSOR_BODY, both, NOW, [previous()])).toMatchObject({ ok: true });
  });

  it("accepts either configured secret and reports which one matched", () => {
    const byNew = header(PROCESSOR_BODY, NOW, [current()]);
    const byOld = header(PROCESSOR_BODY, NOW, [previous()]);
    const secrets = () => [previous(), current()];
    expect(verify(PROCESSOR_BODY, byNew, NOW, secrets())).toMatchObject({
      value: { secretIndex: 1 },
    });
    expect(verify(PROCESSOR_BODY, byOld, NOW, secrets())).toMatchObject({
      value: { secretIndex: 0 },
    });
  });

  it("refuses once the old secret is dropped from the configuration", () => {
    const byOld = header(PROCESSOR_BODY, NOW, [previous()]);
    expect(verify(PROCESSOR_BODY, byOld, NOW, [current()])).toMatchObject({
      reason: "signature_mismatch",
    });
  });

  it("accepts when the valid v1 is not the first one, and ignores v0 and unknown schemes", () => {
    const good = v1(CURRENT, NOW, PROCESSOR_BODY);
    const value = `t=${NOW},v0=${"a".repeat(64)},v1=${"b".repeat(64)},v1=${good},v9=x`;
    expect(verify(PROCESSOR_BODY, { "stripe-signature": value })).toMatchObject({ ok: true });
  });

  it("refuses a header with only a v0 signature", () => {
    const value = `t=${NOW},v0=${v1(CURRENT, NOW, PROCESSOR_BODY)}`;
    expect(verify(PROCESSOR_BODY, { "stripe-signature": value })).toMatchObject({
      reason: "no_supported_signature",
    });
  });
});

describe("Stripe-Signature header parsing", () => {
  const good = v1(CURRENT, NOW, PROCESSOR_BODY);

  it("refuses a missing or empty header", () => {
    expect(verify(PROCESSOR_BODY, {})).toEqual({
      ok: false,
      reason: "missing_header",
      header: "stripe-signature",
    });
    expect(verify(PROCESSOR_BODY, { "stripe-signature": "" })).toMatchObject({
      reason: "missing_header",
    });
  });

  it("refuses a header sent twice, as an array or joined by Node with ', '", () => {
    const one = `t=${NOW},v1=${good}`;
    expect(verify(PROCESSOR_BODY, { "stripe-signature": [one, one] })).toMatchObject({
      reason: "duplicate_header",
    });
    expect(verify(PROCESSOR_BODY, { "stripe-signature": `${one}, ${one}` })).toMatchObject({
      reason: "malformed_header",
    });
  });

  it.each([
    ["no t", `v1=${good}`],
    ["two t", `t=${NOW},t=${NOW},v1=${good}`],
    ["two t, second one late", `t=${NOW},v1=${good},t=1`],
    ["empty t", `t=,v1=${good}`],
    ["item without =", `t=${NOW},v1`],
    ["trailing comma", `t=${NOW},v1=${good},`],
    ["space after comma", `t=${NOW}, v1=${good}`],
    ["upper-case key", `T=${NOW},v1=${good}`],
    ["v1 not hex", `t=${NOW},v1=${"z".repeat(64)}`],
    ["v1 upper-case hex", `t=${NOW},v1=${good.toUpperCase()}`],
    ["v1 one hex digit short", `t=${NOW},v1=${good.slice(1)}`],
    ["v1 one hex digit long", `t=${NOW},v1=${good}0`],
  ])("refuses %s as malformed", (_label, value) => {
    expect(verify(PROCESSOR_BODY, { "stripe-signature": value })).toMatchObject({
      ok: false,
      reason: "malformed_header",
    });
  });

  it.each([
    ["not a number", "abc"],
    ["negative", "-5"],
    ["fractional", `${NOW}.5`],
    ["hexadecimal", "0x10"],
    ["absurdly long", "9".repeat(13)],
  ])("refuses a t that is %s", (_label, t) => {
    expect(verify(PROCESSOR_BODY, { "stripe-signature": `t=${t},v1=${good}` })).toMatchObject({
      reason: "malformed_timestamp",
    });
  });

  it("refuses an oversized header before parsing it", () => {
    const long = `t=${NOW},v1=${good},v0=${"a".repeat(2048)}`;
    expect(verify(PROCESSOR_BODY, { "stripe-signature": long })).toMatchObject({
      reason: "header_too_large",
    });
    const many = [`t=${NOW}`, ...Array.from({ length: 16 }, () => `v1=${good}`)].join(",");
    expect(many.length).toBeLessThan(2048);
    expect(verify(PROCESSOR_BODY, { "stripe-signature": many })).toMatchObject({
      reason: "header_too_large",
    });
  });
});

describe("Stripe secrets and signer", () => {
  it("refuses secrets without whsec_ or too short, without repeating them", () => {
    for (const bad of ["sk_live_abcdefghijklmnopqrstu", "whsec_short"]) {
      expect(() => stripeSigningSecret(bad)).toThrow(TypeError);
      expect(() => stripeSigningSecret(bad)).not.toThrow(bad);
    }
  });

  it("never puts the secret or the body in a rejection", () => {
    const result = verify(withOneByteChanged(PROCESSOR_BODY), header(PROCESSOR_BODY));
    const text = JSON.stringify(result);
    expect(result.ok).toBe(false);
    expect(text).not.toContain(CURRENT);
    expect(text).not.toContain("evt_");
  });

  it("refuses to sign with no secret or a non-Buffer body", () => {
    expect(() => signStripeWebhook(PROCESSOR_BODY, { secrets: [], clock: clockAt(NOW) })).toThrow(
      RangeError,
    );
    const text = "{}" as unknown as Buffer;
    expect(() => signStripeWebhook(text, { secrets: [current()], clock: clockAt(NOW) })).toThrow(
      TypeError,
    );
  });

  it("validates verifier options at configuration time", () => {
    expect(() => assertStripeVerifierOptions({ secrets: [], clock: clockAt(NOW) })).toThrow();
    const opts = { secrets: [current()], clock: clockAt(NOW), toleranceSeconds: 0 };
    expect(() => assertStripeVerifierOptions(opts)).toThrow(RangeError);
    expect(() =>
      assertStripeVerifierOptions({ secrets: [current()], clock: clockAt(NOW) }),
    ).not.toThrow();
  });
});
