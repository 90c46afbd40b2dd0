import { reject, type WebhookHeaders, type WebhookRejection } from "./verification.js";

export type HeaderRead = { readonly ok: true; readonly value: string } | WebhookRejection;

/**
 * Reads one header that must appear exactly once and be at most `maxLength` characters.
 * `name` must be lower case (Node lower-cases incoming names). An empty value counts as missing.
 * The length cap runs before any parsing so an absurd header costs nothing to refuse.
 */
export function readSingleHeader(
  headers: WebhookHeaders,
  name: string,
  maxLength: number,
): HeaderRead {
  const raw = headers[name];
  if (raw === undefined || raw === "") {
    return reject("missing_header", name);
  }
  if (typeof raw !== "string") {
    return raw.length === 0 ? reject("missing_header", name) : reject("duplicate_header", name);
  }
  if (raw.length > maxLength) {
    return reject("header_too_large", name);
  }
  return { ok: true, value: raw };
}
