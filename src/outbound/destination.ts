import { isIPv4 } from "node:net";

/**
 * Destination URLs for outbound requests (docs/outbound.md): HTTPS only, no userinfo, a host
 * that exactly matches a tenant allowlist entry, the entry's port (443 by default) and a path
 * under the entry's prefix. Everything is decided on the WHATWG-parsed URL, the same parse the
 * request is built from, so the check and the use cannot disagree.
 */
export interface AllowlistEntry {
  /** An exact host name or IP literal. Wildcards are not supported (docs/outbound.md). */
  readonly host: string;
  /** A normalized absolute path; `/v1/charges` admits `/v1/charges` and `/v1/charges/…`. */
  readonly pathPrefix: string;
  readonly port?: number;
}

/** An entry after normalization; build these with `compileAllowlist`. */
export interface AllowedDestination {
  readonly host: string;
  readonly pathPrefix: string;
  readonly port: number;
}

export interface Destination {
  /** Lowercase ASCII (IDNA) host name without a trailing dot, or an IP literal unbracketed. */
  readonly host: string;
  readonly port: number;
  /** Path and query as sent on the request line; the fragment is never sent. */
  readonly path: string;
}

export type DestinationRefusal =
  | "INVALID_URL"
  | "NOT_HTTPS"
  | "USERINFO"
  | "NON_CANONICAL_HOST"
  | "AMBIGUOUS_PATH"
  | "NOT_IN_ALLOWLIST";

export type DestinationCheck =
  | { readonly ok: true; readonly destination: Destination }
  | { readonly ok: false; readonly refusal: DestinationRefusal };

export class InvalidAllowlistEntry extends Error {
  readonly code = "INVALID_ALLOWLIST_ENTRY";
  constructor(readonly field: "host" | "pathPrefix" | "port") {
    super(`invalid allowlist entry: ${field}`);
    this.name = "InvalidAllowlistEntry";
  }
}

const HTTPS_PORT = 443;
const MAX_URL_LENGTH = 8192;
/**
 * Whitespace and control characters, which WHATWG silently strips, and `\`, which it turns
 * into `/`: the text logged would not be the URL requested.
 */
function hasStrippedOrRewritten(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x5c) return true;
  }
  return false;
}

/**
 * True when a path is one every server reads the same way. WHATWG has already removed `.`/`..`
 * segments, including `%2e` spellings; left are the spellings some servers still resolve:
 * an encoded `/` or `\`, a doubly encoded dot segment, Tomcat's `..;/`, and empty segments
 * (`//`), which some servers collapse.
 */
function isUnambiguousPath(pathname: string): boolean {
  if (!pathname.startsWith("/") || pathname.includes("//")) return false;
  for (const segment of pathname.split("/").slice(1)) {
    let decoded = segment;
    for (let round = 0; round < 3; round++) {
      try {
        decoded = decodeURIComponent(decoded);
      } catch {
        return false;
      }
      if (["/", "\\", "\0"].some((c) => decoded.includes(c))) return false;
      const bare = decoded.split(";")[0];
      if (bare === "." || bare === "..") return false;
    }
  }
  return true;
}

/** Segment-boundary prefix match: `/v1/charges` admits `/v1/charges/x`, not `/v1/chargesx`. */
function underPrefix(pathname: string, prefix: string): boolean {
  if (pathname === prefix || prefix === "/") return true;
  const base = prefix.endsWith("/") ? prefix : `${prefix}/`;
  return pathname.startsWith(base);
}

function normalizedHost(url: URL): string {
  const host = url.hostname.replace(/\.$/, "");
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

/**
 * WHATWG accepts `2130706433`, `0177.0.0.1` and `0x7f.1` as IPv4 and rewrites them to
 * `127.0.0.1`; other parsers (inet_aton, proxies, the processor's logs) may read them otherwise.
 * Only the canonical dotted quad is accepted, checked against the raw authority.
 */
function canonicalIpv4(raw: string, host: string): boolean {
  const authority = raw.slice("https://".length).split(/[/?#]/, 1)[0] ?? "";
  return authority.replace(/:\d*$/, "").replace(/\.$/, "") === host;
}

function parseHttpsUrl(raw: string): { url: URL } | { refusal: DestinationRefusal } {
  if (raw.length > MAX_URL_LENGTH || hasStrippedOrRewritten(raw)) {
    return { refusal: "INVALID_URL" };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { refusal: "INVALID_URL" };
  }
  if (url.protocol !== "https:") return { refusal: "NOT_HTTPS" };
  // `https:host` and `https:/host` parse too; only the plain spelling is accepted.
  if (raw.slice(0, 8).toLowerCase() !== "https://") return { refusal: "INVALID_URL" };
  const authority = raw.slice(8).split(/[/?#]/, 1)[0] ?? "";
  if (url.username !== "" || url.password !== "" || authority.includes("@")) {
    return { refusal: "USERINFO" };
  }
  return { url };
}

/** Parses and checks `raw` against the tenant's compiled allowlist. */
export function checkDestination(
  raw: string,
  allowlist: readonly AllowedDestination[],
): DestinationCheck {
  const parsed = parseHttpsUrl(raw);
  if ("refusal" in parsed) return { ok: false, refusal: parsed.refusal };
  const { url } = parsed;
  const host = normalizedHost(url);
  if (host === "") return { ok: false, refusal: "INVALID_URL" };
  if (isIPv4(host) && !canonicalIpv4(raw.toLowerCase(), host)) {
    return { ok: false, refusal: "NON_CANONICAL_HOST" };
  }
  if (!isUnambiguousPath(url.pathname)) return { ok: false, refusal: "AMBIGUOUS_PATH" };
  const port = url.port === "" ? HTTPS_PORT : Number(url.port);
  const allowed = allowlist.some(
    (entry) =>
      entry.host === host && entry.port === port && underPrefix(url.pathname, entry.pathPrefix),
  );
  if (!allowed) return { ok: false, refusal: "NOT_IN_ALLOWLIST" };
  return { ok: true, destination: { host, port, path: `${url.pathname}${url.search}` } };
}

function compileEntry(entry: AllowlistEntry): AllowedDestination {
  const port = entry.port ?? HTTPS_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidAllowlistEntry("port");
  if (entry.host.includes("*")) throw new InvalidAllowlistEntry("host");
  const parsed = parseHttpsUrl(`https://${entry.host}/`);
  if ("refusal" in parsed || parsed.url.port !== "" || parsed.url.pathname !== "/") {
    throw new InvalidAllowlistEntry("host");
  }
  const host = normalizedHost(parsed.url);
  if (
    host === "" ||
    (isIPv4(host) && !canonicalIpv4(`https://${entry.host.toLowerCase()}`, host))
  ) {
    throw new InvalidAllowlistEntry("host");
  }
  const prefix = entry.pathPrefix;
  let normalizedPrefix: string;
  try {
    normalizedPrefix = new URL(prefix, "https://prefix.invalid").pathname;
  } catch {
    throw new InvalidAllowlistEntry("pathPrefix");
  }
  if (prefix !== normalizedPrefix || !isUnambiguousPath(prefix) || hasStrippedOrRewritten(prefix)) {
    throw new InvalidAllowlistEntry("pathPrefix");
  }
  return Object.freeze({ host, pathPrefix: prefix, port });
}

/**
 * Normalizes a tenant's allowlist once (at configuration time); throws `InvalidAllowlistEntry`
 * naming the bad field. Address and host-name policy are applied per request, not here.
 */
export function compileAllowlist(
  entries: readonly AllowlistEntry[],
): readonly AllowedDestination[] {
  return Object.freeze(entries.map(compileEntry));
}
