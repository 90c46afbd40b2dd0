/**
 * Which request headers an outbound request may carry. Hop-by-hop and framing headers are set
 * by the client itself and never taken from a caller (RFC 9110 §7.6.1, RFC 9112 §6: a
 * caller-chosen `Host`, `Content-Length` or `Transfer-Encoding` is request smuggling material);
 * the rest must pass the caller's allowlist hook.
 */
export type HeaderAllowlist = (lowercaseName: string) => boolean;

const CLIENT_OWNED: ReadonlySet<string> = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "expect",
  "http2-settings",
  // The body comes back as sent (identity) so callers can scan and scrub it.
  "accept-encoding",
]);

const DEFAULT_ALLOWED: ReadonlySet<string> = new Set([
  "accept",
  "authorization",
  "content-type",
  "idempotency-key",
  "user-agent",
  // Standard Webhooks: the signed deliveries of the vault's own events to merchants.
  "webhook-id",
  "webhook-signature",
  "webhook-timestamp",
  // Processors' own request headers (API version, connected account, idempotency, API keys).
  "stripe-version",
  "stripe-account",
  "paypal-request-id",
  "prefer",
  "x-api-key",
]);

/** The default hook: a short list of end-to-end headers processors and webhooks need. */
export const defaultHeaderAllowlist: HeaderAllowlist = (name) => DEFAULT_ALLOWED.has(name);

/** RFC 9110 §5.1 token characters. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/**
 * RFC 9110 §5.5: visible ASCII, space and tab only. CR, LF and NUL would inject headers; other
 * characters (a cardholder name in another script) are not valid field values, and Node throws
 * on them when the request is written, too late to answer cleanly.
 */
const unsafeValue = (value: string): boolean => /[^\t\x20-\x7e]/.test(value);

export type HeaderCheck =
  | { readonly ok: true; readonly headers: Record<string, string> }
  | { readonly ok: false; readonly header: string };

/**
 * Lower-cases and checks each header; the first refused one is named (by name, never by value).
 * A name that is not a token is reported as `(invalid name)` so a crafted name is not echoed.
 */
export function checkRequestHeaders(
  headers: Readonly<Record<string, string>>,
  allow: HeaderAllowlist,
): HeaderCheck {
  const checked: Record<string, string> = Object.create(null);
  for (const [rawName, value] of Object.entries(headers)) {
    if (!TOKEN.test(rawName)) return { ok: false, header: "(invalid name)" };
    const name = rawName.toLowerCase();
    if (CLIENT_OWNED.has(name) || !allow(name) || unsafeValue(value) || name in checked) {
      return { ok: false, header: name };
    }
    checked[name] = value;
  }
  checked["accept-encoding"] = "identity";
  return { ok: true, headers: checked };
}
