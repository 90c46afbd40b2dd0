import { VaultError } from "../../errors/registry.js";
import { decryptCaptureJwe } from "../../jose/capture-jwe.js";
import { checkClaims, parseClaims } from "../../jose/claims.js";
import type { Clock } from "../clock.js";
import type { CapturePayloadOpener } from "./capture-service.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";
import {
  asJsonBody,
  CLOCK_SKEW_SECONDS,
  isRecord,
  MAX_JOSE_LIFETIME_SECONDS,
  vaultDecryptionKeys,
  withJoseProblems,
} from "./vault-jwe.js";

/**
 * Opens capture payloads: a compact JWE to a vault capture key (decryptCaptureJwe: kid among the
 * vault's keys, alg pinned, A256GCM, no zip or key-bearing headers) whose plaintext is the
 * claims `{ iss: <session id>, aud: <vault origin>, iat, exp ≤ iat + 5 min, jti, card }`.
 */
export function capturePayloadOpener(keys: VaultJoseKeys, clock: Clock): CapturePayloadOpener {
  // The public route takes ECDH-ES only: an RSA-OAEP private-key operation costs a few ms, which
  // unauthenticated callers must not be able to spend (RSA is for authenticated nested calls).
  const decryptionKeys = vaultDecryptionKeys(keys, ["ECDH-ES+A256KW"]);
  return (compact, expected) =>
    withJoseProblems(async () => {
      const { plaintext } = await decryptCaptureJwe(compact, decryptionKeys);
      const checked = checkClaims(parseClaims(plaintext), {
        issuer: expected.issuer,
        audience: expected.audience,
        maxLifetimeSec: MAX_JOSE_LIFETIME_SECONDS,
        clockSkewSec: CLOCK_SKEW_SECONDS,
        now: clock.now(),
      });
      const { card } = checked.claims;
      if (!isRecord(card)) {
        throw new VaultError("JWT_CLAIMS_INVALID", { detail: "The card claim is missing (card)." });
      }
      return { jti: checked.jti, replayUntil: checked.replayUntil, card: asJsonBody(card) };
    });
}
