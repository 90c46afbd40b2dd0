import { DecryptionError } from "../../../crypto/decryption-error.js";
import { randomBytes } from "../../../crypto/random.js";
import { SecretBytes } from "../../../crypto/secret.js";

/**
 * A destination's signing secrets (Standard Webhooks 1.0.0, "Signature scheme": `whsec_` +
 * base64 of the key; we use 32 random bytes, 256 bits). Several are live during a rotation's
 * overlap: each delivery carries one `v1,` signature per live secret, so the merchant can switch
 * to the new secret at any time within the overlap.
 *
 * The list is sealed as one envelope under the tenant's `webhook` DEK (PCI DSS 3.5.1, 3.6.1:
 * secrets encrypted under the key hierarchy); its plaintext is this binary layout, so no key
 * byte ever becomes a JS string outside the one response that shows it:
 *
 *   0x01 (version) || count (u8) || count × (expires_at ms, u64 BE, 0 = never || 32 key bytes)
 */
export const SIGNING_SECRET_BYTES = 32;
export const SECRET_PREFIX = "whsec_";
/** The default overlap of a rotation (rotate-secret without `overlap_seconds`). */
export const DEFAULT_OVERLAP_SECONDS = 86_400;
export const MAX_OVERLAP_SECONDS = 7 * 86_400;
/** Secrets kept at most: the new one and the still-overlapping previous ones. */
export const MAX_SECRETS = 4;

const VERSION = 0x01;
const ENTRY_BYTES = 8 + SIGNING_SECRET_BYTES;

export interface SigningSecret {
  readonly key: SecretBytes;
  /** When it stops signing; undefined for the current secret. */
  readonly expiresAt: Date | undefined;
}

/** A new secret and its one-time `whsec_…` form for the response. */
export function newSigningSecret(): { secret: SigningSecret; serialized: string } {
  const bytes = randomBytes(SIGNING_SECRET_BYTES);
  const serialized = `${SECRET_PREFIX}${bytes.toString("base64")}`;
  return { secret: { key: SecretBytes.from(bytes), expiresAt: undefined }, serialized };
}

/** The sealed plaintext of a list; the caller zeroizes it after sealing. */
export function encodeSecrets(secrets: readonly SigningSecret[]): Buffer {
  if (secrets.length === 0 || secrets.length > MAX_SECRETS) {
    throw new RangeError(`a destination has 1 to ${MAX_SECRETS} secrets`);
  }
  const out = Buffer.alloc(2 + secrets.length * ENTRY_BYTES);
  out[0] = VERSION;
  out[1] = secrets.length;
  secrets.forEach((secret, i) => {
    const at = 2 + i * ENTRY_BYTES;
    out.writeBigUInt64BE(BigInt(secret.expiresAt?.getTime() ?? 0), at);
    secret.key.use((bytes) => {
      if (bytes.length !== SIGNING_SECRET_BYTES) throw new RangeError("signing keys are 32 bytes");
      bytes.copy(out, at + 8);
    });
  });
  return out;
}

/** Parses an opened envelope; anything malformed is the one DecryptionError. */
export function decodeSecrets(plain: Buffer): SigningSecret[] {
  const count = plain[1] ?? 0;
  if (plain[0] !== VERSION || count < 1 || plain.length !== 2 + count * ENTRY_BYTES) {
    throw new DecryptionError();
  }
  const secrets: SigningSecret[] = [];
  for (let i = 0; i < count; i++) {
    const at = 2 + i * ENTRY_BYTES;
    const ms = Number(plain.readBigUInt64BE(at));
    secrets.push({
      key: SecretBytes.copyOf(plain.subarray(at + 8, at + ENTRY_BYTES)),
      expiresAt: ms === 0 ? undefined : new Date(ms),
    });
  }
  return secrets;
}

/**
 * The list after a rotation at `now`: the new secret first, then every secret still live, each
 * ending at the latest `now + overlap` (an earlier end stays). Expired ones are dropped, and past
 * MAX_SECRETS the oldest go.
 */
export function rotateSecrets(
  current: readonly SigningSecret[],
  fresh: SigningSecret,
  now: Date,
  overlapSeconds: number,
): { secrets: SigningSecret[]; previousExpiresAt: Date } {
  const end = new Date(now.getTime() + overlapSeconds * 1000);
  const kept = current
    .filter((secret) => secret.expiresAt === undefined || secret.expiresAt > now)
    .map((secret) => ({
      key: secret.key,
      expiresAt: secret.expiresAt === undefined || secret.expiresAt > end ? end : secret.expiresAt,
    }));
  return { secrets: [fresh, ...kept].slice(0, MAX_SECRETS), previousExpiresAt: end };
}

/** The keys that sign a delivery at `now`, newest first. */
export function liveSecrets(secrets: readonly SigningSecret[], now: Date): SecretBytes[] {
  return secrets
    .filter((secret) => secret.expiresAt === undefined || secret.expiresAt > now)
    .map((secret) => secret.key);
}

export function zeroizeSecrets(secrets: readonly SigningSecret[]): void {
  for (const secret of secrets) secret.key.zeroize();
}
