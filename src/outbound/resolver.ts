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
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  lookupsRunning += 1;
  try {
    return await work();
  } finally {
    lookupsRunning -= 1;
    waiting.shift()?.();
  }
}

/** The operating system's resolver (getaddrinfo, /etc/hosts), all addresses in its order. */
export const systemResolver: Resolver = (hostName) =>
  limited(async () => {
    const answers = await lookup(hostName, { all: true, verbatim: true });
    return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
  });

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
