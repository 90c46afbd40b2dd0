/**
 * Security headers on every response, errors and 404s included (OWASP Secure Headers Project;
 * PCI DSS 6.4.1, 6.4.3; docs/http-headers.md). Set before anything else runs, so a route only
 * overrides what it must: the capture frame its CSP and framing, the JWKS and the frame's
 * static assets their caching (they hold no card data). Everything else is `no-store` (PCI DSS
 * 3.3, 3.5: no cache on the way keeps a copy of card data).
 *
 * HSTS is sent with or without TLS on the listener: a browser ignores it over plain HTTP (RFC 6797
 * §8.1), and behind a TLS-terminating proxy (PAYVAULT_INSECURE_HTTP=1) it reaches the browser
 * over the proxy's HTTPS, where it pins the vault's host to HTTPS.
 */
export const SECURITY_HEADERS = {
  "strict-transport-security": "max-age=63072000; includeSubDomains",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
} as const;
