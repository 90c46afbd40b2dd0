import type { FastifyReply, FastifyRequest } from "fastify";
import { ROUTES } from "./route-table.js";

/** Only the API is ever granted cross-origin; the capture frame and its assets are same-origin. */
const API_PREFIX = "/v1/";
/** Methods the route table serves (a preflight for anything else gets no grant). */
const API_METHODS: ReadonlySet<string> = new Set(ROUTES.map((route) => route.method));
/** Request headers a browser caller may send beyond the CORS-safelisted ones. */
const ALLOWED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "content-type",
  "idempotency-key",
]);
/** Response headers a browser caller may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = [
  "x-request-id",
  "retry-after",
  "idempotent-replayed",
  "ratelimit",
  "ratelimit-policy",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
].join(", ");
/** How long a browser may cache a preflight grant (Chromium caps this at 2 hours). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** The request headers a preflight asks for (Fetch: a lowercase, comma-separated list). */
function requestedHeaders(request: FastifyRequest): string[] {
  const raw = request.headers["access-control-request-headers"];
  if (raw === undefined || raw === "") return [];
  return raw
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
}

/**
 * CORS (Fetch Standard §3.2), closed by default (OWASP HTML5 Security Cheat Sheet, "CORS"): with
 * no allowlist, no response carries an `Access-Control-Allow-*` field, and a preflight
 * (`OPTIONS`) finds no route and gets the ordinary 404 problem, so a browser on another origin
 * can neither call the API nor read its answers.
 *
 * With `PAYVAULT_CORS_ORIGINS`, a listed origin — compared exactly, never a wildcard or a
 * pattern — is granted the API (`/v1/…`): its preflights are answered 204 with the methods and
 * headers the API uses, and its requests' responses name it in `Access-Control-Allow-Origin`.
 * `Access-Control-Allow-Credentials` is never sent: the API authenticates with a bearer
 * credential, not cookies, so a cross-origin page has nothing ambient to ride on. Every other
 * origin, and every other path, is answered as if CORS were closed.
 */
export function corsHook(allowedOrigins: readonly string[]) {
  const allowed = new Set(allowedOrigins);
  return async (
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> => {
    if (allowed.size === 0 || !request.url.startsWith(API_PREFIX)) return undefined;
    // The grant depends on Origin: caches must key on it (Fetch §3.2.5 "CORS protocol and HTTP caches").
    reply.header("vary", "origin");
    const origin = request.headers.origin;
    if (origin === undefined || !allowed.has(origin)) return undefined;
    const preflightMethod = request.headers["access-control-request-method"];
    if (request.method === "OPTIONS" && preflightMethod !== undefined) {
      const headers = requestedHeaders(request);
      if (
        !API_METHODS.has(preflightMethod) ||
        !headers.every((name) => ALLOWED_REQUEST_HEADERS.has(name))
      ) {
        return undefined;
      }
      return reply
        .code(204)
        .header("access-control-allow-origin", origin)
        .header("access-control-allow-methods", [...API_METHODS].join(", "))
        .header("access-control-allow-headers", [...ALLOWED_REQUEST_HEADERS].join(", "))
        .header("access-control-max-age", String(PREFLIGHT_MAX_AGE_SECONDS))
        .send();
    }
    reply
      .header("access-control-allow-origin", origin)
      .header("access-control-expose-headers", EXPOSED_HEADERS);
    return undefined;
  };
}
