import { execFileSync } from "node:child_process";
import { createPrivateKey, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Clock } from "../../../src/services/clock.js";
import {
  assertPaypalVerifierOptions,
  type PaypalCertificate,
  parseTransmissionTime,
  paypalCertificate,
  paypalSignedString,
  verifyPaypalWebhook,
} from "../../../src/webhooks/signatures/paypal.js";
import { PROCESSOR_BODY, reserialized, withOneByteChanged } from "./fixtures.js";

/**
 * PayPal's certificates cannot be used offline without its private key, so each run makes its
 * own RSA keys and self-signed certificates with openssl in a temporary directory.
 */
interface Signer {
  readonly key: KeyObject;
  readonly certPem: string;
}

const URL_A = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77";
const URL_B = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270";
const WEBHOOK_ID = "1JE4291016473214C";
const TRANSMISSION_ID = "69cd13f0-d67a-11e5-baa3-778b53f4ae55";

let dir: string;
let a: Signer;
let b: Signer;
let ecPem: string;
let trusted: PaypalCertificate[];
let nowMs: number;

function makeSigner(name: string, keyArgs: string[]): Signer {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      ...keyArgs,
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "30",
      "-subj",
      `/CN=${name}.paypal.test`,
    ],
    { stdio: "ignore" },
  );
  return { key: createPrivateKey(readFileSync(keyPath)), certPem: readFileSync(certPath, "utf8") };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "payvault-paypal-"));
  a = makeSigner("a", ["-newkey", "rsa:2048"]);
  b = makeSigner("b", ["-newkey", "rsa:2048"]);
  ecPem = makeSigner("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]).certPem;
  trusted = [paypalCertificate(URL_A, a.certPem), paypalCertificate(URL_B, b.certPem)];
  // A whole second one day into the certificates' validity.
  nowMs = Math.floor(Date.parse(trusted[0]!.certificate.validFrom) / 1000) * 1000 + 86_400_000;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const clockAtMs = (ms: number): Clock => ({ now: () => new Date(ms) });
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

function headersFor(
  body: Buffer,
  opts: { signer?: Signer; url?: string; sentAt?: number; webhookId?: string } = {},
): Record<string, string> {
  const time = isoSeconds(opts.sentAt ?? nowMs);
  const signed = paypalSignedString(TRANSMISSION_ID, time, opts.webhookId ?? WEBHOOK_ID, body);
  const signature = sign("sha256", Buffer.from(signed), (opts.signer ?? a).key);
  return {
    "paypal-transmission-id": TRANSMISSION_ID,
    "paypal-transmission-time": time,
    "paypal-transmission-sig": signature.toString("base64"),
    "paypal-auth-algo": "SHA256withRSA",
    "paypal-cert-url": opts.url ?? URL_A,
  };
}

function verify(body: Buffer, headers: Record<string, string | string[]>, at = nowMs) {
  return verifyPaypalWebhook(body, headers, {
    webhookId: WEBHOOK_ID,
    certificates: trusted,
    clock: clockAtMs(at),
  });
}

describe("PayPal signature: transmission id | time | webhook id | crc32(body)", () => {
  it("builds the signed string with the body's CRC-32 as unsigned decimal (independently)", () => {
    const time = isoSeconds(nowMs);
    const expected = `${TRANSMISSION_ID}|${time}|${WEBHOOK_ID}|${zlib.crc32(PROCESSOR_BODY) >>> 0}`;
    expect(paypalSignedString(TRANSMISSION_ID, time, WEBHOOK_ID, PROCESSOR_BODY)).toBe(expected);
    expect(paypalSignedString("x", "t", "w", Buffer.from("123456789"))).toBe("x|t|w|3421780262");
  });

  it("accepts a body signed with the configured certificate's key", () => {
    expect(verify(PROCESSOR_BODY, headersFor(PROCESSOR_BODY))).toEqual({
      ok: true,
      value: {
        transmissionId: TRANSMISSION_ID,
        transmissionTime: isoSeconds(nowMs),
        certificateIndex: 0,
      },
    });
  });

  it("refuses another key, another webhook id, a changed byte, a re-serialized body, a string", () => {
    expect(verify(PROCESSOR_BODY, headersFor(PROCESSOR_BODY, { signer: b }))).toMatchObject({
      reason: "signature_mismatch",
      header: "paypal-transmission-sig",
    });
    const otherEndpoint = headersFor(PROCESSOR_BODY, { webhookId: "8PT597110X687430LKGECATA" });
    expect(verify(PROCESSOR_BODY, otherEndpoint)).toMatchObject({ reason: "signature_mismatch" });
    const headers = headersFor(PROCESSOR_BODY);
    expect(verify(withOneByteChanged(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    expect(verify(reserialized(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    const text = PROCESSOR_BODY.toString() as unknown as Buffer;
    expect(verify(text, headers)).toEqual({ ok: false, reason: "body_not_raw" });
  });

  it("accepts ±300 s and refuses ±301 s around the transmission time", () => {
    const headers = headersFor(PROCESSOR_BODY);
    expect(verify(PROCESSOR_BODY, headers, nowMs + 300_000).ok).toBe(true);
    expect(verify(PROCESSOR_BODY, headers, nowMs - 300_000).ok).toBe(true);
    expect(verify(PROCESSOR_BODY, headers, nowMs + 301_000)).toMatchObject({
      reason: "timestamp_too_old",
    });
    expect(verify(PROCESSOR_BODY, headers, nowMs - 301_000)).toMatchObject({
      reason: "timestamp_in_future",
    });
  });
});

describe("PayPal certificates: configured, selected by URL, never fetched", () => {
  it("selects the certificate by cert URL during a rotation", () => {
    const byB = headersFor(PROCESSOR_BODY, { signer: b, url: URL_B });
    expect(verify(PROCESSOR_BODY, byB)).toMatchObject({ ok: true, value: { certificateIndex: 1 } });
    const mislabelled = headersFor(PROCESSOR_BODY, { signer: b, url: URL_A });
    expect(verify(PROCESSOR_BODY, mislabelled)).toMatchObject({ reason: "signature_mismatch" });
  });

  it("refuses an unknown cert URL even with a valid signature", () => {
    for (const url of [
      "https://evil.example/cert.pem",
      `${URL_A}?`,
      URL_A.replace("https:", "http:"),
    ]) {
      expect(verify(PROCESSOR_BODY, headersFor(PROCESSOR_BODY, { url }))).toMatchObject({
        reason: "untrusted_certificate",
        header: "paypal-cert-url",
      });
    }
  });

  it("refuses when the configured certificate has expired at the clock's time", () => {
    const after = Date.parse(trusted[0]!.certificate.validTo) + 1000;
    const headers = headersFor(PROCESSOR_BODY, { sentAt: after });
    expect(verify(PROCESSOR_BODY, headers, after)).toMatchObject({
      reason: "certificate_not_valid_now",
    });
  });

  it("refuses any algorithm but SHA256withRSA", () => {
    const headers = { ...headersFor(PROCESSOR_BODY), "paypal-auth-algo": "SHA1withRSA" };
    expect(verify(PROCESSOR_BODY, headers)).toMatchObject({ reason: "unsupported_algorithm" });
  });

  it("configures only https URLs and RSA certificates", () => {
    expect(() => paypalCertificate("http://api.paypal.com/cert", a.certPem)).toThrow(TypeError);
    expect(() => paypalCertificate(URL_A, ecPem)).toThrow(TypeError);
    expect(() => paypalCertificate(URL_A, "not a pem")).toThrow();
  });

  it("validates verifier options", () => {
    const clock = clockAtMs(nowMs);
    expect(() =>
      assertPaypalVerifierOptions({ webhookId: "a|b", certificates: trusted, clock }),
    ).toThrow(TypeError);
    expect(() =>
      assertPaypalVerifierOptions({ webhookId: WEBHOOK_ID, certificates: [], clock }),
    ).toThrow(RangeError);
    expect(() =>
      assertPaypalVerifierOptions({ webhookId: WEBHOOK_ID, certificates: trusted, clock }),
    ).not.toThrow();
  });
});

describe("PayPal headers", () => {
  it.each([
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-auth-algo",
    "paypal-cert-url",
  ])("refuses a missing or repeated %s", (name) => {
    const headers: Record<string, string | string[]> = { ...headersFor(PROCESSOR_BODY) };
    const value = headers[name] as string;
    headers[name] = [value, value];
    expect(verify(PROCESSOR_BODY, headers)).toMatchObject({
      reason: "duplicate_header",
      header: name,
    });
    delete headers[name];
    expect(verify(PROCESSOR_BODY, headers)).toEqual({
      ok: false,
      reason: "missing_header",
      header: name,
    });
  });

  it.each([
    [
      "a transmission id with the | delimiter",
      { "paypal-transmission-id": "a|b" },
      "malformed_header",
    ],
    ["a signature that is not base64", { "paypal-transmission-sig": "@@@@" }, "malformed_header"],
    [
      "an impossible date",
      { "paypal-transmission-time": "2024-02-30T10:00:00Z" },
      "malformed_timestamp",
    ],
    [
      "a time without zone",
      { "paypal-transmission-time": "2024-05-26T16:49:39" },
      "malformed_timestamp",
    ],
    [
      "a time with offset",
      { "paypal-transmission-time": "2024-05-26T16:49:39+02:00" },
      "malformed_timestamp",
    ],
    ["a unix time", { "paypal-transmission-time": "1716742179" }, "malformed_timestamp"],
    ["an oversized signature", { "paypal-transmission-sig": "A".repeat(685) }, "header_too_large"],
    [
      "an oversized cert URL",
      { "paypal-cert-url": `https://${"a".repeat(505)}` },
      "header_too_large",
    ],
    ["a truncated signature", { "paypal-transmission-sig": "AAAA" }, "signature_mismatch"],
  ])("refuses %s", (_label, patch, reason) => {
    expect(verify(PROCESSOR_BODY, { ...headersFor(PROCESSOR_BODY), ...patch })).toMatchObject({
      ok: false,
      reason,
    });
  });

  it("parses RFC 3339 UTC times with an optional fraction", () => {
    expect(parseTransmissionTime("2024-05-26T16:49:39Z")).toBe(Date.UTC(2024, 4, 26, 16, 49, 39));
    expect(parseTransmissionTime("2024-05-26T16:49:39.250Z")).toBe(
      Date.UTC(2024, 4, 26, 16, 49, 39, 250),
    );
    expect(parseTransmissionTime("2024-13-01T00:00:00Z")).toBeUndefined();
  });
});
