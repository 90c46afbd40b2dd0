import { verify, X509Certificate } from "node:crypto";
import type { Clock } from "../../services/clock.js";
import { crc32 } from "./crc32.js";
import { readSingleHeader } from "./header-reader.js";
import { assertTolerance, DEFAULT_TOLERANCE_SECONDS } from "./unix-time.js";
import {
  accept,
  isRawBody,
  reject,
  type WebhookHeaders,
  type WebhookRejection,
  type WebhookVerification,
} from "./verification.js";

/**
 * PayPal webhook signatures, verified offline (developer.paypal.com, "Verify webhook signature",
 * self-verification): an RSA PKCS#1 v1.5 SHA-256 signature (`SHA256withRSA`) over
 * `${transmissionId}|${transmissionTime}|${webhookId}|${crc32(rawBody)}`, the CRC as an
 * unsigned decimal and `webhookId` the id PayPal gave OUR endpoint (not taken from the request).
 *
 * The certificate is never fetched. The `paypal-cert-url` header only SELECTS one of the
 * configured certificates by exact URL match; an unknown URL is refused. Pinning leaf
 * certificates this way means a new PayPal certificate is accepted only once an operator has
 * configured it (next to the old one, so rotation overlaps), and a request cannot point the
 * vault at a URL of the attacker's choosing (SSRF, forged certificate).
 */
export const PAYPAL_HEADERS = {
  transmissionId: "paypal-transmission-id",
  transmissionTime: "paypal-transmission-time",
  transmissionSig: "paypal-transmission-sig",
  authAlgo: "paypal-auth-algo",
  certUrl: "paypal-cert-url",
} as const;

export const PAYPAL_AUTH_ALGORITHM = "SHA256withRSA";

/** PayPal ids are UUIDs or upper-case alphanumerics; no `|`, which delimits the signed string. */
const PAYPAL_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** RFC 3339 UTC as PayPal sends it, e.g. 2024-05-26T16:49:39Z, optional fraction. */
const TRANSMISSION_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;
/** Base64 of at most a 4096-bit RSA signature (512 bytes → 684 chars). */
const MAX_SIGNATURE_CHARS = 684;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_URL_CHARS = 512;

export interface PaypalCertificate {
  /** The exact `paypal-cert-url` PayPal sends for this certificate (https only). */
  readonly url: string;
  readonly certificate: X509Certificate;
}

export interface PaypalVerifierOptions {
  /** The id PayPal assigned to this webhook endpoint. */
  readonly webhookId: string;
  /** Trusted certificates; more than one while PayPal rotates. */
  readonly certificates: readonly PaypalCertificate[];
  readonly clock: Clock;
  readonly toleranceSeconds?: number;
}

export interface PaypalVerified {
  readonly transmissionId: string;
  readonly transmissionTime: string;
  readonly certificateIndex: number;
}

/** Parses a PEM certificate for configuration, refusing anything but an RSA key. */
export function paypalCertificate(url: string, pem: string): PaypalCertificate {
  const certificate = new X509Certificate(pem);
  if (certificate.publicKey.asymmetricKeyType !== "rsa") {
    throw new TypeError("a PayPal webhook certificate carries an RSA key");
  }
  if (!url.startsWith("https://") || url.length > MAX_URL_CHARS) {
    throw new TypeError("a PayPal certificate URL is an https URL");
  }
  return { url, certificate };
}

export function assertPaypalVerifierOptions(options: PaypalVerifierOptions): void {
  if (!PAYPAL_ID.test(options.webhookId)) {
    throw new TypeError("webhookId must be PayPal's id: letters, digits, '-' or '_'");
  }
  if (options.certificates.length === 0) {
    throw new RangeError("at least one PayPal certificate is required");
  }
  assertTolerance(options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS);
}

/** Milliseconds since the epoch, or undefined unless the text is a real UTC instant. */
export function parseTransmissionTime(text: string): number | undefined {
  const m = TRANSMISSION_TIME.exec(text);
  if (m === null) {
    return undefined;
  }
  const ms = Date.parse(text);
  // Date.parse rolls 2024-02-30 over to March; the round trip catches impossible dates.
  const back = Number.isNaN(ms) ? "" : new Date(ms).toISOString();
  return back.slice(0, 19) === text.slice(0, 19) ? ms : undefined;
}

/** The exact string PayPal signs. */
export function paypalSignedString(
  transmissionId: string,
  transmissionTime: string,
  webhookId: string,
  rawBody: Buffer,
): string {
  return `${transmissionId}|${transmissionTime}|${webhookId}|${crc32(rawBody)}`;
}

type PaypalHeaderKey = keyof typeof PAYPAL_HEADERS;
type PaypalHeaderValues = { readonly [K in PaypalHeaderKey]: string };

/** Length caps, checked before any parsing. */
const HEADER_LIMITS: Readonly<Record<PaypalHeaderKey, number>> = {
  transmissionId: 128,
  transmissionTime: 40,
  transmissionSig: MAX_SIGNATURE_CHARS,
  authAlgo: 32,
  certUrl: MAX_URL_CHARS,
};

function readPaypalHeaders(headers: WebhookHeaders): PaypalHeaderValues | WebhookRejection {
  const out: Partial<Record<PaypalHeaderKey, string>> = {};
  for (const key of Object.keys(PAYPAL_HEADERS) as PaypalHeaderKey[]) {
    const read = readSingleHeader(headers, PAYPAL_HEADERS[key], HEADER_LIMITS[key]);
    if (!read.ok) {
      return read;
    }
    out[key] = read.value;
  }
  return out as PaypalHeaderValues;
}

/** RSASSA-PKCS1-v1_5 with SHA-256; a signature of the wrong size is a mismatch, not a crash. */
function rsaSha256Verifies(certificate: X509Certificate, data: string, signature: Buffer): boolean {
  try {
    return verify("sha256", Buffer.from(data, "utf8"), certificate.publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * Verifies a PayPal webhook on the raw bytes against a configured certificate. Order: header
 * shapes, algorithm, certificate selection and validity, signature, and only then the replay
 * window, so "too old" is reported for authentic requests only.
 */
export function verifyPaypalWebhook(
  rawBody: Buffer,
  headers: WebhookHeaders,
  options: PaypalVerifierOptions,
): WebhookVerification<PaypalVerified> {
  if (!isRawBody(rawBody)) {
    return reject("body_not_raw");
  }
  const h = readPaypalHeaders(headers);
  if ("ok" in h) {
    return h;
  }
  if (!PAYPAL_ID.test(h.transmissionId)) {
    return reject("malformed_header", PAYPAL_HEADERS.transmissionId);
  }
  const sentAt = parseTransmissionTime(h.transmissionTime);
  if (sentAt === undefined) {
    return reject("malformed_timestamp", PAYPAL_HEADERS.transmissionTime);
  }
  if (!BASE64.test(h.transmissionSig)) {
    return reject("malformed_header", PAYPAL_HEADERS.transmissionSig);
  }
  if (h.authAlgo !== PAYPAL_AUTH_ALGORITHM) {
    return reject("unsupported_algorithm", PAYPAL_HEADERS.authAlgo);
  }
  const certificateIndex = options.certificates.findIndex((c) => c.url === h.certUrl);
  const trusted = options.certificates[certificateIndex];
  if (trusted === undefined) {
    return reject("untrusted_certificate", PAYPAL_HEADERS.certUrl);
  }
  const now = options.clock.now();
  if (!certificateValidAt(trusted.certificate, now)) {
    return reject("certificate_not_valid_now", PAYPAL_HEADERS.certUrl);
  }
  const signed = paypalSignedString(
    h.transmissionId,
    h.transmissionTime,
    options.webhookId,
    rawBody,
  );
  const signature = Buffer.from(h.transmissionSig, "base64");
  if (!rsaSha256Verifies(trusted.certificate, signed, signature)) {
    return reject("signature_mismatch", PAYPAL_HEADERS.transmissionSig);
  }
  const toleranceMs = (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS) * 1000;
  if (now.getTime() - sentAt > toleranceMs) {
    return reject("timestamp_too_old", PAYPAL_HEADERS.transmissionTime);
  }
  if (sentAt - now.getTime() > toleranceMs) {
    return reject("timestamp_in_future", PAYPAL_HEADERS.transmissionTime);
  }
  return accept({
    transmissionId: h.transmissionId,
    transmissionTime: h.transmissionTime,
    certificateIndex,
  });
}

function certificateValidAt(certificate: X509Certificate, at: Date): boolean {
  const t = at.getTime();
  return Date.parse(certificate.validFrom) <= t && t <= Date.parse(certificate.validTo);
}
