import type { CryptoKey } from "jose";
import type { FieldError } from "../../errors/registry.js";
import { VaultError } from "../../errors/registry.js";
import type { JwsAlg } from "../../jose/algorithms.js";
import type { KeyUse, RegisteredJwk } from "../../jose/tenant-jwk.js";
import { JwkRejected, validateTenantJwk } from "../../jose/tenant-jwk.js";
import type { Database } from "../../store/database.js";
import type { TenantJoseKeyRow, TenantKeyScope } from "../../store/jose-keys-repo.js";
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

/** A tenant's signing key, imported for verification. */
export interface TenantSigningKey {
  readonly kid: string;
  readonly alg: JwsAlg;
  readonly key: CryptoKey;
}

function scopeOf(principal: Principal): TenantKeyScope {
  return { tenantId: principal.tenantId, environment: principal.environment };
}

function jwkInvalid(field: string, message: string): VaultError {
  const error: FieldError = { field, code: "JWK_INVALID", message };
  return new VaultError("VALIDATION_FAILED", { errors: [error] });
}

/** The JOSE layer's check of a tenant's key; a refusal is a field error in its own words. */
async function validated(jwk: Record<string, unknown>, use: KeyUse): Promise<RegisteredJwk> {
  try {
    return await validateTenantJwk(jwk, use);
  } catch (err) {
    if (err instanceof JwkRejected) throw jwkInvalid("jwk", `The key is refused: ${err.message}.`);
    throw err;
  }
}

/**
 * The public keys tenants register for server-to-server calls: `sig` keys verify their signed
 * (nested JWT) requests, an `enc` key receives responses encrypted to the tenant. The private
 * halves stay with the tenant (in its own KMS if it likes). What is accepted is the JOSE layer's
 * rule (src/jose/tenant-jwk.ts): public members only, P-256, Ed25519 or RSA 2048–8192, each key
 * pinned to the one algorithm its type and use allow (RFC 8725 §3.1). Registration and
 * revocation are audited (PCI DSS 10.2.2); revocation takes effect at once.
 */
export class TenantJoseKeys {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  /** Registers a public key; `alg`, when given, must be the one the key's type and use allow. */
  async register(
    principal: Principal,
    request: { jwk: Record<string, unknown>; use: KeyUse; alg?: string },
  ): Promise<TenantJoseKeyRow> {
    const registered = await validated(request.jwk, request.use);
    if (request.alg !== undefined && request.alg !== registered.alg) {
      throw jwkInvalid(
        "alg",
        `This key's algorithm for use "${request.use}" is ${registered.alg}.`,
      );
    }
    const row: TenantJoseKeyRow = {
      tenant_id: principal.tenantId,
      environment: principal.environment,
      kid: registered.kid,
      use: request.use,
      alg: registered.alg,
      jwk: { ...registered.jwk },
      created_at: this.clock.now(),
      revoked_at: null,
    };
    const inserted = await this.db.transaction(async (tx) => {
      if (!(await insertTenantJoseKey(tx, row))) return false;
      await this.audit.record(tx, {
        tenantId: principal.tenantId,
        actor: principal.keyId,
        action: "tenant_jose_key.create",
        objectId: row.kid,
        outcome: "success",
        details: { use: row.use, alg: row.alg },
      });
      return true;
    });
    if (!inserted) throw new VaultError("JOSE_KEY_EXISTS");
    return row;
  }

  list(principal: Principal): Promise<TenantJoseKeyRow[]> {
    return listTenantJoseKeys(this.db, scopeOf(principal));
  }

  async revoke(principal: Principal, kid: string): Promise<void> {
    const revoked = await this.db.transaction(async (tx) => {
      if (!(await revokeTenantJoseKey(tx, scopeOf(principal), kid, this.clock.now()))) {
        return false;
      }
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

  /** A tenant's unrevoked signing key by kid; undefined for another tenant's or environment's. */
  async find(scope: TenantKeyScope, kid: string): Promise<TenantSigningKey | undefined> {
    const row = await findTenantJoseKey(this.db, scope, kid, "sig");
    if (row === undefined) return undefined;
    // Checked again as it is imported: a stored row can never bring in another algorithm.
    const { alg, key } = await validateTenantJwk(row.jwk, "sig");
    return { kid: row.kid, alg: alg as JwsAlg, key };
  }

  /** The public JWK responses are encrypted to: the tenant's newest unrevoked `enc` key. */
  async encryptionJwk(scope: TenantKeyScope): Promise<Record<string, unknown> | undefined> {
    return (await findTenantEncryptionKey(this.db, scope))?.jwk;
  }
}
