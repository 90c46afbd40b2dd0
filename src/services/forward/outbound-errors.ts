import { VaultError } from "../../errors/registry.js";
import type { OutboundFailure } from "../../outbound/outbound-failure.js";
import { issue } from "./placeholders.js";

/**
 * The public error of an outbound failure (docs/forwarding.md, "Errors"). `detail` carries a
 * fixed code chosen here or by safe-fetch (a reason, an address category, a Node error code
 * matching [A-Z0-9_]), never a host's answer, a header value or any part of a body.
 */
export function forwardErrorOf(failure: OutboundFailure): VaultError {
  switch (failure.reason) {
    case "DESTINATION_NOT_ALLOWED":
      return new VaultError("FORWARD_DESTINATION_NOT_ALLOWED", { detail: failure.refusal });
    case "HEADER_NOT_ALLOWED":
      return new VaultError("FORWARD_TEMPLATE_INVALID", {
        errors: [
          issue(
            `headers.${/^[a-z0-9-]{1,64}$/.test(failure.header) ? failure.header : "*"}`,
            "HEADER_NOT_ALLOWED",
            "This header may not be set on a forwarded request (docs/forwarding.md).",
          ),
        ],
      });
    case "ADDRESS_REFUSED":
      return new VaultError("FORWARD_ADDRESS_REFUSED", { detail: failure.category });
    case "CONNECT_TIMEOUT":
    case "TIMEOUT":
      return new VaultError("FORWARD_UPSTREAM_TIMEOUT", { detail: failure.reason });
    case "DNS_FAILED":
    case "CONNECT_FAILED":
    case "TLS_FAILED":
    case "NETWORK_ERROR":
      return new VaultError("FORWARD_UPSTREAM_FAILED", {
        detail: `${failure.reason}:${failure.code}`,
      });
    case "RESPONSE_TOO_LARGE":
      return new VaultError("FORWARD_UPSTREAM_FAILED", { detail: failure.reason });
  }
}
