/**
 * The vault's JOSE algorithm allowlists (RFC 8725 §3.1: "libraries MUST enable the caller to
 * specify a supported set of algorithms and MUST NOT use any other algorithms").
 *
 * Key management for data sent to the vault (RFC 7518 §4): ECDH-ES+A256KW on P-256
 * (RFC 7518 §4.6) and RSAES-OAEP with SHA-256 (RFC 7518 §4.3). Not RSA1_5 (Bleichenbacher;
 * RFC 8725 §3.2), not RSA-OAEP with SHA-1, not "dir" (a client would need our symmetric key),
 * not PBES2 (password based), not plain AES key wrap (shared symmetric keys).
 * Content encryption (RFC 7518 §5): A256GCM only; AES-256 is the vault's one data cipher and
 * every WebCrypto implementation has it, so A128GCM and the CBC-HMAC suites buy nothing.
 *
 * Signatures (RFC 7518 §3): ES256, EdDSA (Ed25519 keys only, RFC 8037) and PS256. No "none",
 * no HS* (a symmetric algorithm verified with a public key is the classic algorithm confusion,
 * RFC 8725 §2.1, §3.1), and no RS256: RSASSA-PKCS1-v1_5 verification has a history of lenient
 * parsers (Bleichenbacher 2006) and every KMS that signs RS256 also signs PS256.
 */
export const CAPTURE_JWE_ALGS = ["ECDH-ES+A256KW", "RSA-OAEP-256"] as const;
export type CaptureJweAlg = (typeof CAPTURE_JWE_ALGS)[number];

export const CAPTURE_JWE_ENC = "A256GCM";
export type CaptureJweEnc = typeof CAPTURE_JWE_ENC;

export const JWS_ALGS = ["ES256", "EdDSA", "PS256"] as const;
export type JwsAlg = (typeof JWS_ALGS)[number];

export function isCaptureJweAlg(value: unknown): value is CaptureJweAlg {
  return typeof value === "string" && (CAPTURE_JWE_ALGS as readonly string[]).includes(value);
}

export function isJwsAlg(value: unknown): value is JwsAlg {
  return typeof value === "string" && (JWS_ALGS as readonly string[]).includes(value);
}

/**
 * Header parameters that name a key by URL or carry one inline (RFC 7515 §4.1.2-4.1.6). The
 * vault never fetches or trusts a key named by the sender; such a header is refused outright
 * rather than ignored, so no code path can start honouring it later (RFC 8725 §3.10).
 */
export const KEY_SOURCE_HEADERS = ["jku", "jwk", "x5u", "x5c"] as const;
