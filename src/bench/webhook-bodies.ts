import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { SecretBytes } from "../crypto/secret.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import { signStripeWebhook, stripeSigningSecret } from "../webhooks/signatures/stripe.js";
import { DEFAULT_TOLERANCE_SECONDS } from "../webhooks/signatures/unix-time.js";
import { HttpsJsonClient } from "./https-json.js";
import type { BodySource, WrittenBodies } from "./request-bodies.js";

/** The header each `lines` line carries before its tab (see the `lines` workload). */
export const WEBHOOK_LINE_HEADER = "Stripe-Signature";
/** In an intake answer: this request queued the event (a replay says `"duplicate":true`). */
export const QUEUED_MATCH = '"duplicate":false';

/** Lines written per stream write: large writes, little waiting on the stream. */
const LINES_PER_WRITE = 512;

/**
 * A `charge.succeeded` event as Stripe sends it, cut to the fields a payment platform reads
 * (about 1 KB; Stripe's full charge object is a few KB). No card number: only the brand, the last
 * four digits and the expiry, as Stripe's own events carry, so the intake's card-number refusal
 * scans it and lets it through. Ids are base-36, no long digit runs.
 */
export function stripeEventBody(eventId: string, createdSeconds: number): string {
  const charge = `ch_${eventId.slice(4)}`;
  return JSON.stringify({
    id: eventId,
    object: "event",
    api_version: "2024-06-20",
    created: createdSeconds,
    livemode: false,
    pending_webhooks: 1,
    request: { id: `req_${eventId.slice(-12)}`, idempotency_key: `order-${eventId.slice(-8)}` },
    type: "charge.succeeded",
    data: {
      object: {
        id: charge,
        object: "charge",
        amount: 1000,
        amount_captured: 1000,
        amount_refunded: 0,
        balance_transaction: `txn_${eventId.slice(4)}`,
        billing_details: {
          address: {
            city: "Berlin",
            country: "DE",
            line1: "Example Street 1",
            postal_code: "10115",
          },
          email: "buyer@example.com",
          name: "Jenny Rosen",
        },
        captured: true,
        created: createdSeconds,
        currency: "usd",
        customer: "cus_bench",
        description: "Order from shop.example",
        livemode: false,
        metadata: { order_id: `order-${eventId.slice(-8)}` },
        paid: true,
        payment_intent: `pi_${eventId.slice(4)}`,
        payment_method: `pm_${eventId.slice(4)}`,
        payment_method_details: {
          card: {
            brand: "visa",
            checks: { cvc_check: "pass", address_postal_code_check: "pass" },
            country: "US",
            exp_month: 12,
            exp_year: 2030,
            funding: "credit",
            last4: "4242",
            network: "visa",
          },
          type: "card",
        },
        receipt_url: `https://pay.stripe.com/receipts/bench/${charge}`,
        status: "succeeded",
      },
    },
  });
}

/**
 * Lines of the bodies file, each `<Stripe-Signature value>\t<raw body>` for a new event id:
 * `evt_` + a random run tag + a base-36 counter, so no id repeats within a run or across runs.
 */
export class SignedEventLines {
  private next = 0;

  constructor(
    private readonly secret: SecretBytes,
    private readonly clock: Clock = systemClock,
    private readonly runTag: string = randomBytes(6).toString("hex"),
  ) {}

  line(): string {
    const id = `evt_${this.runTag}${(this.next++).toString(36).padStart(8, "0")}`;
    const created = Math.floor(this.clock.now().getTime() / 1000);
    const body = stripeEventBody(id, created);
    const signature = signStripeWebhook(Buffer.from(body, "utf8"), {
      secrets: [this.secret],
      clock: this.clock,
    });
    return `${signature}\t${body}`;
  }
}

/**
 * Signed Stripe events for `POST /v1/webhooks/stripe/{endpoint}`. wrk's Lua has no HMAC, and
 * signatures are good for ±300 s and each event id is queued once (a second delivery of an id is
 * acknowledged as a duplicate and not queued), so the lines are made right before each wrk run,
 * each with a new event id: `<Stripe-Signature value>\t<body>` (printable ASCII around the tab).
 * The signature is the vault's own signer (src/webhooks/signatures/stripe.ts: HMAC-SHA256 over
 * `${t}.${rawBody}`, keyed with the whole `whsec_…` string).
 */
export class WebhookBodies implements BodySource {
  readonly label = "signed webhook events";
  private readonly lines: SignedEventLines;

  private constructor(
    secret: SecretBytes,
    /** The intake path, `/v1/webhooks/stripe/<endpoint id>`. */
    readonly path: string,
    readonly peakEstimate: number,
  ) {
    this.lines = new SignedEventLines(secret);
  }

  /**
   * Registers a Stripe intake endpoint with a new random secret through the API
   * (`POST /v1/webhook-endpoints`, scope webhooks:manage, which the bootstrap key holds).
   */
  static async open(input: {
    vaultUrl: string;
    authorization: string;
    peakEstimate: number;
  }): Promise<WebhookBodies> {
    const secret = `whsec_${randomBytes(24).toString("base64url")}`;
    const client = new HttpsJsonClient(input.vaultUrl, input.authorization);
    try {
      const res = await client.send("POST", "/v1/webhook-endpoints", {
        provider: "stripe",
        description: "bench",
        secret,
      });
      const id = (res.body as { id?: unknown } | undefined)?.id;
      if (res.status !== 201 || typeof id !== "string") {
        throw new Error(`POST /v1/webhook-endpoints: status ${res.status}`);
      }
      const path = `/v1/webhooks/stripe/${id}`;
      return new WebhookBodies(stripeSigningSecret(secret), path, input.peakEstimate);
    } finally {
      client.close();
    }
  }

  async write(file: string, count: number): Promise<WrittenBodies> {
    const started = performance.now();
    // The first line's `t` is at least this late; the vault accepts it for 300 s after.
    const validUntilMs = (Math.floor(Date.now() / 1000) + DEFAULT_TOLERANCE_SECONDS) * 1000;
    const out = createWriteStream(file, { mode: 0o600 });
    try {
      for (let done = 0; done < count; ) {
        const lines: string[] = [];
        for (; lines.length < LINES_PER_WRITE && done < count; done++) {
          lines.push(this.lines.line());
        }
        if (!out.write(`${lines.join("\n")}\n`)) await once(out, "drain");
      }
    } finally {
      const finished = once(out, "finish");
      out.end();
      await finished;
    }
    const seconds = (performance.now() - started) / 1000;
    return { made: count, seconds, workers: 1, validUntilMs };
  }
}
