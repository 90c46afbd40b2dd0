/**
 * The one result type every webhook signature verifier returns. A failure carries a reason code
 * for logs and metrics and, at most, the NAME of the header at fault: never a header value, a
 * secret or any byte of the body (issue 6: "logged without the body").
 */
export type WebhookRejectReason =
  /** The body was not handed over as raw bytes (parsed JSON, a string): the classic bug. */
  | "body_not_raw"
  | "missing_header"
  /** The header came more than once (Node hands an array, or joins the values with ", "). */
  | "duplicate_header"
  | "header_too_large"
  | "malformed_header"
  | "malformed_timestamp"
  | "timestamp_too_old"
  | "timestamp_in_future"
  /** The header parsed, but carries no signature of a version this verifier knows. */
  | "no_supported_signature"
  | "signature_mismatch"
  | "unsupported_algorithm"
  /** PayPal: the certificate URL names no configured certificate (nothing is ever fetched). */
  | "untrusted_certificate"
  /** PayPal: the configured certificate is outside its validity period at the clock's time. */
  | "certificate_not_valid_now"
  /** PayPal: this transmission's signature was already used with another body (a forgery). */
  | "transmission_reused";

export interface WebhookRejection {
  readonly ok: false;
  readonly reason: WebhookRejectReason;
  /** Lower-case name of the offending header, when one is to blame. */
  readonly header?: string;
}

export interface WebhookAcceptance<T> {
  readonly ok: true;
  readonly value: T;
}

export type WebhookVerification<T> = WebhookAcceptance<T> | WebhookRejection;

/**
 * Request headers as Node and Fastify hand them over: lower-case names, a string per header,
 * an array when a header was repeated and Node does not join it.
 */
export type WebhookHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export function reject(reason: WebhookRejectReason, header?: string): WebhookRejection {
  return header === undefined ? { ok: false, reason } : { ok: false, reason, header };
}

export function accept<T>(value: T): WebhookAcceptance<T> {
  return { ok: true, value };
}

/**
 * Signatures cover bytes, so verification must see the bytes that came off the wire. A parsed
 * and re-serialized body differs in whitespace, key order or number formatting, and a string may
 * have lost invalid UTF-8; refusing anything but a Buffer makes that bug loud, not intermittent.
 */
export function isRawBody(body: unknown): body is Buffer {
  return Buffer.isBuffer(body);
}
