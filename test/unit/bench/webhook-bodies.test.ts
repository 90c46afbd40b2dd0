import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { SignedEventLines, stripeEventBody } from "../../../src/bench/webhook-bodies.js";
import {
  containsCardNumber,
  eventMetadata,
} from "../../../src/services/webhooks/event-metadata.js";
import { stripeSigningSecret } from "../../../src/webhooks/signatures/stripe.js";

const SECRET = "whsec_bench_lines_5c1e9a7d3f2b8e40";
const OTHER_SECRET = "whsec_another_secret_0123456789ab";
const NOW_SECONDS = 1_790_000_000;
const NOW_MS = NOW_SECONDS * 1000;
const clock = { now: () => new Date(NOW_SECONDS * 1000) };

function split(line: string): { header: string; body: string } {
  const tab = line.indexOf("\t");
  return { header: line.slice(0, tab), body: line.slice(tab + 1) };
}

describe("the webhook-intake bench's signed event lines", () => {
  const lines = new SignedEventLines(stripeSigningSecret(SECRET), clock, "a1b2c3");
  const made = Array.from({ length: 500 }, () => lines.line());

  it("are one tab between a Stripe-Signature value and the body, printable ASCII otherwise", () => {
    for (const line of made) {
      expect(line.split("\t")).toHaveLength(2);
      expect(line).toMatch(/^[\x20-\x7e]+\t[\x20-\x7e]+$/);
      expect(split(line).header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    }
  });

  it("verify with the official Stripe SDK under the endpoint secret, and not under another", () => {
    for (const line of made.slice(0, 50)) {
      const { header, body } = split(line);
      // receivedAt (ms): the SDK checks the 300 s tolerance against our fixed clock.
      const event = Stripe.webhooks.constructEvent(body, header, SECRET, 300, undefined, NOW_MS);
      expect(event.type).toBe("charge.succeeded");
    }
    const { header, body } = split(made[0] as string);
    expect(() =>
      Stripe.webhooks.constructEvent(body, header, OTHER_SECRET, 300, undefined, NOW_MS),
    ).toThrow(/signature/i);
    expect(() =>
      Stripe.webhooks.constructEvent(body, header, SECRET, 300, undefined, NOW_MS + 301_000),
    ).toThrow(/tolerance/i);
  });

  it("carry a new event id each (a replay would be a duplicate, not queued)", () => {
    const ids = made.map((line) => (JSON.parse(split(line).body) as { id: string }).id);
    expect(new Set(ids).size).toBe(made.length);
    const other = new SignedEventLines(stripeSigningSecret(SECRET), clock);
    expect((JSON.parse(split(other.line()).body) as { id: string }).id).not.toBe(ids[0]);
  });

  it("pass the intake's card-number refusal and give it the event's id and type", () => {
    for (const line of made) expect(containsCardNumber(split(line).body)).toBe(false);
    const { body } = split(made[7] as string);
    const meta = eventMetadata("stripe", {}, Buffer.from(body), undefined);
    expect(meta.providerEventId).toBe((JSON.parse(body) as { id: string }).id);
    expect(meta.eventType).toBe("charge.succeeded");
    expect(meta.metadata["data.object.amount"]).toBe(1000);
  });

  it("is a realistic size (a cut-down charge.succeeded, not a stub)", () => {
    const body = stripeEventBody("evt_0123456789abcdef", NOW_SECONDS);
    expect(Buffer.byteLength(body)).toBeGreaterThan(900);
    expect(Buffer.byteLength(body)).toBeLessThan(2000);
  });
});
