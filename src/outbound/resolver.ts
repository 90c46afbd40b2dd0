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

/** The operating system's resolver (getaddrinfo, /etc/hosts), all addresses in its order. */
export const systemResolver: Resolver = async (hostName) => {
  const answers = await lookup(hostName, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
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
