import { execFileSync } from "node:child_process";
import { createHmac, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretBytes } from "../../../src/crypto/secret.js";
import { crc32 } from "../../../src/webhooks/signatures/crc32.js";
import { paypalSignedString } from "../../../src/webhooks/signatures/paypal.js";
import { signStandardWebhook } from "../../../src/webhooks/signatures/standard-webhooks.js";
import {
  auditRows,
  auth,
  CARDS,
  expectFieldError,
  expectNoPan,
  expectProblem,
} from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import { ManualClock } from "../../support/redis.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";

const stripe = new Stripe("sk_test_payvault_intake_tests");

/**
 * `prefix` plus four bytes chosen so that the CRC-32 of the result is `target` (CRC-32 is
 * linear: the last four table lookups are solved backwards, then the bytes that select them).
 */
function withCrc32(prefix: Buffer, target: number): Buffer {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  const byTopByte = new Map<number, number>();
  for (let n = 0; n < 256; n++) byTopByte.set((table[n] as number) >>> 24, n);
  const indices: number[] = [];
  let r = ~target >>> 0;
  for (let i = 0; i < 4; i++) {
    const k = byTopByte.get(r >>> 24) as number;
    indices.unshift(k);
    r = ((r ^ (table[k] as number)) << 8) >>> 0;
  }
  let reg = ~crc32(prefix) >>> 0;
  const tail = Buffer.alloc(4);
  indices.forEach((k, i) => {
    tail[i] = (reg ^ k) & 0xff;
    reg = ((reg >>> 8) ^ (table[k] as number)) >>> 0;
  });
  return Buffer.concat([prefix, tail]);
}
const STRIPE_SECRET = "whsec_payvaultIntakeTestSecret0001";
const STRIPE_SECRET_2 = "whsec_payvaultIntakeTestSecret0002";
const STANDARD_SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
const HMAC_SECRET = "an hmac secret of some length";
/** A marker that must never reach a log line or a stored row (the body is not kept). */
const MARKER = "body-marker-7f3a9c";

function stripeEvent(id: string, extra: Record<string, unknown> = {}): string {
  // Spacing a re-serialization would not reproduce: the signature covers these exact bytes.
  return `{\n  "id": "${id}",\n  "object": "event",  "type": "charge.succeeded", "created": 1760000000,\n  "data": {"object": {"id": "ch_1", "object": "charge", "amount": 1999, "currency": "usd", "status": "succeeded", "description": "${MARKER}"}}${
    Object.keys(extra).length === 0 ? "" : `, "extra": ${JSON.stringify(extra)}`
  }\n}`;
}

for (const driver of DRIVERS) {
  describe(`webhook intake on ${driver.name}`, () => {
    const clock = new ManualClock(Date.now());
    let vault: TestVault;
    let manager: string;
    let otherManager: string;
    let stripeEndpoint: string;

    const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);

    const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
      vault.app.inject({
        method: "POST",
        url: path,
        headers: { "content-type": "application/json", ...headers },
        payload: body,
      });

    const stripeHeader = (body: string, secret = STRIPE_SECRET, timestamp = nowSeconds()) =>
      stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });

    const eventRows = async (endpointId: string) =>
      (
        await vault.core.db.query<{ row: string; state: string; provider_event_id: string }>(
          "SELECT to_jsonb(e)::text AS row, state, provider_event_id FROM webhook_events e WHERE endpoint_id = $1",
          [endpointId],
        )
      ).rows;

    const createEndpoint = async (key: string, body: Record<string, unknown>) => {
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/webhook-endpoints",
        headers: auth(key),
        payload: body,
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as { id: string; url: string; secrets: unknown[]; intake_path: string };
    };

    beforeAll(async () => {
      vault = await startTestVault(driver, {
        clock,
        env: { PAYVAULT_WEBHOOK_MAX_ATTEMPTS: "3", PAYVAULT_WEBHOOK_MAX_BODY_BYTES: "4096" },
      });
      manager = await vault.newKey(vault.tenantId, ["webhooks:manage"]);
      otherManager = (await vault.newTenant(["webhooks:manage"])).key;
      stripeEndpoint = (
        await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET })
      ).id;
    });

    afterAll(async () => {
      await vault?.close();
    });

    it("registers an endpoint: the URL to give the provider, the secret never shown or stored in the clear", async () => {
      const created = await createEndpoint(manager, {
        provider: "stripe",
        secret: STRIPE_SECRET_2,
        description: "stripe live",
      });
      expect(created.url).toBe(`https://vault.test/v1/webhooks/stripe/${created.id}`);
      expect(JSON.stringify(created)).not.toContain(STRIPE_SECRET_2);
      expect(created.secrets).toEqual([{ created_at: expect.any(String), expires_at: null }]);
      const stored = await vault.core.db.query<{ row: string; secrets: Buffer }>(
        "SELECT to_jsonb(w)::text AS row, secrets FROM webhook_endpoints w WHERE id = $1",
        [created.id],
      );
      expect(stored.rows[0]?.row).not.toContain("payvaultIntakeTestSecret0002");
      expect(stored.rows[0]?.secrets.includes(Buffer.from(STRIPE_SECRET_2))).toBe(false);
      const read = await vault.app.inject({
        method: "GET",
        url: `/v1/webhook-endpoints/${created.id}`,
        headers: auth(manager),
      });
      expect(read.statusCode).toBe(200);
      expect(read.body).not.toContain("payvaultIntakeTestSecret");
      // Another tenant's endpoint is not found, whatever the route.
      for (const [method, url] of [
        ["GET", `/v1/webhook-endpoints/${created.id}`],
        ["DELETE", `/v1/webhook-endpoints/${created.id}`],
      ] as const) {
        const res = await vault.app.inject({ method, url, headers: auth(otherManager) });
        expectProblem(res, "WEBHOOK_ENDPOINT_NOT_FOUND");
      }
      const rotate = await vault.app.inject({
        method: "POST",
        url: `/v1/webhook-endpoints/${created.id}/secrets`,
        headers: auth(otherManager),
        payload: { secret: STRIPE_SECRET },
      });
      expectProblem(rotate, "WEBHOOK_ENDPOINT_NOT_FOUND");
    });

    it("refuses a secret of the wrong form, without repeating it", async () => {
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/webhook-endpoints",
        headers: auth(manager),
        payload: { provider: "stripe", secret: "not-a-stripe-secret-value" },
      });
      expectFieldError(res, "secret", "INVALID_FORMAT");
      expect(res.body).not.toContain("not-a-stripe-secret-value");
      const missing = await vault.app.inject({
        method: "POST",
        url: "/v1/webhook-endpoints",
        headers: auth(manager),
        payload: { provider: "hmac", secret: HMAC_SECRET },
      });
      expectFieldError(missing, "hmac", "FIELD_REQUIRED");
    });

    it("queues a Stripe event signed by the official SDK, keeping metadata only", async () => {
      const body = stripeEvent("evt_sdk_signed_1");
      const res = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": stripeHeader(body),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({
        received: true,
        duplicate: false,
        id: expect.stringMatching(/^evt_/),
      });
      const rows = await eventRows(stripeEndpoint);
      const row = rows.find((r) => r.provider_event_id === "evt_sdk_signed_1");
      expect(row?.state).toBe("queued");
      // The body is not stored: the marker in its description is nowhere in the row.
      expect(row?.row).not.toContain(MARKER);
      expect(JSON.parse(row?.row ?? "{}").metadata).toMatchObject({
        "data.object.id": "ch_1",
        "data.object.amount": 1999,
        "data.object.status": "succeeded",
      });
      expect(vault.logs.text).not.toContain(MARKER);
    });

    it("acknowledges a replay of the same event id without queuing it twice", async () => {
      const body = stripeEvent("evt_replayed_1");
      const first = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": stripeHeader(body),
      });
      clock.advance(10_000);
      // The provider retries with a fresh signature: same event id, acknowledged as a duplicate.
      const again = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": stripeHeader(body),
      });
      expect(first.json()).toMatchObject({ duplicate: false });
      expect(again.statusCode).toBe(200);
      expect(again.json()).toMatchObject({ duplicate: true });
      const rows = (await eventRows(stripeEndpoint)).filter(
        (r) => r.provider_event_id === "evt_replayed_1",
      );
      expect(rows).toHaveLength(1);
      // Concurrent deliveries of one event: exactly one is queued.
      const burst = stripeEvent("evt_burst_1");
      const header = stripeHeader(burst);
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          post(`/v1/webhooks/stripe/${stripeEndpoint}`, burst, { "stripe-signature": header }),
        ),
      );
      expect(results.map((r) => r.statusCode)).toEqual(Array(8).fill(200));
      expect(
        results.filter((r) => (r.json() as { duplicate: boolean }).duplicate === false),
      ).toHaveLength(1);
    });

    it("accepts any of several v1 signatures (a secret rotation at Stripe)", async () => {
      const body = stripeEvent("evt_two_signatures");
      const t = nowSeconds();
      const wrong = createHmac("sha256", STRIPE_SECRET_2).update(`${t}.${body}`).digest("hex");
      const right = createHmac("sha256", STRIPE_SECRET).update(`${t}.${body}`).digest("hex");
      const res = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": `t=${t},v1=${wrong},v1=${right}`,
      });
      expect(res.statusCode, res.body).toBe(200);
    });

    it("holds the timestamp to 300 s both ways", async () => {
      const cases: [number, number][] = [
        [-299, 200],
        [299, 200],
        [-301, 401],
        [301, 401],
      ];
      for (const [offset, status] of cases) {
        const body = stripeEvent(`evt_skew_${offset < 0 ? "m" : "p"}${Math.abs(offset)}`);
        const res = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
          "stripe-signature": stripeHeader(body, STRIPE_SECRET, nowSeconds() + offset),
        });
        expect(res.statusCode, `offset ${offset}: ${res.body}`).toBe(status);
        if (status === 401) {
          const problem = expectProblem(res, "WEBHOOK_SIGNATURE_INVALID");
          expect(problem.detail).toBe(
            offset < 0 ? "reason: timestamp_too_old" : "reason: timestamp_in_future",
          );
        }
      }
    });

    it("refuses missing, wrong and re-serialized signatures: 401, counted, audited, nothing stored", async () => {
      const before = (await eventRows(stripeEndpoint)).length;
      const counted = () =>
        vault.core.metrics.valueOf("webhookIntake", {
          provider: "stripe",
          outcome: "WEBHOOK_SIGNATURE_INVALID",
        });
      const countBefore = await counted();
      const auditBefore = (await auditRows(vault, "webhook.rejected")).length;
      const body = stripeEvent("evt_bad_signature");
      const reparsed = JSON.stringify(JSON.parse(body));
      const attempts: Record<string, string>[] = [
        {},
        { "stripe-signature": stripeHeader(body, STRIPE_SECRET_2) },
        { "stripe-signature": "t=abc,v1=zz" },
      ];
      for (const headers of attempts) {
        expectProblem(
          await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, headers),
          "WEBHOOK_SIGNATURE_INVALID",
        );
      }
      // Verified over the bytes received: the signature of the original does not fit a
      // re-serialization of the same JSON.
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, reparsed, {
          "stripe-signature": stripeHeader(body),
        }),
        "WEBHOOK_SIGNATURE_INVALID",
      );
      expect(await eventRows(stripeEndpoint)).toHaveLength(before);
      expect(await counted()).toBe(countBefore + 4);
      // One audit event per endpoint and reason per minute: the first of each reason here
      // (missing_header, malformed_header; signature_mismatch twice), never one per request.
      const audited = await auditRows(vault, "webhook.rejected");
      const added = audited.slice(auditBefore);
      expect(added.map((e) => e.details.reason).sort()).toEqual([
        "malformed_header",
        "missing_header",
        "signature_mismatch",
      ]);
      for (const event of added)
        expect(event).toMatchObject({ object_id: stripeEndpoint, outcome: "failure" });
      // A flood of forgeries adds nothing to the trail within the minute...
      for (let i = 0; i < 20; i++) {
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
          "stripe-signature": stripeHeader(body, STRIPE_SECRET_2),
        });
      }
      expect(await auditRows(vault, "webhook.rejected")).toHaveLength(audited.length);
      expect(await counted()).toBe(countBefore + 24);
      // ...and the next window's first event carries how many it stood for.
      clock.advance(61_000);
      await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": stripeHeader(body, STRIPE_SECRET_2),
      });
      const after = await auditRows(vault, "webhook.rejected");
      expect(after).toHaveLength(audited.length + 1);
      expect(after.at(-1)?.details).toMatchObject({
        reason: "signature_mismatch",
        also_refused: 21,
      });
      expect(vault.logs.text).not.toContain(MARKER);
    });

    it("refuses card numbers that only parsing reveals: escapes, exponents, other separators, the id header", async () => {
      const before = (await eventRows(stripeEndpoint)).length;
      const bodies = [
        // \u escapes in the event id: no digit run in the raw text.
        `{"id":"\\u0034242424242424242","type":"charge.succeeded"}`,
        // A number in exponent form.
        `{"id":"evt_exp","type":"charge.succeeded","data":{"object":{"amount":4.242424242424242e15}}}`,
        // Dots and tabs between the groups.
        `{"id":"evt_dots","type":"charge.succeeded","data":{"object":{"status":"4242.4242.4242.4242"}}}`,
        `{"id":"evt_tabs","type":"charge.succeeded","note":"4242\\t4242\\t4242\\t4242"}`,
        // In a key.
        `{"id":"evt_key","type":"charge.succeeded","data":{"4242424242424242":true}}`,
      ];
      for (const body of bodies) {
        const res = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
          "stripe-signature": stripeHeader(body),
        });
        expectProblem(res, "WEBHOOK_CARD_DATA");
      }
      expect(await eventRows(stripeEndpoint)).toHaveLength(before);
      // The Standard Webhooks id header is the stored event id: it is scanned too.
      const standard = await createEndpoint(manager, {
        provider: "standard",
        secret: STANDARD_SECRET,
      });
      const body = Buffer.from('{"type":"payment.succeeded","data":{"id":"pay_2"}}');
      const headers = signStandardWebhook(body, {
        id: CARDS.visa,
        secrets: [SecretBytes.copyOf(Buffer.alloc(32, 7))],
        clock,
      });
      expectProblem(await post(standard.intake_path, body, { ...headers }), "WEBHOOK_CARD_DATA");
      expect(await eventRows(standard.id)).toHaveLength(0);
      // Long numbers are not kept as metadata (amounts and times in seconds are).
      const big =
        '{"id":"evt_big_amount","type":"charge.succeeded","data":{"object":{"amount":1234567890123}}}';
      expect(
        (
          await post(`/v1/webhooks/stripe/${stripeEndpoint}`, big, {
            "stripe-signature": stripeHeader(big),
          })
        ).statusCode,
      ).toBe(200);
      const row = (await eventRows(stripeEndpoint)).find(
        (r) => r.provider_event_id === "evt_big_amount",
      );
      expect(JSON.parse(row?.row ?? "{}").metadata).not.toHaveProperty("data.object.amount");
    });

    it("refuses a payload carrying a card number with 422 and stores nothing", async () => {
      const before = (await eventRows(stripeEndpoint)).length;
      for (const number of [CARDS.visa, "4000 0000 0000 0002", CARDS.amex]) {
        const body = stripeEvent(`evt_pan_${before}`, { note: `card ${number}` });
        const res = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
          "stripe-signature": stripeHeader(body),
        });
        expectProblem(res, "WEBHOOK_CARD_DATA");
        expectNoPan(res.body, number);
        expectNoPan(vault.logs.text, number);
      }
      // A card number as a JSON number literal is refused too.
      const literal = `{"id":"evt_pan_literal","type":"charge.succeeded","n":${CARDS.visa}}`;
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, literal, {
          "stripe-signature": stripeHeader(literal),
        }),
        "WEBHOOK_CARD_DATA",
      );
      expect(await eventRows(stripeEndpoint)).toHaveLength(before);
      // A millisecond timestamp that happens to pass Luhn is not a card (no network issues it).
      const timestamp = `{"id":"evt_ms_time","type":"charge.succeeded","created_ms":1760000000006}`;
      const ok = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, timestamp, {
        "stripe-signature": stripeHeader(timestamp),
      });
      expect(ok.statusCode, ok.body).toBe(200);
    });

    it("answers bad bodies, media types, sizes and unknown endpoints with clear 4xx", async () => {
      const signed = (body: string) => ({ "stripe-signature": stripeHeader(body) });
      const notJson = "id=evt_1&type=x";
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, notJson, signed(notJson)),
        "WEBHOOK_BODY_INVALID",
      );
      const noId = '{"type":"charge.succeeded"}';
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, noId, signed(noId)),
        "WEBHOOK_BODY_INVALID",
      );
      const array = "[1,2,3]";
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, array, signed(array)),
        "WEBHOOK_BODY_INVALID",
      );
      const form = await vault.app.inject({
        method: "POST",
        url: `/v1/webhooks/stripe/${stripeEndpoint}`,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: "a=b",
      });
      expectProblem(form, "UNSUPPORTED_MEDIA_TYPE");
      const big = stripeEvent("evt_big", { pad: "x".repeat(5000) });
      expectProblem(
        await post(`/v1/webhooks/stripe/${stripeEndpoint}`, big, signed(big)),
        "PAYLOAD_TOO_LARGE",
      );
      const body = stripeEvent("evt_unknown_endpoint");
      for (const path of [
        "/v1/webhooks/stripe/whe_doesnotexist",
        `/v1/webhooks/standard/${stripeEndpoint}`,
        `/v1/webhooks/github/${stripeEndpoint}`,
        "/v1/webhooks/stripe/not-an-id",
      ]) {
        expectProblem(await post(path, body, signed(body)), "WEBHOOK_ENDPOINT_NOT_FOUND");
      }
      expect(
        await vault.core.metrics.valueOf("webhookIntake", {
          provider: "stripe",
          outcome: "PAYLOAD_TOO_LARGE",
        }),
      ).toBe(1);
      expect(
        await vault.core.metrics.valueOf("webhookIntake", {
          provider: "unknown",
          outcome: "WEBHOOK_ENDPOINT_NOT_FOUND",
        }),
      ).toBe(1);
      expect(vault.logs.text).not.toContain(MARKER);
    });

    it("verifies Standard Webhooks and dedupes on the signed webhook-id", async () => {
      const endpoint = await createEndpoint(manager, {
        provider: "standard",
        secret: STANDARD_SECRET,
      });
      const body = Buffer.from(
        '{"type":"payment.succeeded","timestamp":"2030-01-01T00:00:00Z","data":{"id":"pay_1","amount":500}}',
      );
      const sign1 = () =>
        signStandardWebhook(body, {
          id: "msg_standard_1",
          secrets: [SecretBytes.copyOf(Buffer.alloc(32, 7))],
          clock,
        });
      const first = await post(endpoint.intake_path, body, { ...sign1() });
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json()).toMatchObject({ duplicate: false });
      const second = await post(endpoint.intake_path, body, { ...sign1() });
      expect(second.json()).toMatchObject({ duplicate: true });
      const rows = await eventRows(endpoint.id);
      expect(rows.map((r) => r.provider_event_id)).toEqual(["msg_standard_1"]);
      const forged = await post(endpoint.intake_path, body, {
        ...sign1(),
        "webhook-id": "msg_standard_2",
      });
      expectProblem(forged, "WEBHOOK_SIGNATURE_INVALID");
    });

    it("verifies a configured HMAC header scheme", async () => {
      const endpoint = await createEndpoint(manager, {
        provider: "hmac",
        secret: HMAC_SECRET,
        hmac: {
          signature_header: "x-hub-signature-256",
          algorithm: "sha256",
          encoding: "hex",
          prefix: "sha256=",
        },
        event_id_field: "delivery.id",
        event_type_field: "action",
      });
      const body = '{"action":"completed","delivery":{"id":"dlv-42"}}';
      const mac = createHmac("sha256", HMAC_SECRET).update(body).digest("hex");
      const ok = await post(endpoint.intake_path, body, { "x-hub-signature-256": `sha256=${mac}` });
      expect(ok.statusCode, ok.body).toBe(200);
      expect((await eventRows(endpoint.id)).map((r) => r.provider_event_id)).toEqual(["dlv-42"]);
      const bad = await post(endpoint.intake_path, body, {
        "x-hub-signature-256": `sha256=${"0".repeat(64)}`,
      });
      expectProblem(bad, "WEBHOOK_SIGNATURE_INVALID");
    });

    describe("PayPal with a configured certificate (no network fetch)", () => {
      let dir: string;
      let key: KeyObject;
      let certPem: string;
      const certUrl = "https://api.paypal.com/v1/notifications/certs/CERT-payvault-test";
      beforeAll(() => {
        dir = mkdtempSync(join(tmpdir(), "payvault-paypal-intake-"));
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            join(dir, "k.pem"),
            "-out",
            join(dir, "c.pem"),
            "-days",
            "30",
            "-subj",
            "/CN=paypal.test",
          ],
          { stdio: "ignore" },
        );
        key = createPrivateKey(readFileSync(join(dir, "k.pem")));
        certPem = readFileSync(join(dir, "c.pem"), "utf8");
      });
      afterAll(() => rmSync(dir, { recursive: true, force: true }));

      it("verifies the transmission signature over id|time|webhook id|crc32(body)", async () => {
        const endpoint = await createEndpoint(manager, {
          provider: "paypal",
          paypal: { webhook_id: "WH-PAYVAULT-1", certificates: [{ url: certUrl, pem: certPem }] },
        });
        const body = Buffer.from(
          '{"id":"WH-EVT-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"cap_1","status":"COMPLETED"}}',
        );
        const time = new Date(nowSeconds() * 1000).toISOString().replace(".000Z", "Z");
        const signed = paypalSignedString("tx-1", time, "WH-PAYVAULT-1", body);
        const headers = {
          "paypal-transmission-id": "tx-1",
          "paypal-transmission-time": time,
          "paypal-transmission-sig": sign("sha256", Buffer.from(signed), key).toString("base64"),
          "paypal-auth-algo": "SHA256withRSA",
          "paypal-cert-url": certUrl,
        };
        const ok = await post(endpoint.intake_path, body, headers);
        expect(ok.statusCode, ok.body).toBe(200);
        const otherCert = await post(endpoint.intake_path, body, {
          ...headers,
          "paypal-cert-url": "https://attacker.example/cert.pem",
        });
        expectProblem(otherCert, "WEBHOOK_SIGNATURE_INVALID");
        // The signature binds the body only through its CRC-32: a forged body with four chosen
        // bytes has the same CRC and verifies. The transmission was used: it is refused.
        const forged = withCrc32(
          Buffer.from(
            '{"id":"WH-EVT-FORGED","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"cap_9"}}',
          ),
          crc32(body),
        );
        expect(crc32(forged)).toBe(crc32(body));
        const reused = await post(endpoint.intake_path, forged, headers);
        expect(expectProblem(reused, "WEBHOOK_SIGNATURE_INVALID").detail).toBe(
          "reason: transmission_reused",
        );
        // The same request again (a resend) is a duplicate, acknowledged.
        const resend = await post(endpoint.intake_path, body, headers);
        expect(resend.statusCode, resend.body).toBe(200);
        expect(resend.json()).toMatchObject({ duplicate: true });
        expect((await eventRows(endpoint.id)).map((r) => r.provider_event_id)).toEqual([
          "WH-EVT-1",
        ]);
        // Outside the 300 s tolerance the transmission is refused on its time alone.
        clock.advance(301_000);
        expectProblem(await post(endpoint.intake_path, body, headers), "WEBHOOK_SIGNATURE_INVALID");
      });
    });

    it("rotates a secret with overlap: both verify during it, only the new one after", async () => {
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      const rotated = await vault.app.inject({
        method: "POST",
        url: `/v1/webhook-endpoints/${endpoint.id}/secrets`,
        headers: auth(manager),
        payload: { secret: STRIPE_SECRET_2, overlap_seconds: 600 },
      });
      expect(rotated.statusCode, rotated.body).toBe(200);
      expect((rotated.json() as { secrets: unknown[] }).secrets).toHaveLength(2);
      const send = (id: string, secret: string) => {
        const body = stripeEvent(id);
        return post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body, secret) });
      };
      expect((await send("evt_rot_old", STRIPE_SECRET)).statusCode).toBe(200);
      expect((await send("evt_rot_new", STRIPE_SECRET_2)).statusCode).toBe(200);
      clock.advance(601_000);
      expectProblem(await send("evt_rot_old_late", STRIPE_SECRET), "WEBHOOK_SIGNATURE_INVALID");
      expect((await send("evt_rot_new_late", STRIPE_SECRET_2)).statusCode).toBe(200);
      expect((await auditRows(vault, "webhook_endpoint.rotate")).at(-1)).toMatchObject({
        object_id: endpoint.id,
      });
    });

    it("processes at least once, retries with backoff, dead-letters after N failures, replays and purges", async () => {
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      // Drain what earlier tests queued.
      while ((await vault.core.webhooks.processDue(100)) > 0);
      let failing = true;
      const seen: string[] = [];
      vault.core.webhooks.use(async (event) => {
        if (event.endpoint_id !== endpoint.id) return;
        seen.push(event.provider_event_id);
        if (failing) throw new Error("downstream down");
      });
      const body = stripeEvent("evt_dlq_1");
      expect(
        (await post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body) }))
          .statusCode,
      ).toBe(200);
      const state = async () =>
        (
          await vault.core.db.query<{
            id: string;
            state: string;
            attempts: number;
            run_at: Date;
            last_error: string | null;
          }>(
            "SELECT id, state, attempts, run_at, last_error FROM webhook_events WHERE endpoint_id = $1",
            [endpoint.id],
          )
        ).rows[0];
      expect(await vault.core.webhooks.processDue()).toBe(1);
      let row = await state();
      expect(row).toMatchObject({ state: "queued", attempts: 1, last_error: "PROCESSING_FAILED" });
      // Not due before its backoff: the first retry waits at least half the base delay (5 s).
      const firstWait = (row?.run_at.getTime() ?? 0) - clock.now().getTime();
      expect(firstWait).toBeGreaterThanOrEqual(5_000);
      expect(firstWait).toBeLessThanOrEqual(10_000);
      expect(await vault.core.webhooks.processDue()).toBe(0);
      clock.advance(firstWait);
      expect(await vault.core.webhooks.processDue()).toBe(1);
      row = await state();
      const secondWait = (row?.run_at.getTime() ?? 0) - clock.now().getTime();
      expect(secondWait).toBeGreaterThanOrEqual(10_000);
      clock.advance(secondWait);
      expect(await vault.core.webhooks.processDue()).toBe(1);
      row = await state();
      expect(row).toMatchObject({ state: "dead", attempts: 3 });
      expect(seen).toEqual(["evt_dlq_1", "evt_dlq_1", "evt_dlq_1"]);
      clock.advance(3_600_000);
      expect(await vault.core.webhooks.processDue()).toBe(0);

      // The DLQ through the API: listed, not visible to another tenant, replayed, processed.
      const dead = await vault.app.inject({
        method: "GET",
        url: "/v1/webhook-events?state=dead",
        headers: auth(manager),
      });
      expect((dead.json() as { data: { id: string }[] }).data.map((e) => e.id)).toContain(row?.id);
      const foreign = await vault.app.inject({
        method: "POST",
        url: `/v1/webhook-events/${row?.id}/replay`,
        headers: auth(otherManager),
      });
      expectProblem(foreign, "WEBHOOK_EVENT_NOT_FOUND");
      failing = false;
      const replay = await vault.app.inject({
        method: "POST",
        url: `/v1/webhook-events/${row?.id}/replay`,
        headers: auth(manager),
      });
      expect(replay.statusCode, replay.body).toBe(200);
      expect(await vault.core.webhooks.processDue()).toBe(1);
      expect(await state()).toMatchObject({ state: "done", attempts: 1 });
      expect(vault.core.metrics.webhookProcessing).toBeDefined();
      expect(await vault.core.metrics.valueOf("webhookProcessing", { outcome: "dead" })).toBe(1);
      // A done event is not in the DLQ: replay and purge are refused.
      for (const method of ["POST", "DELETE"] as const) {
        const res = await vault.app.inject({
          method,
          url:
            method === "POST"
              ? `/v1/webhook-events/${row?.id}/replay`
              : `/v1/webhook-events/${row?.id}`,
          headers: auth(manager),
        });
        expectProblem(res, "NOT_DEAD_LETTERED");
      }

      // Dead again, then purged.
      failing = true;
      const body2 = stripeEvent("evt_dlq_2");
      await post(endpoint.intake_path, body2, { "stripe-signature": stripeHeader(body2) });
      for (let i = 0; i < 3; i++) {
        await vault.core.webhooks.processDue();
        clock.advance(3_600_000);
      }
      const deadId = (
        await vault.core.db.query<{ id: string }>(
          "SELECT id FROM webhook_events WHERE provider_event_id = 'evt_dlq_2' AND state = 'dead'",
        )
      ).rows[0]?.id;
      expect(deadId).toBeDefined();
      const purged = await vault.app.inject({
        method: "DELETE",
        url: `/v1/webhook-events/${deadId}`,
        headers: auth(manager),
      });
      expect(purged.statusCode).toBe(204);
      const gone = await vault.app.inject({
        method: "GET",
        url: `/v1/webhook-events/${deadId}`,
        headers: auth(manager),
      });
      expectProblem(gone, "WEBHOOK_EVENT_NOT_FOUND");
      expect((await auditRows(vault, "webhook_event.replay")).length).toBe(1);
      expect((await auditRows(vault, "webhook_event.purge")).length).toBe(1);
      failing = false;
    });

    it("publishes a processed batch to the tenant's event destinations as payment events", async () => {
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      while ((await vault.core.webhooks.processDue(100)) > 0);
      const destination = await vault.app.inject({
        method: "POST",
        url: "/v1/event-destinations",
        headers: auth(manager),
        payload: { url: "https://hooks.merchant.example/payvault", event_types: ["payment.*"] },
      });
      expect(destination.statusCode, destination.body).toBe(201);
      const destinationId = (destination.json() as { id: string }).id;
      for (const id of ["evt_pub_1", "evt_pub_2", "evt_pub_3"]) {
        const body = stripeEvent(id);
        await post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body) });
      }
      expect(await vault.core.webhooks.processDue(100)).toBe(3);
      const deliveries = (
        await vault.core.db.query<{
          event_type: string;
          payload: { data: Record<string, unknown> };
        }>(
          "SELECT event_type, payload FROM event_deliveries WHERE destination_id = $1 ORDER BY created_at",
          [destinationId],
        )
      ).rows;
      expect(deliveries.map((d) => d.event_type)).toEqual([
        "payment.charge.succeeded",
        "payment.charge.succeeded",
        "payment.charge.succeeded",
      ]);
      expect(deliveries.map((d) => d.payload.data.provider_event_id).sort()).toEqual([
        "evt_pub_1",
        "evt_pub_2",
        "evt_pub_3",
      ]);
      expect(JSON.stringify(deliveries)).not.toContain(MARKER);
      await vault.app.inject({
        method: "DELETE",
        url: `/v1/event-destinations/${destinationId}`,
        headers: auth(manager),
      });
    });

    it("processes a claimed batch in one transaction, and retries only the event that failed", async () => {
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      while ((await vault.core.webhooks.processDue(100)) > 0);
      vault.core.webhooks.use(async (event) => {
        if (event.provider_event_id === "evt_batch_bad") throw new Error("handler failed");
      });
      for (const id of ["evt_batch_1", "evt_batch_bad", "evt_batch_2", "evt_batch_3"]) {
        const body = stripeEvent(id);
        await post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body) });
      }
      expect(await vault.core.webhooks.processDue(100)).toBe(4);
      const states = (
        await vault.core.db.query<{ provider_event_id: string; state: string; attempts: number }>(
          "SELECT provider_event_id, state, attempts FROM webhook_events WHERE endpoint_id = $1 ORDER BY provider_event_id",
          [endpoint.id],
        )
      ).rows;
      expect(states).toEqual([
        { provider_event_id: "evt_batch_1", state: "done", attempts: 1 },
        { provider_event_id: "evt_batch_2", state: "done", attempts: 1 },
        { provider_event_id: "evt_batch_3", state: "done", attempts: 1 },
        { provider_event_id: "evt_batch_bad", state: "queued", attempts: 1 },
      ]);
      // The bad one is dead-lettered in the end; the rest of the suite is not disturbed by it.
      await vault.core.db.query(
        "DELETE FROM webhook_events WHERE provider_event_id = 'evt_batch_bad'",
      );
    });

    it("keeps at most three live secrets however often it is rotated", async () => {
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      for (let i = 0; i < 5; i++) {
        const res = await vault.app.inject({
          method: "POST",
          url: `/v1/webhook-endpoints/${endpoint.id}/secrets`,
          headers: auth(manager),
          payload: { secret: `whsec_payvaultRotationSecret00${i}`, overlap_seconds: 3600 },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect((res.json() as { secrets: unknown[] }).secrets.length).toBe(Math.min(i + 2, 3));
      }
      // The newest and the two before it verify; the first secret no longer does.
      const body = stripeEvent("evt_capped");
      expectProblem(
        await post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body) }),
        "WEBHOOK_SIGNATURE_INVALID",
      );
      expect(
        (
          await post(endpoint.intake_path, body, {
            "stripe-signature": stripeHeader(body, "whsec_payvaultRotationSecret002"),
          })
        ).statusCode,
      ).toBe(200);
    });

    it("never shows or changes another tenant's events", async () => {
      const body = stripeEvent("evt_isolation");
      const queued = await post(`/v1/webhooks/stripe/${stripeEndpoint}`, body, {
        "stripe-signature": stripeHeader(body),
      });
      const id = (queued.json() as { id: string }).id;
      for (const [method, url] of [
        ["GET", `/v1/webhook-events/${id}`],
        ["DELETE", `/v1/webhook-events/${id}`],
        ["POST", `/v1/webhook-events/${id}/replay`],
      ] as const) {
        expectProblem(
          await vault.app.inject({ method, url, headers: auth(otherManager) }),
          "WEBHOOK_EVENT_NOT_FOUND",
        );
      }
      const listed = await vault.app.inject({
        method: "GET",
        url: `/v1/webhook-events?endpoint_id=${stripeEndpoint}`,
        headers: auth(otherManager),
      });
      expect(listed.statusCode).toBe(200);
      expect((listed.json() as { data: unknown[] }).data).toEqual([]);
      const mine = await vault.app.inject({
        method: "GET",
        url: `/v1/webhook-events/${id}`,
        headers: auth(manager),
      });
      expect(mine.json()).toMatchObject({ id, provider_event_id: "evt_isolation" });
    });

    it("takes a row again when a worker's lease lapsed (at-least-once)", async () => {
      while ((await vault.core.webhooks.processDue(100)) > 0);
      const endpoint = await createEndpoint(manager, { provider: "stripe", secret: STRIPE_SECRET });
      const body = stripeEvent("evt_lease_1");
      await post(endpoint.intake_path, body, { "stripe-signature": stripeHeader(body) });
      // A worker claimed it and died: the row is processing with a lease.
      await vault.core.db.query(
        "UPDATE webhook_events SET state = 'processing', attempts = 1, locked_until = $2 WHERE endpoint_id = $1",
        [endpoint.id, new Date(clock.now().getTime() + 60_000)],
      );
      expect(await vault.core.webhooks.processDue()).toBe(0);
      clock.advance(60_000);
      expect(await vault.core.webhooks.processDue()).toBe(1);
      const row = (
        await vault.core.db.query<{ state: string; attempts: number }>(
          "SELECT state, attempts FROM webhook_events WHERE endpoint_id = $1",
          [endpoint.id],
        )
      ).rows[0];
      expect(row).toEqual({ state: "done", attempts: 2 });
    });
  });
}
