import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPanLikeRuns } from "../../../src/domain/pan-scan.js";
import { selfSignedLocalhost } from "../../../src/http/tls.js";
import { createLogger } from "../../../src/log/logger.js";
import type {
  SandboxProcessor,
  SandboxProcessorOptions,
} from "../../../src/sandbox/sandbox-processor.js";
import { startSandboxProcessor } from "../../../src/sandbox/sandbox-processor.js";
import { systemClock } from "../../../src/services/clock.js";
import {
  stripeSigningSecret,
  verifyStripeWebhook,
} from "../../../src/webhooks/signatures/stripe.js";
import type { LocalHttps, TestCertificate } from "../outbound/local-https.js";
import { startHttps } from "../outbound/local-https.js";
import { captureLog, postCharge } from "./sandbox-client.js";

const SECRET = "whsec_sandbox_webhook_test_5b1e9c3a7d";
const ENDPOINT = "whe_sandboxTest0123456789";
const INTAKE_PATH = `/v1/webhooks/stripe/${ENDPOINT}`;
const VISA = "4242424242424242";
const FAST_RETRY = { attempts: 4, baseDelayMs: 20, timeoutMs: 5_000 };

/** A stand-in for the vault's intake: its certificate is made by the vault's own generator. */
describe("sandbox processor webhooks to the vault", () => {
  let dir: string;
  let vaultCert: TestCertificate;
  const started: { close(): Promise<void> }[] = [];

  async function receiver(statuses: number[] = []): Promise<LocalHttps> {
    let calls = 0;
    const server = await startHttps(vaultCert, (_req, res) => {
      const status = statuses[calls] ?? 200;
      calls += 1;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(status < 300 ? '{"received":true}' : '{"error":"try later"}');
    });
    started.push(server);
    return server;
  }

  async function sandboxFor(
    vault: LocalHttps | undefined,
    extra: Partial<SandboxProcessorOptions> = {},
  ): Promise<SandboxProcessor> {
    const sandbox = await startSandboxProcessor({
      port: 0,
      certDir: join(dir, "sandbox"),
      webhookRetry: FAST_RETRY,
      logger: createLogger("silent"),
      ...(vault === undefined
        ? {}
        : {
            vault: {
              url: `https://127.0.0.1:${vault.port}`,
              endpointId: ENDPOINT,
              secret: SECRET,
              ca: vaultCert.cert,
            },
          }),
      ...extra,
    });
    started.push(sandbox);
    return sandbox;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-sandbox-wh-"));
    vaultCert = await selfSignedLocalhost(join(dir, "vault"));
  });
  afterAll(async () => {
    for (const s of started.reverse()) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends a charge.succeeded event the Stripe SDK and the vault's verifier both accept", async () => {
    const vault = await receiver();
    const sandbox = await sandboxFor(vault);
    const answer = await postCharge(
      sandbox.url,
      sandbox.caPem,
      { number: VISA, cvc: "987" },
      "json",
    );
    expect(answer.status).toBe(200);
    await sandbox.idle();
    expect(vault.requests).toHaveLength(1);
    const [delivery] = vault.requests;
    if (delivery === undefined) throw new Error("no webhook");
    expect(delivery.method).toBe("POST");
    expect(delivery.url).toBe(INTAKE_PATH);
    expect(delivery.headers["content-type"]).toBe("application/json");
    const header = String(delivery.headers["stripe-signature"]);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);

    const sdkEvent = new Stripe("sk_test_x").webhooks.constructEvent(delivery.body, header, SECRET);
    expect(sdkEvent.type).toBe("charge.succeeded");
    const ours = verifyStripeWebhook(
      delivery.body,
      { "stripe-signature": header },
      { secrets: [stripeSigningSecret(SECRET)], clock: systemClock },
    );
    expect(ours.ok).toBe(true);
    // Another secret does not verify: the signature really is keyed with the endpoint's.
    expect(() =>
      new Stripe("sk_test_x").webhooks.constructEvent(delivery.body, header, `${SECRET}x`),
    ).toThrow();

    const event = JSON.parse(delivery.body.toString("utf8"));
    expect(event).toMatchObject({
      id: expect.stringMatching(/^evt_/),
      object: "event",
      type: "charge.succeeded",
      created: expect.any(Number),
      data: {
        object: {
          id: answer.json.id,
          object: "charge",
          amount: 1000,
          currency: "usd",
          status: "succeeded",
          authorization_id: answer.json.authorization_id,
          card: { brand: "visa", last4: "4242" },
        },
      },
    });
    const text = delivery.body.toString("utf8");
    expect(findPanLikeRuns(text)).toEqual([]);
    expect(text).not.toContain(VISA);
    expect(text).not.toContain("987");
    expect(sandbox.deliveries()).toEqual([
      {
        eventId: event.id,
        type: "charge.succeeded",
        attempts: 1,
        delivered: true,
        lastStatus: 200,
      },
    ]);
  });

  it("sends charge.failed with the failure code for a decline and a processing error", async () => {
    const vault = await receiver();
    const sandbox = await sandboxFor(vault);
    await postCharge(sandbox.url, sandbox.caPem, { number: "4000000000009995" }, "form");
    await postCharge(sandbox.url, sandbox.caPem, { number: "4000000000000119" }, "json");
    await sandbox.idle();
    const events = vault.requests.map((r) => JSON.parse(r.body.toString("utf8")));
    expect(
      events.map((e) => [e.type, e.data.object.status, e.data.object.failure_code]).sort(),
    ).toEqual([
      ["charge.failed", "failed", "card_declined"],
      ["charge.failed", "failed", "processing_error"],
    ]);
    for (const event of events) expect(event.data.object).not.toHaveProperty("authorization_id");
  });

  it("retries a 500 with backoff, each attempt validly signed, and stops at the first 2xx", async () => {
    const vault = await receiver([500, 503]);
    const sandbox = await sandboxFor(vault);
    await postCharge(sandbox.url, sandbox.caPem, { number: VISA }, "json");
    await sandbox.idle();
    expect(vault.requests).toHaveLength(3);
    const bodies = new Set(vault.requests.map((r) => r.body.toString("hex")));
    expect(bodies.size).toBe(1);
    for (const r of vault.requests) {
      expect(() =>
        new Stripe("sk_test_x").webhooks.constructEvent(
          r.body,
          String(r.headers["stripe-signature"]),
          SECRET,
        ),
      ).not.toThrow();
    }
    expect(sandbox.deliveries()).toMatchObject([{ attempts: 3, delivered: true, lastStatus: 200 }]);
  });

  it("gives up after the last attempt, and the charge itself still succeeded", async () => {
    const vault = await receiver([500, 500, 500, 500, 500]);
    const sandbox = await sandboxFor(vault);
    const answer = await postCharge(sandbox.url, sandbox.caPem, { number: VISA }, "json");
    expect(answer.status).toBe(200);
    await sandbox.idle();
    expect(vault.requests).toHaveLength(FAST_RETRY.attempts);
    expect(sandbox.deliveries()).toMatchObject([
      { attempts: 4, delivered: false, lastStatus: 500 },
    ]);
  });

  it("verifies the vault's certificate: without its CA no webhook is delivered", async () => {
    const vault = await receiver();
    const sandbox = await startSandboxProcessor({
      port: 0,
      certDir: join(dir, "sandbox"),
      webhookRetry: { attempts: 2, baseDelayMs: 10, timeoutMs: 5_000 },
      logger: createLogger("silent"),
      vault: { url: `https://127.0.0.1:${vault.port}`, endpointId: ENDPOINT, secret: SECRET },
    });
    started.push(sandbox);
    await postCharge(sandbox.url, sandbox.caPem, { number: VISA }, "json");
    await sandbox.idle();
    expect(vault.requests).toHaveLength(0);
    expect(sandbox.deliveries()).toMatchObject([
      { attempts: 2, delivered: false, lastStatus: undefined },
    ]);
  });

  it("answers the charge without waiting for the webhook", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const vault = await startHttps(vaultCert, (_req, res) => {
      void held.then(() => res.end("ok"));
    });
    started.push(vault);
    const sandbox = await sandboxFor(vault);
    const answer = await postCharge(sandbox.url, sandbox.caPem, { number: VISA }, "json");
    expect(answer.status).toBe(200);
    expect(sandbox.deliveries()).toEqual([]);
    let idle = false;
    const waiting = sandbox.idle().then(() => {
      idle = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(sandbox.deliveries()).toMatchObject([{ delivered: true, attempts: 1 }]);
  });

  it("sends nothing without a vault URL, and nothing for a refused (400) request", async () => {
    const none = await sandboxFor(undefined);
    expect(none.webhookUrl).toBeUndefined();
    expect((await postCharge(none.url, none.caPem, { number: VISA }, "json")).status).toBe(200);
    await none.idle();
    expect(none.deliveries()).toEqual([]);

    const vault = await receiver();
    const sandbox = await sandboxFor(vault);
    expect(sandbox.webhookUrl).toBe(`https://127.0.0.1:${vault.port}${INTAKE_PATH}`);
    const bad = await postCharge(
      sandbox.url,
      sandbox.caPem,
      { number: "4242424242424241" },
      "json",
    );
    expect(bad.status).toBe(400);
    await sandbox.idle();
    expect(vault.requests).toHaveLength(0);
  });

  it("refuses a plain-http vault URL, a bad endpoint id and a secret that is not whsec_", async () => {
    const log = captureLog();
    const base = {
      port: 0,
      certDir: join(dir, "sandbox"),
      logger: createLogger("info", log.stream),
    };
    const vault = { url: "https://127.0.0.1:1", endpointId: ENDPOINT, secret: SECRET };
    await expect(
      startSandboxProcessor({ ...base, vault: { ...vault, url: "http://127.0.0.1:1" } }),
    ).rejects.toThrow(/https/);
    await expect(
      startSandboxProcessor({ ...base, vault: { ...vault, endpointId: "../admin" } }),
    ).rejects.toThrow(/endpoint id/);
    const rejected = startSandboxProcessor({
      ...base,
      vault: { ...vault, secret: "sk_live_not_a_webhook_secret" },
    });
    await expect(rejected).rejects.toThrow(/whsec_/);
    await expect(rejected).rejects.not.toThrow(/sk_live_not/);
  });
});
