import { request } from "node:https";
import type { Logger } from "pino";
import type { SecretBytes } from "../crypto/secret.js";
import type { Clock } from "../services/clock.js";
import { signStripeWebhook, stripeSigningSecret } from "../webhooks/signatures/stripe.js";

/**
 * Sends the sandbox's payment events to the vault as Stripe webhooks
 * (docs/sandbox-processor.md, "Webhooks"): `POST <vault>/v1/webhooks/stripe/<endpoint id>` with
 * `Stripe-Signature: t=…,v1=…` (HMAC-SHA256 over `t.rawBody`, the vault's own signer). Each
 * attempt is signed afresh, so a retry is never refused as stale. Delivery is at least once:
 * a failed or non-2xx attempt is retried with exponential backoff, as Stripe does.
 */
export interface VaultWebhookTarget {
  /** The vault's base URL, `https://…` (the sandbox never sends a webhook in clear). */
  readonly url: string;
  /** The vault's Stripe intake endpoint (`whe_…`). */
  readonly endpointId: string;
  /** That endpoint's signing secret, `whsec_…`. */
  readonly secret: string;
  /** PEM trust anchors for the vault's certificate (`<data dir>/tls/localhost.crt`); default: system roots. */
  readonly ca?: string;
}

export interface WebhookRetry {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** The wait before the second attempt; it doubles for each one after. */
  readonly baseDelayMs: number;
  /** One attempt's limit, connect to last byte. */
  readonly timeoutMs: number;
}

export const DEFAULT_WEBHOOK_RETRY: WebhookRetry = {
  attempts: 5,
  baseDelayMs: 500,
  timeoutMs: 10_000,
};

/** What became of one event, for tests and the demo. */
export interface WebhookDelivery {
  readonly eventId: string;
  readonly type: string;
  readonly attempts: number;
  readonly delivered: boolean;
  /** The vault's last HTTP status, if it answered at all. */
  readonly lastStatus: number | undefined;
}

const ENDPOINT_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Throws a TypeError naming what is wrong; never repeats the secret. */
function intakeUrl(target: VaultWebhookTarget): URL {
  let base: URL;
  try {
    base = new URL(target.url);
  } catch {
    throw new TypeError("the vault URL is not a URL");
  }
  if (base.protocol !== "https:" || base.username !== "" || base.password !== "") {
    throw new TypeError("the vault URL must be https:// without credentials");
  }
  if (!ENDPOINT_ID.test(target.endpointId)) {
    throw new TypeError("the webhook endpoint id must be 1-128 letters, digits, _ or -");
  }
  const path = `${base.pathname.replace(/\/+$/, "")}/v1/webhooks/stripe/${target.endpointId}`;
  return new URL(path, base.origin);
}

type Attempt = { readonly status: number } | { readonly failure: string };

function postOnce(
  url: URL,
  body: Buffer,
  signature: string,
  ca: string | undefined,
  timeoutMs: number,
): Promise<Attempt> {
  return new Promise((resolve) => {
    const req = request(url, {
      method: "POST",
      agent: false,
      // Explicit, so NODE_TLS_REJECT_UNAUTHORIZED=0 cannot switch verification off (PCI DSS 4.2.1).
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      ...(ca === undefined ? {} : { ca }),
      timeout: timeoutMs,
      headers: {
        "content-type": "application/json",
        "content-length": String(body.length),
        "stripe-signature": signature,
        "user-agent": "payvault-sandbox-processor",
      },
    });
    const deadline = setTimeout(() => req.destroy(new Error("timeout")), timeoutMs);
    const settle = (attempt: Attempt) => {
      clearTimeout(deadline);
      resolve(attempt);
    };
    req.on("timeout", () =>
      req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })),
    );
    req.on("error", (err: NodeJS.ErrnoException) => settle({ failure: err.code ?? err.message }));
    req.on("response", (res) => {
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_RESPONSE_BYTES) res.destroy();
      });
      res.on("close", () => settle({ status: res.statusCode ?? 0 }));
    });
    req.end(body);
  });
}

export class WebhookSender {
  readonly #url: URL;
  readonly #secret: SecretBytes;
  readonly #ca: string | undefined;
  readonly #retry: WebhookRetry;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #pending = new Set<Promise<void>>();
  readonly #waits = new Set<() => void>();
  readonly #deliveries: WebhookDelivery[] = [];
  #closed = false;

  constructor(
    target: VaultWebhookTarget,
    options: { retry: WebhookRetry; clock: Clock; logger: Logger },
  ) {
    this.#url = intakeUrl(target);
    this.#secret = stripeSigningSecret(target.secret);
    this.#ca = target.ca;
    this.#retry = options.retry;
    this.#clock = options.clock;
    this.#log = options.logger;
  }

  get url(): string {
    return this.#url.href;
  }

  get deliveries(): readonly WebhookDelivery[] {
    return this.#deliveries;
  }

  /** Queues the event and returns at once: a charge never waits on its webhook. */
  send(event: { readonly id: string; readonly type: string }): void {
    if (this.#closed) return;
    const body = Buffer.from(JSON.stringify(event), "utf8");
    const run = this.#deliver(event.id, event.type, body).finally(() => this.#pending.delete(run));
    this.#pending.add(run);
  }

  /** Resolves once every event sent so far is delivered or given up on. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Stops the backoff waits (no attempt after this) and lets running attempts finish. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waits) wake();
    await this.idle();
  }

  async #deliver(eventId: string, type: string, body: Buffer): Promise<void> {
    let attempts = 0;
    let lastStatus: number | undefined;
    while (attempts < this.#retry.attempts && !this.#closed) {
      if (attempts > 0) await this.#sleep(this.#retry.baseDelayMs * 2 ** (attempts - 1));
      if (this.#closed) break;
      attempts += 1;
      const signature = signStripeWebhook(body, { secrets: [this.#secret], clock: this.#clock });
      const result = await postOnce(this.#url, body, signature, this.#ca, this.#retry.timeoutMs);
      lastStatus = "status" in result ? result.status : lastStatus;
      const delivered = "status" in result && result.status >= 200 && result.status < 300;
      const fields = { event: eventId, type, attempt: attempts, ...result };
      if (delivered) {
        this.#log.info(fields, "sandbox webhook delivered");
        this.#deliveries.push({ eventId, type, attempts, delivered: true, lastStatus });
        return;
      }
      this.#log.warn(fields, "sandbox webhook attempt failed");
    }
    this.#log.error({ event: eventId, type, attempts }, "sandbox webhook given up");
    this.#deliveries.push({ eventId, type, attempts, delivered: false, lastStatus });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waits.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waits.add(wake);
    });
  }
}
