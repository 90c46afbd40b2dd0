import { lookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * Name resolution as a port, so tests can make `evil.test` resolve to 127.0.0.1 or answer
 * differently on a second call (DNS rebinding) without touching real DNS.
 */
export type Resolver = (hostName: string) => Promise<readonly ResolvedAddress[]>;

/**
 * At most this many lookups at once. getaddrinfo runs on libuv's thread pool (4 threads by
 * default), which file I/O and crypto share, and a deadline stops waiting for a lookup without
 * cancelling it: a name server that never answers (a merchant may register any public name)
 * must not be able to hold every thread.
 */
const MAX_CONCURRENT_LOOKUPS = 2;
let lookupsRunning = 0;
const waiting: (() => void)[] = [];

async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (lookupsRunning >= MAX_CONCURRENT_LOOKUPS) {
    // The slot is handed over by the lookup that ends (the count stays): nobody arriving in
    // between can take it, so never more than MAX_CONCURRENT_LOOKUPS run.
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    lookupsRunning += 1;
  }
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next === undefined) lookupsRunning -= 1;
    else next();
  }
}

/**
 * Answers are reused for 1 s: a forward or delivery then rarely waits for getaddrinfo. This is
 * not a way around the address policy: every request still checks every answer it uses, and its
 * connection is pinned to the one it checked (a zone that changes its answers is seen a second
 * later at most).
 */
const ANSWER_TTL_MS = 1_000;
const MAX_CACHED_NAMES = 1_000;
const answered = new Map<string, { until: number; answers: readonly ResolvedAddress[] }>();
/** One lookup per name at a time: requests for a name being looked up share its answer. */
const pending = new Map<string, Promise<readonly ResolvedAddress[]>>();

/** The operating system's resolver (getaddrinfo, /etc/hosts), all addresses in its order. */
export const systemResolver: Resolver = async (hostName) => {
  const now = Date.now();
  const hit = answered.get(hostName);
  if (hit !== undefined && hit.until > now) return hit.answers;
  const inFlight = pending.get(hostName);
  if (inFlight !== undefined) return inFlight;
  const lookingUp = limited(async () => {
    const found = await lookup(hostName, { all: true, verbatim: true });
    return found.map(
      ({ address, family }): ResolvedAddress => ({
        address,
        family: family === 6 ? 6 : 4,
      }),
    );
  });
  pending.set(hostName, lookingUp);
  try {
    const answers = await lookingUp;
    answered.delete(hostName);
    if (answered.size >= MAX_CACHED_NAMES) {
      const oldest = answered.keys().next().value;
      if (oldest !== undefined) answered.delete(oldest);
    }
    answered.set(hostName, { until: Date.now() + ANSWER_TTL_MS, answers });
    return answers;
  } finally {
    pending.delete(hostName);
  }
};

/**
 * A `lookup` for net/tls that answers every query with the one address the policy already
 * checked, so the socket cannot resolve the name a second time (no DNS rebinding between the
 * check and the connect). It handles both the single and the `all: true` calling conventions.
 */
export function pinnedLookup(pinned: ResolvedAddress): LookupFunction {
  return (_hostName, options, callback) => {
    if (options.all === true) {
      callback(null, [{ address: pinned.address, family: pinned.family }]);
    } else {
      callback(null, pinned.address, pinned.family);
    }
  };
}
