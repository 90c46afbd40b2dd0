import type { Environment } from "../keys/key-manager.js";
import type { SqlClient } from "./database.js";

/** One of the vault's JOSE key pairs; `private_key` is an envelope sealed by a `jose` DEK. */
export interface VaultJoseKeyRow {
  readonly kid: string;
  readonly use: "enc" | "sig";
  readonly alg: string;
  readonly private_key: Buffer;
  readonly created_at: Date;
  readonly retired_at: Date | null;
  readonly expires_at: Date | null;
}

const VAULT_COLUMNS = "kid, use, alg, private_key, created_at, retired_at, expires_at";

/** Inserts a new current key; false when another node made the current key of this alg first. */
export async function insertVaultJoseKey(db: SqlClient, row: VaultJoseKeyRow): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO vault_jose_keys (${VAULT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT DO NOTHING RETURNING kid`,
    [row.kid, row.use, row.alg, row.private_key, row.created_at, row.retired_at, row.expires_at],
  );
  return rows.length === 1;
}

/** Keys still accepted at `now`: the current ones and retired ones inside their overlap. */
export async function listUsableVaultJoseKeys(
  db: SqlClient,
  now: Date,
): Promise<VaultJoseKeyRow[]> {
  const { rows } = await db.query<VaultJoseKeyRow>(
    `SELECT ${VAULT_COLUMNS} FROM vault_jose_keys
      WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, kid`,
    [now],
  );
  return rows;
}

/**
 * Retires the current key of an algorithm (only if made before `createdBefore`, when given);
 * it is still accepted until `expiresAt`. Undefined when no such key was current.
 */
export async function retireVaultJoseKey(
  db: SqlClient,
  alg: string,
  now: Date,
  expiresAt: Date,
  createdBefore?: Date,
): Promise<string | undefined> {
  const { rows } = await db.query<{ kid: string }>(
    `UPDATE vault_jose_keys SET retired_at = $2, expires_at = $3
      WHERE alg = $1 AND retired_at IS NULL AND ($4::timestamptz IS NULL OR created_at <= $4)
      RETURNING kid`,
    [alg, now, expiresAt, createdBefore ?? null],
  );
  return rows[0]?.kid;
}

/** Deletes the keys whose overlap has ended: their private halves are gone for good. */
export async function deleteExpiredVaultJoseKeys(db: SqlClient, now: Date): Promise<string[]> {
  const { rows } = await db.query<{ kid: string }>(
    "DELETE FROM vault_jose_keys WHERE expires_at <= $1 RETURNING kid",
    [now],
  );
  return rows.map((r) => r.kid);
}

/** A public key a tenant registered for nested JWTs, in one environment. */
export interface TenantJoseKeyRow {
  readonly tenant_id: string;
  readonly environment: Environment;
  readonly kid: string;
  readonly use: "sig" | "enc";
  readonly alg: string;
  readonly jwk: Record<string, unknown>;
  readonly created_at: Date;
  readonly revoked_at: Date | null;
}

const TENANT_COLUMNS = "tenant_id, environment, kid, use, alg, jwk, created_at, revoked_at";

/** Whose keys: a tenant's, in one environment (pv_live_ and pv_test_ never share them). */
export interface TenantKeyScope {
  readonly tenantId: string;
  readonly environment: Environment;
}

/** False when the tenant already has a key with this kid. */
export async function insertTenantJoseKey(db: SqlClient, row: TenantJoseKeyRow): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO tenant_jose_keys (${TENANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT DO NOTHING RETURNING kid`,
    [
      row.tenant_id,
      row.environment,
      row.kid,
      row.use,
      row.alg,
      JSON.stringify(row.jwk),
      row.created_at,
      null,
    ],
  );
  return rows.length === 1;
}

export async function listTenantJoseKeys(
  db: SqlClient,
  scope: TenantKeyScope,
): Promise<TenantJoseKeyRow[]> {
  const { rows } = await db.query<TenantJoseKeyRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenant_jose_keys WHERE tenant_id = $1 AND environment = $2
      ORDER BY created_at, kid`,
    [scope.tenantId, scope.environment],
  );
  return rows;
}

/** The tenant's key with this kid and use, unless revoked. */
export async function findTenantJoseKey(
  db: SqlClient,
  scope: TenantKeyScope,
  kid: string,
  use: "sig" | "enc",
): Promise<TenantJoseKeyRow | undefined> {
  const { rows } = await db.query<TenantJoseKeyRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenant_jose_keys
      WHERE tenant_id = $1 AND environment = $2 AND kid = $3 AND use = $4 AND revoked_at IS NULL`,
    [scope.tenantId, scope.environment, kid, use],
  );
  return rows[0];
}

/** The tenant's newest unrevoked encryption key, for encrypted responses. */
export async function findTenantEncryptionKey(
  db: SqlClient,
  scope: TenantKeyScope,
): Promise<TenantJoseKeyRow | undefined> {
  const { rows } = await db.query<TenantJoseKeyRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenant_jose_keys
      WHERE tenant_id = $1 AND environment = $2 AND use = 'enc' AND revoked_at IS NULL
      ORDER BY created_at DESC, kid LIMIT 1`,
    [scope.tenantId, scope.environment],
  );
  return rows[0];
}

/** Revokes a tenant's key at once; false when there is no such unrevoked key. */
export async function revokeTenantJoseKey(
  db: SqlClient,
  scope: TenantKeyScope,
  kid: string,
  now: Date,
): Promise<boolean> {
  const { rows } = await db.query(
    `UPDATE tenant_jose_keys SET revoked_at = $4
      WHERE tenant_id = $1 AND environment = $2 AND kid = $3 AND revoked_at IS NULL RETURNING kid`,
    [scope.tenantId, scope.environment, kid, now],
  );
  return rows.length === 1;
}
