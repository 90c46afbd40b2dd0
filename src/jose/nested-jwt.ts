/**
 * Nested JWTs for server-to-server calls: signed by the tenant, then encrypted to the vault
 * (RFC 7519 §5.2 "cty": "JWT", §7.2 step 8; RFC 7520 §6; RFC 8725 §2.7 sign-then-encrypt).
 *
 * The outer JWE is opened under the capture policy and must say it carries a JWT. The inner
 * JWS is verified with the tenant's registered signing key, found by kid in that tenant's
 * registry only. A failure in either layer is the same `JoseRejected` with code JWE_INVALID,
 * so the sender cannot tell which layer failed. Then the claims are checked: iss is the
 * tenant's client id, aud the vault's URL, and htm/htu bind the token to one request.
 */
import { JWS_ALGS, type JwsAlg } from "./algorithms.js";
import { type DecryptionKeys, decryptCaptureJwe } from "./capture-jwe.js";
import { type CheckedClaims, type ClaimsPolicy, checkClaims, parseClaims } from "./claims.js";
import { JoseRejected } from "./rejected.js";
import { type VerificationKeys, verifyJws } from "./verify-jws.js";

export interface NestedClaimsPolicy extends ClaimsPolicy {
  readonly issuer: string;
  readonly htm: string;
  readonly htu: string;
}

export interface OpenNestedJwtOptions {
  readonly decryptionKeys: DecryptionKeys;
  /** The tenant's registered signing keys, by kid. */
  readonly signerKeys: VerificationKeys;
  readonly algorithms?: readonly JwsAlg[];
  readonly claims: NestedClaimsPolicy;
  /** Bound on the outer compact string. Default 16 KiB. */
  readonly maxLength?: number;
}

export interface OpenedNestedJwt {
  readonly claims: CheckedClaims;
  readonly signerKid: string;
  readonly decryptionKid: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

async function verifyInner(plaintext: Uint8Array, options: OpenNestedJwtOptions) {
  let inner: string;
  try {
    inner = utf8.decode(plaintext);
  } catch {
    throw new JoseRejected("JWE_INVALID", "malformed");
  }
  try {
    return await verifyJws(inner, options.signerKeys, {
      algorithms: options.algorithms ?? JWS_ALGS,
      ...(options.maxLength !== undefined && { maxLength: options.maxLength }),
    });
  } catch (err) {
    if (err instanceof JoseRejected) throw new JoseRejected("JWE_INVALID", err.reason);
    throw err;
  }
}

export async function openNestedJwt(
  compact: string,
  options: OpenNestedJwtOptions,
): Promise<OpenedNestedJwt> {
  const outer = await decryptCaptureJwe(compact, options.decryptionKeys, {
    requiredCty: "JWT",
    ...(options.maxLength !== undefined && { maxLength: options.maxLength }),
  });
  const inner = await verifyInner(outer.plaintext, options);
  const claims = checkClaims(parseClaims(inner.payload), options.claims);
  return { claims, signerKid: inner.kid, decryptionKid: outer.kid };
}
