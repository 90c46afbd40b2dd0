import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import { classifyAddress, classifyHostName } from "./address-policy.js";
import { AgentPool, KEEP_ALIVE_DEFAULTS, type KeepAliveSettings } from "./agent-pool.js";
import { type AllowedDestination, checkDestination, type Destination } from "./destination.js";
import { exchange, type LateParts, type OutboundResult } from "./https-exchange.js";
import { errorCode, type OutboundFailure } from "./outbound-failure.js";
import {
  checkRequestHeaders,
  defaultHeaderAllowlist,
  type HeaderAllowlist,
} from "./request-headers.js";
import { type ResolvedAddress, type Resolver, systemResolver } from "./resolver.js";

export type OutboundMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface OutboundRequest {
  readonly method: OutboundMethod;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
  /** A shorter total deadline for this request; never longer than the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /**
   * Headers and body supplied at the last moment: called once the destination, the `headers`
   * names, the address policy and a verified TLS connection to the checked address have all
   * passed, and before any byte of the request is written. The headers it returns are checked
   * like `headers`. `headers` then only declares the names (their values are checked, not
   * sent) and `body` is ignored. If it rejects, nothing is sent and the call rejects with that
   * error. The forward proxy builds the card-bearing request here (docs/forwarding.md).
   */
  /**
   * A new connection for this request, never a pooled one: the forward proxy asks for it when
   * the request carries a CVC, which is taken from its store as the request is written and can
   * never be restored. A pooled connection the processor has just closed would lose it.
   */
  readonly freshConnection?: boolean;
  readonly lateParts?: () => Promise<{
    readonly headers: Readonly<Record<string, string>>;
    readonly body?: Uint8Array | string;
  }>;
}

export interface SafeFetchOptions {
  /** Defaults to the operating system's resolver (node:dns lookup). */
  readonly resolver?: Resolver;
  /** Trust anchors (PEM) replacing Node's bundled roots; for private processors and tests. */
  readonly ca?: string | readonly string[];
  readonly connectTimeoutMs?: number;
  readonly timeoutMs?: number;
  readonly maxResponseBytes?: number;
  readonly allowRequestHeader?: HeaderAllowlist;
  /**
   * FOR TESTS ONLY: lets loopback addresses (127.0.0.0/8, ::1) and `localhost` names through so
   * a suite can reach its own local server. Never read from the environment here: the
   * composition root decides, and production configuration must not be able to set it.
   */
  readonly allowLoopback?: boolean;
  /**
   * Connection reuse (docs/outbound.md): keep-alive agents keyed by checked address, port and
   * host name. `false` opens a new connection for every request. Default: KEEP_ALIVE_DEFAULTS.
   */
  readonly keepAlive?: KeepAliveSettings | false;
}

export const OUTBOUND_DEFAULTS = {
  connectTimeoutMs: 5_000,
  timeoutMs: 30_000,
  maxResponseBytes: 1024 * 1024,
} as const;

export type SafeFetch = (
  request: OutboundRequest,
  allowlist: readonly AllowedDestination[],
) => Promise<OutboundResult>;

type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly failure: OutboundFailure };

const LOOPBACK_NAME = /(^|\.)localhost$/;

/**
 * Resolves once and checks every answer: one refused address refuses the destination, as an
 * attacker controlling the zone may order answers at will. The first address is then pinned.
 */
async function resolveChecked(
  destination: Destination,
  resolver: Resolver,
  allowLoopback: boolean,
): Promise<Checked<ResolvedAddress>> {
  const { host } = destination;
  const family = isIP(host);
  if (family === 0) {
    const byName = classifyHostName(host);
    if (!byName.allowed && !(allowLoopback && LOOPBACK_NAME.test(host))) {
      return { ok: false, failure: { reason: "ADDRESS_REFUSED", host, category: byName.category } };
    }
  }
  let addresses: readonly ResolvedAddress[];
  try {
    addresses =
      family === 0 ? await resolver(host) : [{ address: host, family: family === 6 ? 6 : 4 }];
  } catch (error) {
    return { ok: false, failure: { reason: "DNS_FAILED", host, code: errorCode(error) } };
  }
  if (addresses.length === 0) {
    return { ok: false, failure: { reason: "DNS_FAILED", host, code: "NO_ADDRESSES" } };
  }
  for (const { address } of addresses) {
    const verdict = classifyAddress(address);
    if (verdict.allowed || (allowLoopback && verdict.category === "loopback")) continue;
    const { category, range } = verdict;
    return { ok: false, failure: { reason: "ADDRESS_REFUSED", host, address, category, range } };
  }
  const [first] = addresses;
  return first === undefined
    ? { ok: false, failure: { reason: "DNS_FAILED", host, code: "NO_ADDRESSES" } }
    : { ok: true, value: first };
}

function withDeadline<T>(work: Promise<T>, deadline: number, onTimeout: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The SSRF-safe outbound HTTPS client (docs/outbound.md): allowlisted destination, allowlisted
 * headers, one DNS resolution whose every answer passes the address policy, a connection pinned
 * to the checked address with certificate verification against the host name, no redirects,
 * connect and total timeouts and a response size cap. Resolves; never rejects.
 */
export function createSafeFetch(options: SafeFetchOptions = {}): SafeFetch {
  const resolver = options.resolver ?? systemResolver;
  const allowHeader = options.allowRequestHeader ?? defaultHeaderAllowlist;
  const allowLoopback = options.allowLoopback === true;
  const connectTimeoutMs = options.connectTimeoutMs ?? OUTBOUND_DEFAULTS.connectTimeoutMs;
  const timeoutMs = options.timeoutMs ?? OUTBOUND_DEFAULTS.timeoutMs;
  const maxResponseBytes = options.maxResponseBytes ?? OUTBOUND_DEFAULTS.maxResponseBytes;

  // One TLS context for every connection of this client: built per connection (Node does so
  // for a `ca` option), a long list of anchors would be parsed again for each handshake.
  const secureContext =
    options.ca === undefined
      ? undefined
      : createSecureContext({ ca: [options.ca].flat(), minVersion: "TLSv1.2" });

  const pool =
    options.keepAlive === false
      ? undefined
      : new AgentPool(options.keepAlive ?? KEEP_ALIVE_DEFAULTS);

  return async (request, allowlist) => {
    const requestTimeoutMs = Math.min(request.timeoutMs ?? timeoutMs, timeoutMs);
    const deadline = Date.now() + requestTimeoutMs;
    const checked = checkDestination(request.url, allowlist);
    if (!checked.ok) {
      return {
        ok: false,
        failure: { reason: "DESTINATION_NOT_ALLOWED", refusal: checked.refusal },
      };
    }
    const headers = checkRequestHeaders(request.headers ?? {}, allowHeader);
    if (!headers.ok)
      return { ok: false, failure: { reason: "HEADER_NOT_ALLOWED", header: headers.header } };

    const timedOut: Checked<ResolvedAddress> = {
      ok: false,
      failure: { reason: "TIMEOUT", timeoutMs: requestTimeoutMs },
    };
    const pinned = await withDeadline(
      resolveChecked(checked.destination, resolver, allowLoopback),
      deadline,
      timedOut,
    );
    if (!pinned.ok) return pinned;

    const { destination } = checked;
    const late = request.lateParts;
    return exchange(
      {
        destination,
        pinned: pinned.value,
        method: request.method,
        headers: headers.headers,
        body: bytesOf(request.body),
        ...(late === undefined ? {} : { lateParts: () => checkedLateParts(late, allowHeader) }),
        ...(pool === undefined || request.freshConnection === true
          ? {}
          : {
              agent: pool.agentFor({
                pinned: pinned.value,
                port: destination.port,
                host: destination.host,
              }),
            }),
      },
      {
        connectTimeoutMs,
        deadline,
        totalTimeoutMs: requestTimeoutMs,
        maxResponseBytes,
        secureContext,
      },
    );
  };
}

function bytesOf(body: Uint8Array | string | undefined): Uint8Array | undefined {
  return typeof body === "string" ? Buffer.from(body) : body;
}

async function checkedLateParts(
  late: NonNullable<OutboundRequest["lateParts"]>,
  allowHeader: HeaderAllowlist,
): Promise<LateParts> {
  const parts = await late();
  const headers = checkRequestHeaders(parts.headers, allowHeader);
  if (!headers.ok)
    return { ok: false, failure: { reason: "HEADER_NOT_ALLOWED", header: headers.header } };
  return { ok: true, headers: headers.headers, body: bytesOf(parts.body) };
}
