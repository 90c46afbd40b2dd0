import type { SqlClient } from "./database.js";

export interface ApiKeyRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly environment: "live" | "test";
  readonly name: string;
  readonly scopes: string[];
  readonly secret_mac: Buffer;
  readonly created_at: Date;
  readonly revoked_at: Date | null;
}

const COLUMNS = "id, tenant_id, environment, name, scopes, secret_mac, created_at, revoked_at";

export async function insertApiKey(db: SqlClient, row: ApiKeyRow): Promise<void> {
  await db.query(`INSERT INTO api_keys (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
    row.id,
    row.tenant_id,
    row.environment,
    row.name,
    row.scopes,
    row.secret_mac,
    row.created_at,
    row.revoked_at,
  ]);
}

export async function findApiKey(db: SqlClient, id: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
  return rows[0];
}

export async function listApiKeys(
  db: SqlClient,
  tenantId: string | undefined,
): Promise<ApiKeyRow[]> {
  const { rows } =
    tenantId === undefined
      ? await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`)
      : await db.query<ApiKeyRow>(
          `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`,
          [tenantId],
        );
  return rows;
}

/** Marks a key revoked; returns false when there is no such key or it was already revoked. */
export async function revokeApiKey(db: SqlClient, id: string, at: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    [id, at],
  );
  return rowCount === 1;
}
