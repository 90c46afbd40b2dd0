/**
 * Responses encrypted to a tenant's registered encryption key (RFC 7516 §5.1; RFC 7518 §4.3,
 * §4.6). The recipient JWK is re-validated on every use so that a stored key can never bring
 * in another algorithm; "kid" names the tenant's key so it can pick its private key.
 */
import { CompactEncrypt } from "jose";
import { CAPTURE_JWE_ENC } from "./algorithms.js";
import { validateTenantJwk } from "./tenant-jwk.js";

export interface EncryptResponseOptions {
  /** Content type of the payload (RFC 7516 §4.1.12), e.g. "json". */
  readonly cty?: string;
}

export async function encryptResponse(
  payload: Uint8Array | string,
  recipientPublicJwk: unknown,
  options: EncryptResponseOptions = {},
): Promise<string> {
  const recipient = await validateTenantJwk(recipientPublicJwk, "enc");
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  return new CompactEncrypt(bytes)
    .setProtectedHeader({
      alg: recipient.alg,
      enc: CAPTURE_JWE_ENC,
      kid: recipient.kid,
      ...(options.cty !== undefined && { cty: options.cty }),
    })
    .encrypt(recipient.key);
}
