import type { AddressCategory } from "./address-policy.js";
import type { DestinationRefusal } from "./destination.js";

/**
 * Why an outbound request did not produce a response. Stable `reason` codes for callers to map
 * onto public errors; details are limited to what is safe to log: never a request or response
 * body, never a header value, never an underlying `err.message` (only its `code`).
 */
export type OutboundFailure =
  | { readonly reason: "DESTINATION_NOT_ALLOWED"; readonly refusal: DestinationRefusal }
  | { readonly reason: "HEADER_NOT_ALLOWED"; readonly header: string }
  | {
      readonly reason: "ADDRESS_REFUSED";
      readonly host: string;
      readonly category: AddressCategory | "metadata-name" | "special-use-name";
      /** Absent when the host name itself was refused, before any lookup. */
      readonly address?: string;
      readonly range?: string;
    }
  | { readonly reason: "DNS_FAILED"; readonly host: string; readonly code: string }
  | { readonly reason: "CONNECT_TIMEOUT"; readonly timeoutMs: number }
  | { readonly reason: "CONNECT_FAILED"; readonly code: string }
  | { readonly reason: "TLS_FAILED"; readonly code: string }
  | { readonly reason: "TIMEOUT"; readonly timeoutMs: number }
  | { readonly reason: "RESPONSE_TOO_LARGE"; readonly limitBytes: number }
  | { readonly reason: "NETWORK_ERROR"; readonly code: string };

export type OutboundReason = OutboundFailure["reason"];

/** The `code` of a Node error, or a fixed placeholder: the message is never carried. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Z0-9_]{1,64}$/i.test(code) ? code : "UNKNOWN";
}
