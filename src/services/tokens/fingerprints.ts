import { fingerprintOf } from "../../crypto/hmac.js";
import type { TokenFormat } from "../../domain/token-format.js";

/** What identifies "the same card" for dedupe: number, expiry and name, plus the token format. */
export interface CardIdentity {
  readonly number: string;
  readonly expMonth: number;
  readonly expYear: number;
  readonly name: string | undefined;
}

/** The keyed fingerprint of a PAN under the tenant's fingerprint key (never a plain hash). */
export function panFingerprint(key: Uint8Array, number: string): string {
  return fingerprintOf(key, "pan", number);
}

/**
 * The dedupe key: the same card (number, expiry, name) in the same format is the same token when
 * dedupe is on. Used at tokenize time and when a fingerprint-key rotation recomputes it.
 */
export function dedupeKeyOf(key: Uint8Array, card: CardIdentity, format: TokenFormat): string {
  const identity = [card.number, card.expMonth, card.expYear, card.name ?? "", format].join(
    "\u0000",
  );
  return fingerprintOf(key, "dedupe", identity);
}
