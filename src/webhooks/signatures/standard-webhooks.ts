import { SecretBytes } from "../../crypto/secret.js";
import type { Clock } from "../../services/clock.js";
import { readSingleHeader } from "./header-reader.js";
import { macOf, matchingSecretIndex } from "./mac-match.js";
import {
  assertTolerance,
  checkTolerance,
  DEFAULT_TOLERANCE_SECONDS,
  nowUnixSeconds,
  parseUnixSeconds,
} from "./unix-time.js";
import {
  accept,
  isRawBody,
  reject,
  type WebhookHeaders,
  type WebhookVerification,
} from "./verification.js";

/**
 * Standard Webhooks 1.0.0 (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md),
 * symmetric scheme: HMAC-SHA256 keyed with the base64-decoded `whsec_` secret over
 * `${webhook-id}.${webhook-timestamp}.${body}`, sent as space-delimited `v1,<base64>` entries.
 * Other versions (`v1a` asymmetric, future ones) are ignored, as the spec asks.
 */
export const STANDARD_WEBHOOK_HEADERS = {
  id: "webhook-id",
  timestamp: "webhook-timestamp",
  signature: "webhook-signature",
} as const;

const SECRET_PREFIX = "whsec_";
/** Spec, "Signature scheme": at least 24 bytes (192 bits), at most 512 bits. */
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const MAX_ID_LENGTH = 256;
/** Room for a mistaken millisecond value, which is then refused as malformed, not oversized. */
const MAX_TIMESTAMP_LENGTH = 32;
const MAX_SIGNATURE_HEADER_LENGTH = 2048;
const MAX_SIGNATURE_ENTRIES = 16;
/**
 * Printable ASCII without `.` or space. The spec requires the id not to contain `.`: the
 * signed content is `.`-delimited, and a dot in the id would let one signed message be read
 * as another with a shifted id/timestamp split.
 */
const MESSAGE_ID = /^[\x21-\x2d\x2f-\x7e]+$/;
/** Canonical base64 of exactly 32 bytes (an HMAC-SHA256). */
const V1_SIGNATURE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface StandardWebhookVerifierOptions {
  /** Endpoint secrets; several during a rotation overlap. */
  readonly secrets: readonly SecretBytes[];
  readonly clock: Clock;
  readonly toleranceSeconds?: number;
}

export interface StandardWebhookVerified {
  /** The idempotency key the spec tells receivers to dedupe on. */
  readonly id: string;
  readonly timestamp: number;
  readonly secretIndex: number;
}

/**
 * Decodes a `whsec_<base64>` secret (the spec's "secret serialization"). Throws, without
 * repeating the value, unless it is canonical base64 of 24 to 64 bytes.
 */
export function standardWebhookSecret(secret: string): SecretBytes {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : "";
  const bytes = BASE64.test(encoded) ? Buffer.from(encoded, "base64") : Buffer.alloc(0);
  if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
    throw new TypeError("a Standard Webhooks secret is whsec_ + base64 of 24 to 64 bytes");
  }
  return SecretBytes.from(bytes);
}

/** Parses `webhook-signature`; only `v1` entries are returned, each strictly decoded. */
function parseSignatureHeader(value: string): Buffer[] | "malformed" | "too_large" {
  const entries = value.split(" ").filter((entry) => entry !== "");
  if (entries.length > MAX_SIGNATURE_ENTRIES) {
    return "too_large";
  }
  const v1: Buffer[] = [];
  for (const entry of entries) {
    const comma = entry.indexOf(",");
    if (comma <= 0) {
      return "malformed";
    }
    if (entry.slice(0, comma) !== "v1") {
      continue;
    }
    const signature = entry.slice(comma + 1);
    if (!V1_SIGNATURE.test(signature)) {
      return "malformed";
    }
    v1.push(Buffer.from(signature, "base64"));
  }
  return v1;
}

function signedContent(id: string, timestamp: string, rawBody: Buffer): Buffer[] {
  return [Buffer.from(`${id}.${timestamp}.`, "ascii"), rawBody];
}

/** Verifies on the raw bytes; signature first, then the replay window (see stripe.ts). */
export function verifyStandardWebhook(
  rawBody: Buffer,
  headers: WebhookHeaders,
  options: StandardWebhookVerifierOptions,
): WebhookVerification<StandardWebhookVerified> {
  if (!isRawBody(rawBody)) {
    return reject("body_not_raw");
  }
  const { id: idName, timestamp: tsName, signature: sigName } = STANDARD_WEBHOOK_HEADERS;
  const id = readSingleHeader(headers, idName, MAX_ID_LENGTH);
  if (!id.ok) {
    return id;
  }
  if (!MESSAGE_ID.test(id.value)) {
    return reject("malformed_header", idName);
  }
  const ts = readSingleHeader(headers, tsName, MAX_TIMESTAMP_LENGTH);
  if (!ts.ok) {
    return ts;
  }
  const timestamp = parseUnixSeconds(ts.value);
  if (timestamp === undefined) {
    return reject("malformed_timestamp", tsName);
  }
  const sig = readSingleHeader(headers, sigName, MAX_SIGNATURE_HEADER_LENGTH);
  if (!sig.ok) {
    return sig;
  }
  const presented = parseSignatureHeader(sig.value);
  if (presented === "too_large") {
    return reject("header_too_large", sigName);
  }
  if (presented === "malformed") {
    return reject("malformed_header", sigName);
  }
  if (presented.length === 0) {
    return reject("no_supported_signature", sigName);
  }
  const content = signedContent(id.value, ts.value, rawBody);
  const secretIndex = matchingSecretIndex("sha256", options.secrets, content, presented);
  if (secretIndex === -1) {
    return reject("signature_mismatch", sigName);
  }
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const late = checkTolerance(timestamp, nowUnixSeconds(options.clock), tolerance, tsName);
  return late ?? accept({ id: id.value, timestamp, secretIndex });
}

/** One `v1,<base64>` entry for an explicit id and timestamp (the spec's `sign`). */
export function standardWebhookSignature(
  secret: SecretBytes,
  id: string,
  timestampSeconds: number,
  rawBody: Buffer,
): string {
  if (!MESSAGE_ID.test(id) || id.length > MAX_ID_LENGTH) {
    throw new TypeError("a webhook id is 1..256 printable ASCII characters without '.'");
  }
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new RangeError("the webhook timestamp is whole unix seconds");
  }
  const mac = macOf("sha256", secret, signedContent(id, String(timestampSeconds), rawBody));
  return `v1,${mac.toString("base64")}`;
}

export interface StandardWebhookSignerOptions {
  /** The message id; stays the same across retries of one event (spec: idempotency key). */
  readonly id: string;
  /** One signature per secret: signing with old and new secret is a zero-downtime rotation. */
  readonly secrets: readonly SecretBytes[];
  readonly clock: Clock;
}

/** A type alias, not an interface, so it is assignable to {@link WebhookHeaders}. */
export type StandardWebhookHeaderValues = {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature": string;
};

/** Headers for an outbound delivery attempt; the timestamp is the attempt's, from the clock. */
export function signStandardWebhook(
  rawBody: Buffer,
  options: StandardWebhookSignerOptions,
): StandardWebhookHeaderValues {
  if (!isRawBody(rawBody)) {
    throw new TypeError("sign the raw body bytes (a Buffer), not a parsed or re-encoded value");
  }
  if (options.secrets.length === 0) {
    throw new RangeError("at least one signing secret is required");
  }
  const timestamp = nowUnixSeconds(options.clock);
  const signatures = options.secrets.map((secret) =>
    standardWebhookSignature(secret, options.id, timestamp, rawBody),
  );
  return {
    "webhook-id": options.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}

export function assertStandardWebhookVerifierOptions(
  options: StandardWebhookVerifierOptions,
): void {
  if (options.secrets.length === 0) {
    throw new RangeError("at least one Standard Webhooks secret is required");
  }
  assertTolerance(options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS);
}
