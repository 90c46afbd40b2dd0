import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPanLikeRuns } from "../../../src/domain/pan-scan.js";
import { createLogger } from "../../../src/log/logger.js";
import { createSafeFetch } from "../../../src/outbound/safe-fetch.js";
import { OUTCOME_TABLE } from "../../../src/sandbox/outcome-table.js";
import type { SandboxProcessor } from "../../../src/sandbox/sandbox-processor.js";
import { startSandboxProcessor } from "../../../src/sandbox/sandbox-processor.js";
import { testCards } from "../../unit/domain/test-cards.js";
import type { Answer, Encoding } from "./sandbox-client.js";
import { captureLog, chargeJson, jsonValues, postCharge, postRaw } from "./sandbox-client.js";

const CVC = "987";
const ENCODINGS: readonly Encoding[] = ["json", "form"];
const EXPECTED = [
  { number: "4000000000000002", status: 402, code: "card_declined", decline: "generic_decline" },
  { number: "4000000000009995", status: 402, code: "card_declined", decline: "insufficient_funds" },
  { number: "4000000000009987", status: 402, code: "card_declined", decline: "lost_card" },
  { number: "4000000000000069", status: 402, code: "expired_card", decline: "expired_card" },
  { number: "4000000000000127", status: 402, code: "incorrect_cvc", decline: "incorrect_cvc" },
  { number: "4000000000000119", status: 500, code: "processing_error", decline: undefined },
] as const;
/** Every number a test here sends, to search the responses and the log for. */
const SENT_NUMBERS = [
  ...testCards.valid.map((c) => c.number),
  ...OUTCOME_TABLE.map((r) => r.number),
  ...testCards.invalid_luhn,
];

/** No full card number and no value equal to the CVC, anywhere in `text` (JSON or not). */
function expectNoCardData(text: string): void {
  for (const number of SENT_NUMBERS) expect(text).not.toContain(number);
  expect(findPanLikeRuns(text)).toEqual([]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return;
  }
  expect(jsonValues(parsed)).not.toContain(CVC);
}

describe("sandbox processor charges over HTTPS", () => {
  let dir: string;
  let sandbox: SandboxProcessor;
  const log = captureLog();
  const answers: Answer[] = [];
  const charge = async (
    ...args: Parameters<typeof postCharge> extends [string, string, ...infer R] ? R : never
  ) => {
    const answer = await postCharge(sandbox.url, sandbox.caPem, ...args);
    answers.push(answer);
    return answer;
  };
  const raw = async (
    ...args: Parameters<typeof postRaw> extends [string, string, ...infer R] ? R : never
  ) => {
    const answer = await postRaw(sandbox.url, sandbox.caPem, ...args);
    answers.push(answer);
    return answer;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-sandbox-"));
    sandbox = await startSandboxProcessor({
      port: 0,
      certDir: dir,
      logger: createLogger("debug", log.stream),
    });
  });
  afterAll(async () => {
    await sandbox.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves its own localhost certificate from the cert dir, key readable by its owner only", async () => {
    expect(sandbox.url).toMatch(/^https:\/\/localhost:\d+$/);
    expect(sandbox.certFile).toBe(join(dir, "tls", "localhost.crt"));
    expect(await readFile(sandbox.certFile, "utf8")).toBe(sandbox.caPem);
    expect((await stat(join(dir, "tls", "localhost.key"))).mode & 0o077).toBe(0);
  });

  for (const encoding of ENCODINGS) {
    it(`approves every published valid test card (${encoding})`, async () => {
      for (const card of testCards.valid) {
        const cvc = card.brand === "amex" ? "1234" : CVC;
        const answer = await charge({ number: card.number, cvc, amount: 1234 }, encoding);
        expect(answer.status, card.brand).toBe(200);
        expect(answer.json).toMatchObject({
          object: "charge",
          status: "succeeded",
          amount: 1234,
          currency: "usd",
          card: { brand: card.brand, last4: card.number.slice(-4), exp_month: 12 },
        });
        expect(answer.json.id).toMatch(/^ch_[0-9A-Za-z]{22}$/);
        expect(answer.json.authorization_id).toMatch(/^auth_[0-9A-Za-z]{22}$/);
      }
    });

    it.each(EXPECTED)(`answers $number with $status $code (${encoding})`, async (row) => {
      const answer = await charge({ number: row.number, cvc: CVC }, encoding);
      expect(answer.status).toBe(row.status);
      expect(answer.json).toEqual({
        error: {
          type: row.status === 402 ? "card_error" : "api_error",
          code: row.code,
          ...(row.decline === undefined ? {} : { decline_code: row.decline }),
          message: expect.any(String),
          charge: expect.stringMatching(/^ch_/),
        },
      });
    });

    it(`declines any card past its expiry month as expired_card (${encoding})`, async () => {
      const lastYear = new Date().getUTCFullYear() - 1;
      const answer = await charge({ number: "4242424242424242", expYear: lastYear }, encoding);
      expect(answer.status).toBe(402);
      expect(answer.json).toMatchObject({ error: { code: "expired_card" } });
    });

    it(`refuses a Luhn-invalid number with 400 (${encoding})`, async () => {
      for (const number of testCards.invalid_luhn) {
        const answer = await charge({ number, cvc: "123" }, encoding);
        expect(answer.status).toBe(400);
        expect(answer.json).toMatchObject({
          error: {
            type: "invalid_request_error",
            param: "card.number",
            issues: [{ code: "PAN_LUHN" }],
          },
        });
      }
    });

    it(`refuses a bad amount or currency with 400 (${encoding})`, async () => {
      const cases = [
        { amount: 0, code: "AMOUNT_INVALID" },
        { amount: -100, code: "AMOUNT_INVALID" },
        { amount: "12.5", code: "AMOUNT_INVALID" },
        { currency: "dollars", code: "CURRENCY_INVALID" },
        { currency: "u1d", code: "CURRENCY_INVALID" },
      ];
      for (const { code, ...input } of cases) {
        const answer = await charge({ number: "4242424242424242", ...input }, encoding);
        expect(answer.status, code).toBe(400);
        expect(answer.json).toMatchObject({ error: { issues: [{ code }] } });
      }
    });
  }

  it("refuses malformed JSON and form bodies, other media types, paths and methods", async () => {
    const notJson = await raw(`{"card":{"number":"4242424242424242"`);
    expect(notJson.status).toBe(400);
    expect(notJson.json).toMatchObject({ error: { code: "body_invalid" } });
    const twice = await raw("amount=1&amount=2", {
      contentType: "application/x-www-form-urlencoded",
    });
    expect(twice.status).toBe(400);
    const notObject = await raw("[1,2]");
    expect(notObject.json).toMatchObject({ error: { issues: [{ code: "BODY_INVALID" }] } });
    expect(
      (await raw(chargeJson({ number: "4242424242424242" }), { contentType: "text/plain" })).status,
    ).toBe(415);
    expect(
      (await raw(chargeJson({ number: "4242424242424242" }), { path: "/v1/refunds" })).status,
    ).toBe(404);
    const get = await raw("", { method: "GET" });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe("POST");
    const huge = await raw(Buffer.alloc(70 * 1024, 0x20));
    expect(huge.status).toBe(413);
  });

  it("never echoes a card number or CVC in a response or in its log", async () => {
    // Runs last in this file: everything sent above is in `answers` and `log.lines`.
    expect(answers.length).toBeGreaterThan(60);
    for (const answer of answers) expectNoCardData(answer.text);
    const charges = log.lines.filter((line) => line.includes('"sandbox charge"'));
    expect(charges.length).toBeGreaterThan(40);
    for (const line of log.lines) expectNoCardData(line);
    expect(charges.some((line) => line.includes('"last4":"4242"'))).toBe(true);
  });

  it("is reachable through the vault's SSRF-safe client with its certificate as the trust anchor", async () => {
    const safeFetch = createSafeFetch({ allowLoopback: true, ca: sandbox.caPem });
    const allow = [{ host: "localhost", port: sandbox.port, pathPrefix: "/v1/charges" }];
    const result = await safeFetch(
      {
        method: "POST",
        url: sandbox.chargesUrl,
        headers: { "content-type": "application/json" },
        body: chargeJson({ number: "4242424242424242", cvc: CVC }),
      },
      allow,
    );
    expect(result.ok && result.response.status).toBe(200);
    // Without the sandbox certificate the same request fails verification.
    const untrusting = createSafeFetch({ allowLoopback: true });
    const refused = await untrusting(
      { method: "POST", url: sandbox.chargesUrl, body: "{}" },
      allow,
    );
    expect(refused).toMatchObject({ ok: false, failure: { reason: "TLS_FAILED" } });
  });
});
