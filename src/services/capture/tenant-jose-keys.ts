import type { KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import type { FieldError } from "../../errors/registry.js";
import { VaultError } from "../../errors/registry.js";
import type { Database } from "../../store/database.js";
import type { TenantJoseKeyRow } from "../../store/jose-keys-repo.js";
import {
  findTenantEncryptionKey,
  findTenantJoseKey,
  insertTenantJoseKey,
  listTenantJoseKeys,
  revokeTenantJoseKey,
} from "../../store/jose-keys-repo.js";
import type { Principal } from "../api-keys.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";

/**
 * What a tenant may register (RFC 7518; RFC 8725 §3.2, §3.5): public keys only, of a known type
 * and size, each pinned to one algorithm. Signing: ES256 (P-256), EdDSA (Ed25519), PS256 (RSA ≥
 * 2048). Encryption of responses: ECDH-ES+A256KW (P-256), RSA-OAEP-256 (RSA ≥ 2048).
 */
const ALLOWED: Readonly<Record<"sig" | "enc", readonly string[]>> = {
  sig: ["ES256", "EdDSA", "PS256"],
  enc: ["ECDH-ES+A256KW", "RSA-OAEP-256"],
};
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const MIN_RSA_BITS = 2048;
const KID = /^[A-Za-z0-9._-]{1,64}$/;

export interface TenantJoseKey {
  readonly kid: string;
  readonly use: "sig" | "enc";
  readonly alg: string;
  readonly key: KeyObject;
}

function invalid(message: string): VaultError {
  const error: FieldError = { field: "jwk", code: "JWK_INVALID", message };
  return new VaultError("VALIDATION_FAILED", { errors: [error] });
}

function keyTypeFits(jwk: Record<string, unknown>, alg: string): boolean {
  switch (alg) {
    case "ES256":
    case "ECDH-ES+A256KW":
      return jwk.kty === "EC" && jwk.crv === "P-256";
    case "EdDSA":
      return jwk.kty === "OKP" && jwk.crv === "Ed25519";
    default:
      return jwk.kty === "RSA";
  }
}

/** Checks a JWK a tenant registers and returns its public key object; throws a 400 otherwise. */
export function publicKeyOf(
  jwk: Record<string, unknown>,
  use: "sig" | "enc",
  alg: string,
): KeyObject {
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) {
    throw invalid("Register the public key only: private members (d, p, q, …, k) are refused.");
  }
  if (!ALLOWED[use].includes(alg)) {
    throw invalid(`For use "${use}" the algorithm must be one of ${ALLOWED[use].join(", ")}.`);
  }
  if (!keyTypeFits(jwk, alg)) throw invalid(`The key type does not fit ${alg}.`);
  if (jwk.use !== undefined && jwk.use !== use) throw invalid("The JWK's use does not match.");
  if (jwk.alg !== undefined && jwk.alg !== alg) throw invalid("The JWK's alg does not match.");
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as never, format: "jwk" });
  } catch {
    throw invalid("The JWK is not a valid public key.");
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (jwk.kty === "RSA" && (bits === undefined || bits < MIN_RSA_BITS)) {
    throw invalid(`RSA keys must have at least ${MIN_RSA_BITS} bits.`);
  }
  return key;
}

/**
 * The public keys tenants register for server-to-server calls: `sig` keys verify their signed
 * (nested JWT) requests, an `enc` key receives responses encrypted to the tenant. The private
 * halves stay with the tenant (in its own KMS if it likes). Registration and revocation are
 * audited (PCI DSS 10.2.2).
 */
export class TenantJoseKeys {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async register(
    principal: Principal,
    request: { jwk: Record<string, unknown>; use: "sig" | "enc"; alg: string },
  ): Promise<TenantJoseKeyRow> {
    const key = publicKeyOf(request.jwk, request.use, request.alg);
    const exported = key.export({ format: "jwk" }) as Record<string, string>;
    const kid =
      typeof request.jwk.kid === "string"
        ? request.jwk.kid
        : await calculateJwkThumbprint(exported as never);
    if (!KID.test(kid)) throw invalid("kid must be 1 to 64 characters of A-Z a-z 0-9 . _ -.");
    const row: TenantJoseKeyRow = {
      tenant_id: principal.tenantId,
      kid,
      use: request.use,
      alg: request.alg,
      jwk: { ...exported, kid, use: request.use, alg: request.alg },
      created_at: this.clock.now(),
      revoked_at: null,
    };
    const inserted = await this.db.transaction(async (tx) => {
      if (!(await insertTenantJoseKey(tx, row))) return false;
      await this.audit.record(tx, {
        tenantId: principal.tenantId,
        actor: principal.keyId,
        action: "tenant_jose_key.create",
        objectId: kid,
        outcome: "success",
        details: { use: request.use, alg: request.alg },
      });
      return true;
    });
    if (!inserted) throw new VaultError("JOSE_KEY_EXISTS");
    return row;
  }

  list(principal: Principal): Promise<TenantJoseKeyRow[]> {
    return listTenantJoseKeys(this.db, principal.tenantId);
  }

  async revoke(principal: Principal, kid: string): Promise<void> {
    const revoked = await this.db.transaction(async (tx) => {
      if (!(await revokeTenantJoseKey(tx, principal.tenantId, kid, this.clock.now()))) return false;
      await this.audit.record(tx, {
        tenantId: principal.tenantId,
        actor: principal.keyId,
        action: "tenant_jose_key.revoke",
        objectId: kid,
        outcome: "success",
        details: {},
      });
      return true;
    });
    if (!revoked) throw new VaultError("JOSE_KEY_NOT_FOUND");
  }

  /** A tenant's unrevoked key by kid and use; undefined for any other tenant's. */
  async find(
    tenantId: string,
    kid: string,
    use: "sig" | "enc",
  ): Promise<TenantJoseKey | undefined> {
    const row = await findTenantJoseKey(this.db, tenantId, kid, use);
    return row === undefined ? undefined : this.toKey(row);
  }

  /** The key responses are encrypted to: the tenant's newest unrevoked `enc` key. */
  async encryptionKey(tenantId: string): Promise<TenantJoseKey | undefined> {
    const row = await findTenantEncryptionKey(this.db, tenantId);
    return row === undefined ? undefined : this.toKey(row);
  }

  private toKey(row: TenantJoseKeyRow): TenantJoseKey {
    return {
      kid: row.kid,
      use: row.use,
      alg: row.alg,
      key: createPublicKey({ key: row.jwk as never, format: "jwk" }),
    };
  }
}
