/**
 * Errors for JWT claims that fail the vault's checks (RFC 7519 §4.1, §7.2 step 10; RFC 8725
 * §3.8-3.9; RFC 9449 §4.3 for htm/htu). Claims are only read after the signature (and, for
 * nested JWTs, the decryption) succeeded, so a specific code tells the sender nothing an
 * attacker could not already read in their own token; the server maps each code to a problem.
 */
export type JwtClaimsCode =
  | "JWT_CLAIMS"
  | "JWT_EXPIRED"
  | "JWT_NOT_YET_VALID"
  | "JWT_LIFETIME"
  | "JWT_AUDIENCE"
  | "JWT_ISSUER"
  | "JWT_HTM"
  | "JWT_HTU";

const MESSAGES: Record<JwtClaimsCode, string> = {
  JWT_CLAIMS: "the token's claims are missing or ill-typed",
  JWT_EXPIRED: "the token has expired",
  JWT_NOT_YET_VALID: "the token is not valid yet",
  JWT_LIFETIME: "the token's lifetime is longer than allowed",
  JWT_AUDIENCE: "the token is meant for another audience",
  JWT_ISSUER: "the token comes from an unexpected issuer",
  JWT_HTM: "the token is bound to another HTTP method",
  JWT_HTU: "the token is bound to another URL",
};

export class JwtClaimsInvalid extends Error {
  readonly code: JwtClaimsCode;
  /** The claim at fault (a name such as "exp"), never its value. */
  readonly claim: string;

  constructor(code: JwtClaimsCode, claim: string) {
    super(MESSAGES[code]);
    this.name = "JwtClaimsInvalid";
    this.code = code;
    this.claim = claim;
  }
}
