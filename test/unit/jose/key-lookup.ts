/**
 * Test helper: in-memory kid lookups for the JWE and JWS functions (RFC 7515 §4.1.4: kid is a hint to the
 * key, here the only way to a key). A key set with a duplicate kid is refused when built: two
 * keys behind one kid make the choice of key ambiguous.
 */
import type { DecryptionKeys } from "../../../src/jose/capture-jwe.js";
import type { DecryptionKey } from "../../../src/jose/jwe-open.js";
import type { RegisteredJwk } from "../../../src/jose/tenant-jwk.js";
import type { VerificationKey, VerificationKeys } from "../../../src/jose/verify-jws.js";

function byKid<T>(entries: Iterable<readonly [string, T]>): Map<string, T> {
  const map = new Map<string, T>();
  for (const [kid, value] of entries) {
    if (map.has(kid)) throw new TypeError(`duplicate kid in key set`);
    map.set(kid, value);
  }
  return map;
}

export function decryptionKeyLookup(
  keys: Iterable<DecryptionKey & { readonly kid: string }>,
): DecryptionKeys {
  const map = byKid(
    [...keys].map((k) => [k.kid, { alg: k.alg, privateKey: k.privateKey }] as const),
  );
  return (kid) => map.get(kid);
}

/** Verification keys from a tenant's registered signing JWKs. */
export function verificationKeyLookup(registered: Iterable<RegisteredJwk>): VerificationKeys {
  const entries = [...registered].map((r) => {
    if (r.use !== "sig") throw new TypeError("not a signing key");
    const key: VerificationKey = { alg: r.alg as VerificationKey["alg"], publicKey: r.key };
    return [r.kid, key] as const;
  });
  const map = byKid(entries);
  return (kid) => map.get(kid);
}
