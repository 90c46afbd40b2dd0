/**
 * The one error every refused JOSE object turns into (RFC 7516 §11.5, RFC 8725 §2.2, §3.1).
 *
 * A JWE that fails the size gate, the header policy, the key lookup or the AEAD check, and a
 * JWS that fails the policy or the signature check, all look the same to the caller: same class,
 * same message, one code per kind of object, no `cause`. Distinguishable decryption failures are
 * an oracle (Bleichenbacher and padding-oracle style attacks; RFC 7516 §11.5). The `reason` is
 * for metrics and logs only: a fixed token, never key, header or plaintext material, and not
 * enumerable so that serializing the error does not carry it to a client by accident.
 */
export type JoseRejectCode = "JWE_INVALID" | "JWS_INVALID";

/** Why an object was refused, for metrics and logs; never shown to a client. */
export type JoseRejectReason =
  | "oversize"
  | "not_compact"
  | "malformed"
  | "alg_not_allowed"
  | "enc_not_allowed"
  | "header_forbidden"
  | "zip"
  | "crit"
  | "b64"
  | "typ"
  | "cty"
  | "epk"
  | "kid_missing"
  | "kid_unknown"
  | "key_mismatch"
  | "decrypt_failed"
  | "signature_invalid";

export const JOSE_REJECTED_MESSAGE = "the JOSE object was rejected";

export class JoseRejected extends Error {
  readonly code: JoseRejectCode;
  declare readonly reason: JoseRejectReason;

  constructor(code: JoseRejectCode, reason: JoseRejectReason) {
    super(JOSE_REJECTED_MESSAGE);
    this.name = "JoseRejected";
    this.code = code;
    Object.defineProperty(this, "reason", { value: reason, enumerable: false, writable: false });
  }
}
