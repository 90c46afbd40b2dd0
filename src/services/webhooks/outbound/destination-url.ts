import { isIP } from "node:net";
import { classifyAddress, classifyHostName } from "../../../outbound/address-policy.js";
import {
  type AllowedDestination,
  checkDestination,
  compileAllowlist,
  InvalidAllowlistEntry,
} from "../../../outbound/destination.js";

/** Field error codes of the event-destination routes (docs/errors.md). */
export const EVENT_DESTINATION_ISSUE_CODES = [
  "DESTINATION_URL_INVALID",
  "DESTINATION_ADDRESS_REFUSED",
  "EVENT_TYPE_UNKNOWN",
] as const;
export type EventDestinationIssueCode = (typeof EVENT_DESTINATION_ISSUE_CODES)[number];

export type DestinationUrlCheck =
  | { readonly ok: true; readonly allowlist: readonly AllowedDestination[] }
  | { readonly ok: false; readonly code: EventDestinationIssueCode; readonly message: string };

const LOOPBACK_NAME = /(^|\.)localhost$/;

const invalid = (message: string): DestinationUrlCheck => ({
  ok: false,
  code: "DESTINATION_URL_INVALID",
  message,
});

/**
 * A merchant's endpoint URL, checked at registration with the outbound client's own rules
 * (docs/outbound.md; SSRF, PCI DSS 1.4.2, 6.2.4): HTTPS only, no userinfo, no fragment, a
 * canonical host and an unambiguous path. The URL's host, port and path are its one allowlist
 * entry, used again on every delivery. An IP literal in a refused block (loopback, RFC 1918,
 * link-local and the metadata address, every RFC 6890 special block) and metadata or
 * special-use names are refused here; a name that merely resolves to such an address passes
 * registration and is refused at delivery, after DNS, by the same address policy.
 */
export function checkDestinationUrl(raw: string, allowLoopback = false): DestinationUrlCheck {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return invalid("The URL is not an absolute https:// URL.");
  }
  if (url.protocol !== "https:") return invalid("The URL must use https://.");
  if (url.hash !== "") return invalid("The URL must not have a #fragment.");
  let allowlist: readonly AllowedDestination[];
  try {
    allowlist = compileAllowlist([
      {
        // WHATWG keeps an IPv6 host bracketed; the allowlist entry takes it the same way.
        host: url.hostname,
        pathPrefix: url.pathname,
        ...(url.port === "" ? {} : { port: Number(url.port) }),
      },
    ]);
  } catch (err) {
    if (err instanceof InvalidAllowlistEntry)
      return invalid(`The URL's ${err.field} is not valid.`);
    throw err;
  }
  const checked = checkDestination(raw, allowlist);
  if (!checked.ok) return invalid(REFUSAL_MESSAGES[checked.refusal]);
  const refused = isIP(checked.destination.host)
    ? refusedAddress(checked.destination.host, allowLoopback)
    : refusedName(checked.destination.host, allowLoopback);
  if (refused) {
    return {
      ok: false,
      code: "DESTINATION_ADDRESS_REFUSED",
      message:
        "The URL's host is a loopback, private, link-local, metadata or special-use address or name.",
    };
  }
  return { ok: true, allowlist };
}

function refusedAddress(address: string, allowLoopback: boolean): boolean {
  const verdict = classifyAddress(address);
  return !verdict.allowed && !(allowLoopback && verdict.category === "loopback");
}

function refusedName(name: string, allowLoopback: boolean): boolean {
  return !classifyHostName(name).allowed && !(allowLoopback && LOOPBACK_NAME.test(name));
}

const REFUSAL_MESSAGES = {
  INVALID_URL:
    "The URL is not a valid https:// URL (no spaces, control characters or backslashes).",
  NOT_HTTPS: "The URL must use https://.",
  USERINFO: "The URL must not carry a user name or password.",
  NON_CANONICAL_HOST: "The URL's IPv4 host must be a plain dotted quad.",
  AMBIGUOUS_PATH: "The URL's path is ambiguous (encoded slashes, dot segments or //).",
  NOT_IN_ALLOWLIST: "The URL is not valid.",
} as const;
