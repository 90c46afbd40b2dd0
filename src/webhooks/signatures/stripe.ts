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
 * Stripe webhook signatures (docs.stripe.com/webhooks#verify-manually):
 * `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`, where the MAC is
 * keyed with the endpoint secret (the whole `whsec_…` string, as UTF-8) over `${t}.${rawBody}`.
 * Only `v1` is checked; `v0` (test mode, legacy) and unknown schemes are ignored.
 */
export const STRIPE_SIGNATURE_HEADER = "stripe-signature";

/** A few signatures fit in ~300 characters; anything near this cap is not Stripe. */
const MAX_HEADER_LENGTH = 2048;
const MAX_ITEMS = 16;
const ITEM_KEY = /^[a-z0-9]{1,8}$/;
const V1_HEX = /^[0-9a-f]{64}$/;
const SECRET_PREFIX = "whsec_";
const MIN_SECRET_CHARS = 16;

export interface StripeVerifierOptions {
  /** Endpoint secrets; more than one while a rotation overlaps (Stripe's "roll secret"). */
  readonly secrets: readonly SecretBytes[];
  readonly clock: Clock;
  readonly toleranceSeconds?: number;
}

export interface StripeVerified {
  readonly timestamp: number;
  /** Which configured secret matched: once it is never the old one, the rotation can end. */
  readonly secretIndex: number;
}

/**
 * Wraps a Stripe endpoint secret (`whsec_…`). Stripe keys the HMAC with the string itself, not
 * a decoding of it. The error never repeats the value.
 */
export function stripeSigningSecret(secret: string): SecretBytes {
  if (
    !secret.startsWith(SECRET_PREFIX) ||
    secret.length < SECRET_PREFIX.length + MIN_SECRET_CHARS
  ) {
    throw new TypeError("a Stripe webhook secret is whsec_ followed by at least 16 characters");
  }
  return SecretBytes.from(Buffer.from(secret, "utf8"));
}

interface ParsedStripeHeader {
  readonly timestamp: string;
  readonly v1: readonly Buffer[];
}

/** Strict parse: one `t`, digits only; every `v1` 64 lower-case hex; no empty or bare items. */
function parseStripeHeader(value: string): ParsedStripeHeader | "malformed" | "too_large" {
  const items = value.split(",");
  if (items.length > MAX_ITEMS) {
    return "too_large";
  }
  let timestamp: string | undefined;
  const v1: Buffer[] = [];
  for (const item of items) {
    const eq = item.indexOf("=");
    const key = eq === -1 ? "" : item.slice(0, eq);
    const itemValue = item.slice(eq + 1);
    // Node joins a repeated header with ", ": the space makes the key fail here, so a second
    // header cannot smuggle in a second `t`.
    if (!ITEM_KEY.test(key) || itemValue === "") {
      return "malformed";
    }
    if (key === "t") {
      if (timestamp !== undefined) {
        return "malformed";
      }
      timestamp = itemValue;
    } else if (key === "v1") {
      if (!V1_HEX.test(itemValue)) {
        return "malformed";
      }
      v1.push(Buffer.from(itemValue, "hex"));
    }
  }
  return timestamp === undefined ? "malformed" : { timestamp, v1 };
}

/**
 * Verifies a Stripe webhook on the raw request bytes. The signature is checked before the
 * timestamp window, so "too old" / "in future" are only ever reported for authentic requests
 * and a forger learns nothing from the reason.
 */
export function verifyStripeWebhook(
  rawBody: Buffer,
  headers: WebhookHeaders,
  options: StripeVerifierOptions,
): WebhookVerification<StripeVerified> {
  if (!isRawBody(rawBody)) {
    return reject("body_not_raw");
  }
  const header = readSingleHeader(headers, STRIPE_SIGNATURE_HEADER, MAX_HEADER_LENGTH);
  if (!header.ok) {
    return header;
  }
  const parsed = parseStripeHeader(header.value);
  if (parsed === "too_large") {
    return reject("header_too_large", STRIPE_SIGNATURE_HEADER);
  }
  if (parsed === "malformed") {
    return reject("malformed_header", STRIPE_SIGNATURE_HEADER);
  }
  const timestamp = parseUnixSeconds(parsed.timestamp);
  if (timestamp === undefined) {
    return reject("malformed_timestamp", STRIPE_SIGNATURE_HEADER);
  }
  if (parsed.v1.length === 0) {
    return reject("no_supported_signature", STRIPE_SIGNATURE_HEADER);
  }
  const signedParts = [Buffer.from(`${parsed.timestamp}.`, "ascii"), rawBody];
  const secretIndex = matchingSecretIndex("sha256", options.secrets, signedParts, parsed.v1);
  if (secretIndex === -1) {
    return reject("signature_mismatch", STRIPE_SIGNATURE_HEADER);
  }
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const late = checkTolerance(
    timestamp,
    nowUnixSeconds(options.clock),
    tolerance,
    STRIPE_SIGNATURE_HEADER,
  );
  return late ?? accept({ timestamp, secretIndex });
}

export interface StripeSignerOptions {
  /** One `v1` per secret, in order: signing with old and new secret is how a sender rotates. */
  readonly secrets: readonly SecretBytes[];
  readonly clock: Clock;
}

/** The `Stripe-Signature` value for `rawBody` at the clock's current second. */
export function signStripeWebhook(rawBody: Buffer, options: StripeSignerOptions): string {
  if (!isRawBody(rawBody)) {
    throw new TypeError("sign the raw body bytes (a Buffer), not a parsed or re-encoded value");
  }
  if (options.secrets.length === 0) {
    throw new RangeError("at least one signing secret is required");
  }
  const timestamp = nowUnixSeconds(options.clock);
  const parts = [Buffer.from(`${timestamp}.`, "ascii"), rawBody];
  const signatures = options.secrets.map(
    (secret) => `v1=${macOf("sha256", secret, parts).toString("hex")}`,
  );
  return [`t=${timestamp}`, ...signatures].join(",");
}

/** Validates options once, at configuration time, rather than on every request. */
export function assertStripeVerifierOptions(options: StripeVerifierOptions): void {
  if (options.secrets.length === 0) {
    throw new RangeError("at least one Stripe webhook secret is required");
  }
  assertTolerance(options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS);
}
