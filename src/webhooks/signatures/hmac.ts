import type { SecretBytes } from "../../crypto/secret.js";
import type { Clock } from "../../services/clock.js";
import { readSingleHeader } from "./header-reader.js";
import { type MacAlgorithm, macOf, matchingSecretIndex } from "./mac-match.js";
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
 * A configurable HMAC header scheme for providers without a dedicated verifier, e.g. GitHub's
 * `X-Hub-Signature-256: sha256=<hex>` over the body. With a timestamp header the MAC covers
 * `${timestamp}${separator}${body}` and the timestamp is held to a replay window; without one
 * there is NO replay protection beyond event-id deduplication, which the docs call out.
 */
export interface HmacScheme {
  /** Lower-case header carrying the signature. */
  readonly signatureHeader: string;
  readonly algorithm: MacAlgorithm;
  readonly encoding: "hex" | "base64";
  /** Literal text before the encoded MAC, e.g. "sha256=" (GitHub). */
  readonly prefix?: string;
  readonly timestamp?: {
    /** Lower-case header carrying unix seconds. */
    readonly header: string;
    /** Between timestamp and body in the signed content; "." unless set. */
    readonly separator?: string;
    readonly toleranceSeconds?: number;
  };
}

export interface HmacVerifierOptions {
  readonly scheme: HmacScheme;
  /** Secrets; several during a rotation overlap. */
  readonly secrets: readonly SecretBytes[];
  readonly clock: Clock;
}

export interface HmacVerified {
  /** Present when the scheme has a timestamp header. */
  readonly timestamp?: number;
  readonly secretIndex: number;
}

const HEADER_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const PRINTABLE = /^[\x21-\x7e]{0,32}$/;
const MAC_BYTES: Readonly<Record<MacAlgorithm, number>> = { sha256: 32, sha512: 64 };
/** RFC 2104 §3 / SP 800-107r1 §5.3.4: a key shorter than 128 bits caps the MAC's strength. */
export const MIN_HMAC_SECRET_BYTES = 16;

/** Refuses a scheme that could never verify safely; call when the endpoint is configured. */
export function assertHmacScheme(scheme: HmacScheme): void {
  if (!HEADER_NAME.test(scheme.signatureHeader)) {
    throw new TypeError("signatureHeader must be a lower-case header name");
  }
  if (scheme.algorithm !== "sha256" && scheme.algorithm !== "sha512") {
    throw new TypeError("algorithm must be sha256 or sha512");
  }
  if (scheme.encoding !== "hex" && scheme.encoding !== "base64") {
    throw new TypeError("encoding must be hex or base64");
  }
  if (scheme.prefix !== undefined && !PRINTABLE.test(scheme.prefix)) {
    throw new TypeError("prefix must be at most 32 printable ASCII characters");
  }
  const ts = scheme.timestamp;
  if (ts !== undefined) {
    if (!HEADER_NAME.test(ts.header) || ts.header === scheme.signatureHeader) {
      throw new TypeError("timestamp.header must be another lower-case header name");
    }
    if (ts.separator !== undefined && !/^[\x20-\x7e]{1,8}$/.test(ts.separator)) {
      throw new TypeError("timestamp.separator must be 1..8 printable ASCII characters");
    }
    assertTolerance(ts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS);
  }
}

export function assertHmacSecrets(secrets: readonly SecretBytes[]): void {
  if (secrets.length === 0 || secrets.some((s) => s.byteLength < MIN_HMAC_SECRET_BYTES)) {
    throw new RangeError(`HMAC webhook secrets must be at least ${MIN_HMAC_SECRET_BYTES} bytes`);
  }
}

function encodedLength(scheme: HmacScheme): number {
  const bytes = MAC_BYTES[scheme.algorithm];
  return scheme.encoding === "hex" ? bytes * 2 : Math.ceil(bytes / 3) * 4;
}

function encodedPattern(scheme: HmacScheme): RegExp {
  const bytes = MAC_BYTES[scheme.algorithm];
  if (scheme.encoding === "hex") {
    return new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`);
  }
  // Canonical, padded base64 of exactly `bytes` bytes (32 → 43 chars + "=", 64 → 86 + "==").
  return bytes === 32 ? /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/ : /^[A-Za-z0-9+/]{85}[AQgw]==$/;
}

function signedParts(scheme: HmacScheme, timestamp: string | undefined, body: Buffer): Buffer[] {
  if (scheme.timestamp === undefined || timestamp === undefined) {
    return [body];
  }
  return [Buffer.from(`${timestamp}${scheme.timestamp.separator ?? "."}`, "ascii"), body];
}

/** Verifies one signature header against every configured secret, on the raw bytes. */
export function verifyHmacWebhook(
  rawBody: Buffer,
  headers: WebhookHeaders,
  options: HmacVerifierOptions,
): WebhookVerification<HmacVerified> {
  if (!isRawBody(rawBody)) {
    return reject("body_not_raw");
  }
  const { scheme } = options;
  const name = scheme.signatureHeader;
  const prefix = scheme.prefix ?? "";
  const header = readSingleHeader(headers, name, prefix.length + encodedLength(scheme));
  if (!header.ok) {
    return header;
  }
  const encoded = header.value.startsWith(prefix) ? header.value.slice(prefix.length) : undefined;
  if (encoded === undefined || !encodedPattern(scheme).test(encoded)) {
    return reject("malformed_header", name);
  }
  let timestampText: string | undefined;
  let timestamp: number | undefined;
  if (scheme.timestamp !== undefined) {
    const ts = readSingleHeader(headers, scheme.timestamp.header, 32);
    if (!ts.ok) {
      return ts;
    }
    timestamp = parseUnixSeconds(ts.value);
    if (timestamp === undefined) {
      return reject("malformed_timestamp", scheme.timestamp.header);
    }
    timestampText = ts.value;
  }
  const presented = [Buffer.from(encoded, scheme.encoding)];
  const parts = signedParts(scheme, timestampText, rawBody);
  const secretIndex = matchingSecretIndex(scheme.algorithm, options.secrets, parts, presented);
  if (secretIndex === -1) {
    return reject("signature_mismatch", name);
  }
  if (scheme.timestamp === undefined || timestamp === undefined) {
    return accept({ secretIndex });
  }
  const tolerance = scheme.timestamp.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const late = checkTolerance(
    timestamp,
    nowUnixSeconds(options.clock),
    tolerance,
    scheme.timestamp.header,
  );
  return late ?? accept({ timestamp, secretIndex });
}

/** Signature (and timestamp) headers for `rawBody` under `scheme`, with one secret. */
export function signHmacWebhook(
  rawBody: Buffer,
  options: { readonly scheme: HmacScheme; readonly secret: SecretBytes; readonly clock: Clock },
): Record<string, string> {
  if (!isRawBody(rawBody)) {
    throw new TypeError("sign the raw body bytes (a Buffer), not a parsed or re-encoded value");
  }
  const { scheme } = options;
  const timestamp = String(nowUnixSeconds(options.clock));
  const parts = signedParts(scheme, timestamp, rawBody);
  const mac = macOf(scheme.algorithm, options.secret, parts).toString(scheme.encoding);
  const headers: Record<string, string> = {
    [scheme.signatureHeader]: `${scheme.prefix ?? ""}${mac}`,
  };
  if (scheme.timestamp !== undefined) {
    headers[scheme.timestamp.header] = timestamp;
  }
  return headers;
}
