import { constantTimeEqual } from "../../crypto/compare.js";
import { envelopeDekId, openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { hmacSha256 } from "../../crypto/hmac.js";
import { randomBytes } from "../../crypto/random.js";
import { SecretBytes } from "../../crypto/secret.js";
import { encodeBase62 } from "../../domain/base62.js";
import type { KeyRing } from "../../keys/key-ring.js";
import { SYSTEM_KEY_OWNER } from "../../keys/key-ring.js";

/**
 * The server-side secrets of admin authentication, all under the key hierarchy (PCI DSS 8.3.2):
 * TOTP secrets sealed by a system `totp` DEK (they must be readable to compute codes), and
 * refresh tokens, enrollment tokens and recovery codes kept only as HMAC-SHA-256 under the
 * system `authn` key, so a copy of the database yields no usable credential.
 */

/** What a bearer secret is for; part of the MAC input, so one kind never verifies as another. */
export type SecretKind = "refresh" | "enroll";

const PREFIX: Record<SecretKind, string> = { refresh: "pvr", enroll: "pve" };
const ID_PREFIX: Record<SecretKind, string> = { refresh: "rt", enroll: "enr" };
// <prefix>_<22 base62: 128-bit id>_<43 base62: 256-bit secret>
const ID_BYTES = 16;
const SECRET_BYTES = 32;

export interface IssuedSecret {
  /** The row id (`rt_…`, `enr_…`). */
  readonly id: string;
  /** What the holder is given, once. */
  readonly token: string;
  readonly mac: Buffer;
}

export interface PresentedSecret {
  readonly id: string;
  readonly secret: string;
}

function pattern(kind: SecretKind): RegExp {
  return new RegExp(`^${PREFIX[kind]}_([0-9A-Za-z]{22})_([0-9A-Za-z]{43})$`);
}

/** The id and secret of a presented token, or undefined when it is not one of this kind. */
export function parseSecret(kind: SecretKind, token: unknown): PresentedSecret | undefined {
  if (typeof token !== "string") return undefined;
  const match = pattern(kind).exec(token);
  if (match === null) return undefined;
  return { id: `${ID_PREFIX[kind]}_${match[1]}`, secret: match[2] as string };
}

/** The envelope context of a user's TOTP secret: bound to the user, so it cannot be moved. */
function totpContext(userId: string) {
  return { tenantId: SYSTEM_KEY_OWNER, objectId: `totp:${userId}`, purpose: "totp" as const };
}

export class CredentialKeys {
  constructor(private readonly keys: KeyRing) {}

  async issue(kind: SecretKind): Promise<IssuedSecret> {
    const publicId = encodeBase62(randomBytes(ID_BYTES));
    const secret = encodeBase62(randomBytes(SECRET_BYTES));
    return {
      id: `${ID_PREFIX[kind]}_${publicId}`,
      token: `${PREFIX[kind]}_${publicId}_${secret}`,
      mac: await this.macOf(kind, secret),
    };
  }

  /**
   * Whether a presented secret matches a stored MAC. The MAC is computed and compared even when
   * no row was found (against zeros), so an unknown id costs the same work.
   */
  async matches(kind: SecretKind, presented: PresentedSecret, stored: Buffer | undefined) {
    const mac = await this.macOf(kind, presented.secret);
    return constantTimeEqual(mac, stored ?? Buffer.alloc(mac.length)) && stored !== undefined;
  }

  /** The key recovery codes are MACed with (src/auth/recovery-codes.ts). */
  async recoveryKey(): Promise<Buffer> {
    return (await this.keys.activeKey(SYSTEM_KEY_OWNER, "authn")).material;
  }

  async sealTotp(userId: string, secret: SecretBytes): Promise<Buffer> {
    const dek = await this.keys.activeKey(SYSTEM_KEY_OWNER, "totp", 1);
    return secret.use((plaintext) =>
      sealEnvelope({ dekId: dek.id, key: dek.material, plaintext, context: totpContext(userId) }),
    );
  }

  async openTotp(userId: string, sealed: Buffer): Promise<SecretBytes> {
    const dek = await this.keys.keyById(envelopeDekId(sealed), SYSTEM_KEY_OWNER, "totp");
    return SecretBytes.from(openEnvelope(sealed, dek.material, totpContext(userId)));
  }

  private async macOf(kind: SecretKind, secret: string): Promise<Buffer> {
    const key = await this.keys.activeKey(SYSTEM_KEY_OWNER, "authn");
    return hmacSha256(
      key.material,
      Buffer.from(`payvault/admin-${kind}/v1:`),
      Buffer.from(secret, "ascii"),
    );
  }
}
