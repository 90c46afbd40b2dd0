import { VaultError } from "../../errors/registry.js";
import { parseJsonBody } from "../../http/json-body-parser.js";
import type { Clock } from "../clock.js";
import type { CapturePayloadOpener } from "./capture-service.js";
import { CLOCK_SKEW_SECONDS, MAX_PAYLOAD_SECONDS } from "./capture-service.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";
import { checkTimes, isRecord, jtiOf, openVaultJwe } from "./vault-jwe.js";

/**
 * Opens capture payloads: a compact JWE to a capture key (openVaultJwe) whose plaintext is the
 * claims `{ iss: <session id>, aud: <vault origin>, iat, exp ≤ iat + 5 min, jti, card }`.
 */
export function capturePayloadOpener(keys: VaultJoseKeys, clock: Clock): CapturePayloadOpener {
  return async (compact, expected) => {
    const { plaintext } = await openVaultJwe(keys, compact);
    let claims: unknown;
    try {
      claims = parseJsonBody(Buffer.from(plaintext));
    } catch {
      throw new VaultError("JWE_INVALID");
    }
    if (!isRecord(claims) || !isRecord(claims.card)) throw new VaultError("JWT_CLAIMS_INVALID");
    if (claims.iss !== expected.issuer || claims.aud !== expected.audience) {
      throw new VaultError("JWT_CLAIMS_INVALID");
    }
    const jti = jtiOf(claims);
    const { exp } = checkTimes(claims, Math.floor(clock.now().getTime() / 1000), {
      maxLifetimeSeconds: MAX_PAYLOAD_SECONDS,
      skewSeconds: CLOCK_SKEW_SECONDS,
    });
    return { jti, exp, card: claims.card };
  };
}
