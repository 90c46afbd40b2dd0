import { scrubPans } from "../../domain/pan-scan.js";
import type { OutboundResponse } from "../../outbound/https-exchange.js";

/**
 * The processor's response headers relayed to the caller: what a merchant backend needs to
 * read the answer, correlate it and retry it, and nothing that sets state in the caller's
 * client or reveals the processor's infrastructure (Set-Cookie, Server, Via, framing and
 * hop-by-hop headers are dropped). docs/forwarding.md lists them.
 */
export const RELAYED_RESPONSE_HEADERS: readonly string[] = [
  "content-type",
  "content-language",
  "date",
  "location",
  "retry-after",
  "request-id",
  "x-request-id",
  "idempotency-key",
  "idempotent-replayed",
  "stripe-should-retry",
  "paypal-debug-id",
  "correlation-id",
  "x-correlation-id",
];

const RELAYED: ReadonlySet<string> = new Set(RELAYED_RESPONSE_HEADERS);
const MAX_HEADER_CHARS = 2048;

/** Whatever looks like a card number masked to BIN + last 4, and the forwarded PANs wherever they occur. */
function scrub(text: string, pans: readonly string[]): string {
  let out = text;
  // A processor may echo the number inside a longer digit run the scanner leaves alone.
  for (const pan of pans) {
    if (pan.length >= 12)
      out = out.split(pan).join(`${pan.slice(0, 6)}${"*".repeat(pan.length - 10)}${pan.slice(-4)}`);
  }
  return scrubPans(out);
}

export interface RelayedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** UTF-8 text (invalid sequences replaced), card numbers masked. */
  readonly body: string;
}

/**
 * What the caller gets of the processor's answer: its status (a redirect is relayed, never
 * followed), the allowlisted headers and the body as text with every PAN-like digit run masked
 * to at most BIN and last 4 (PCI DSS 3.4.1; the pan-scan.ts rules), so the merchant backend,
 * which must stay out of scope, never receives a card number back.
 */
export function relayResponse(
  response: OutboundResponse,
  pans: readonly string[],
): RelayedResponse {
  const headers: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(response.headers)) {
    if (!RELAYED.has(name)) continue;
    const joined = typeof value === "string" ? value : value.join(", ");
    // Scrubbed whole, then cut: a cut first could leave a card number's middle unmasked.
    headers[name] = scrub(joined, pans).slice(0, MAX_HEADER_CHARS);
  }
  return {
    status: response.status,
    headers,
    body: scrub(response.body.toString("utf8"), pans),
  };
}
