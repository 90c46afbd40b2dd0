import type { IncomingMessage } from "node:http";
import { type Agent, type RequestOptions, request } from "node:https";
import { isIP } from "node:net";
import type { SecureContext, TLSSocket } from "node:tls";
import type { Destination } from "./destination.js";
import { errorCode, type OutboundFailure } from "./outbound-failure.js";
import { pinnedLookup, type ResolvedAddress } from "./resolver.js";

export interface OutboundResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  readonly body: Buffer;
}

export type OutboundResult =
  | { readonly ok: true; readonly response: OutboundResponse }
  | { readonly ok: false; readonly failure: OutboundFailure };

export interface ExchangeLimits {
  /** TCP connect plus TLS handshake. */
  readonly connectTimeoutMs: number;
  /** Deadline for the whole exchange, last body byte included (a trickling server hits it). */
  readonly deadline: number;
  readonly totalTimeoutMs: number;
  readonly maxResponseBytes: number;
  /** Trust anchors; undefined: Node's bundled Mozilla roots. */
  /** The trust anchors' TLS context (built once per client); undefined: Node's bundled roots. */
  readonly secureContext: SecureContext | undefined;
}

/** The parts of a request supplied at the last moment (see `Exchange.lateParts`). */
export type LateParts =
  | {
      readonly ok: true;
      readonly headers: Readonly<Record<string, string>>;
      readonly body: Uint8Array | undefined;
    }
  | { readonly ok: false; readonly failure: OutboundFailure };

export interface Exchange {
  readonly destination: Destination;
  readonly pinned: ResolvedAddress;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
  /**
   * When set, headers and body come from here instead, asked for only once a verified TLS
   * connection to the pinned address is open and before any request byte is written (the
   * forward proxy takes the CVC there, so a refused or unreachable destination never uses it).
   * If it rejects, the connection is closed, nothing is sent, and `exchange` rejects with it.
   */
  readonly lateParts?: () => Promise<LateParts>;
  /** A keep-alive agent for this exact pinned address, port and host (agent-pool.ts). */
  readonly agent?: Agent;
}

type Phase = "connect" | "tls" | "exchange";

function plainHeaders(res: IncomingMessage): Record<string, string | readonly string[]> {
  const headers: Record<string, string | readonly string[]> = Object.create(null);
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

/** Strips an IPv4-mapped prefix so a dual-stack socket's remote address compares equal. */
const sameAddress = (a: string | undefined, b: string): boolean =>
  a !== undefined && a.replace(/^::ffff:/i, "") === b.replace(/^::ffff:/i, "");

function requestOptions(
  x: Exchange,
  secureContext: ExchangeLimits["secureContext"],
): RequestOptions {
  return {
    host: x.destination.host,
    port: x.destination.port,
    path: x.destination.path,
    method: x.method,
    headers: x.lateParts === undefined ? x.headers : {},
    // Pooled only by an agent that serves this one checked address (agent-pool.ts); otherwise
    // a fresh connection that nothing else can reuse.
    agent: x.agent ?? false,
    lookup: pinnedLookup(x.pinned),
    family: x.pinned.family,
    // SNI must not carry an IP literal (RFC 6066 §3); node:https then omits it.
    ...(isIP(x.destination.host) === 0 ? { servername: x.destination.host } : {}),
    ...(secureContext === undefined ? {} : { secureContext }),
    // Explicit, so NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment cannot switch it off.
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
  };
}

/** The caller's bytes without a copy, so a caller that zeroes its buffer zeroes what was sent. */
function viewOf(body: Uint8Array | undefined): Buffer | undefined {
  return body === undefined
    ? undefined
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

type Settle = (result: OutboundResult) => void;

/** Buffers the body up to `maxBytes`; one byte more and the exchange is abandoned. */
function readBody(res: IncomingMessage, maxBytes: number, settle: Settle): void {
  const tooLarge = {
    ok: false,
    failure: { reason: "RESPONSE_TOO_LARGE", limitBytes: maxBytes },
  } as const;
  const declared = Number(res.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) {
    settle(tooLarge);
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  res.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > maxBytes) settle(tooLarge);
    else chunks.push(chunk);
  });
  res.on("error", (error) =>
    settle({ ok: false, failure: { reason: "NETWORK_ERROR", code: errorCode(error) } }),
  );
  res.on("end", () => {
    const response = {
      status: res.statusCode ?? 0,
      headers: plainHeaders(res),
      body: Buffer.concat(chunks),
    };
    // The caller zeroes the body it gets; the chunks it was copied from are zeroed here.
    for (const chunk of chunks) chunk.fill(0);
    settle({ ok: true, response });
  });
}

/**
 * One HTTPS request to an already checked address. The host name still drives SNI, the Host
 * header and certificate verification (RFC 6125 via tls.checkServerIdentity); the socket's
 * `lookup` is pinned to `pinned`, and a new socket's peer address is checked again once
 * connected (a pooled socket was checked when it was opened, to the same address). No redirect
 * is followed: node:https never does, and a 3xx is returned like any other status. Resolves;
 * rejects only with what `x.lateParts` rejected with.
 */
export function exchange(x: Exchange, limits: ExchangeLimits): Promise<OutboundResult> {
  return new Promise((resolve, reject) => {
    let phase: Phase = "connect";
    let settled = false;
    const req = request(requestOptions(x, limits.secureContext));
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(connectTimer);
      clearTimeout(totalTimer);
      return true;
    };
    const settle: Settle = (result) => {
      if (!finish()) return;
      // A failed exchange never returns its socket to a pool.
      if (!result.ok) req.destroy();
      resolve(result);
    };
    const abort = (error: unknown): void => {
      if (!finish()) return;
      req.destroy();
      reject(error);
    };
    const fail = (failure: OutboundFailure): void => settle({ ok: false, failure });
    const { connectTimeoutMs, totalTimeoutMs } = limits;
    const connectTimer = setTimeout(
      () => fail({ reason: "CONNECT_TIMEOUT", timeoutMs: connectTimeoutMs }),
      connectTimeoutMs,
    );
    const totalTimer = setTimeout(
      () => fail({ reason: "TIMEOUT", timeoutMs: totalTimeoutMs }),
      Math.max(0, limits.deadline - Date.now()),
    );
    const connected = (): void => {
      phase = "exchange";
      clearTimeout(connectTimer);
      if (x.lateParts !== undefined) sendLate(req, x.lateParts, () => settled, fail, abort);
    };

    req.on("socket", (socket: TLSSocket) => {
      // A pooled socket is already connected, verified and checked: no new events will come.
      // `reusedSocket` is not set when a request waited in the agent's queue for a socket
      // another request freed, so an open, authorized TLS socket counts as connected too.
      if (req.reusedSocket || (!socket.connecting && socket.encrypted && socket.authorized)) {
        connected();
        return;
      }
      socket.once("connect", () => {
        phase = "tls";
        if (!sameAddress(socket.remoteAddress, x.pinned.address)) {
          fail({ reason: "NETWORK_ERROR", code: "PEER_ADDRESS_MISMATCH" });
        }
      });
      socket.once("secureConnect", connected);
    });
    req.on("error", (error) => {
      const code = errorCode(error);
      if (phase === "connect") fail({ reason: "CONNECT_FAILED", code });
      else if (phase === "tls") fail({ reason: "TLS_FAILED", code });
      else fail({ reason: "NETWORK_ERROR", code });
    });
    req.on("response", (res) => readBody(res, limits.maxResponseBytes, settle));
    // After a complete response this is a no-op: `settle` has already run.
    req.on("close", () => fail({ reason: "NETWORK_ERROR", code: "CONNECTION_CLOSED" }));
    if (x.lateParts === undefined) req.end(viewOf(x.body));
  });
}

/** Asks for the late headers and body and writes the request, unless the exchange ended. */
function sendLate(
  req: ReturnType<typeof request>,
  lateParts: () => Promise<LateParts>,
  ended: () => boolean,
  fail: (failure: OutboundFailure) => void,
  abort: (error: unknown) => void,
): void {
  lateParts().then((parts) => {
    if (ended()) return;
    if (!parts.ok) {
      fail(parts.failure);
      return;
    }
    try {
      for (const [name, value] of Object.entries(parts.headers)) req.setHeader(name, value);
      req.end(viewOf(parts.body));
    } catch (error) {
      // Node refused a header or the body: nothing was written, the exchange ends cleanly.
      fail({ reason: "NETWORK_ERROR", code: errorCode(error) });
    }
  }, abort);
}
