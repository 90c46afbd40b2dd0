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
  readonly expires_at: Date | null;
  readonly allowed_cidrs: string[];
  readonly client_cert_sha256: string | null;
  readonly rotated_to: string | null;
  readonly created_by: string | null;
}

/** The usage counters, read for display only (authentication never needs them). */
export interface ApiKeyUsageRow {
  readonly last_used_at: Date | null;
  readonly use_count: string;
}

const COLUMNS =
  "id, tenant_id, environment, name, scopes, secret_mac, created_at, revoked_at, expires_at, " +
  "allowed_cidrs, client_cert_sha256, rotated_to, created_by";

export async function insertApiKey(db: SqlClient, row: ApiKeyRow): Promise<void> {
  await db.query(
    `INSERT INTO api_keys (${COLUMNS})
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [
      row.id,
      row.tenant_id,
      row.environment,
      row.name,
      row.scopes,
      row.secret_mac,
      row.created_at,
      row.revoked_at,
      row.expires_at,
      row.allowed_cidrs,
      row.client_cert_sha256,
      row.rotated_to,
      row.created_by,
    ],
  );
}

export async function findApiKey(
  db: SqlClient,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE id = $1${options.forUpdate ? " FOR UPDATE" : ""}`,
    [id],
  );
  return rows[0];
}

export async function listApiKeys(
  db: SqlClient,
  tenantId: string | undefined,
): Promise<(ApiKeyRow & ApiKeyUsageRow)[]> {
  const select = `SELECT ${COLUMNS}, last_used_at, use_count::text AS use_count FROM api_keys`;
  const { rows } =
    tenantId === undefined
      ? await db.query<ApiKeyRow & ApiKeyUsageRow>(`${select} ORDER BY created_at, id`)
      : await db.query<ApiKeyRow & ApiKeyUsageRow>(
          `${select} WHERE tenant_id = $1 ORDER BY created_at, id`,
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

/** Ends a rotated key's overlap: it expires at `expiresAt` and names its successor. */
export async function markRotated(
  db: SqlClient,
  id: string,
  successor: string,
  expiresAt: Date,
): Promise<void> {
  await db.query(
    `UPDATE api_keys SET rotated_to = $2,
            expires_at = CASE WHEN expires_at IS NULL OR expires_at > $3 THEN $3 ELSE expires_at END
      WHERE id = $1`,
    [id, successor, expiresAt],
  );
}

/** Adds batched use counts; the last-used time only moves forward. */
export async function addApiKeyUsage(
  db: SqlClient,
  usage: readonly { id: string; count: number; lastUsedAt: Date }[],
): Promise<void> {
  if (usage.length === 0) return;
  await db.query(
    `UPDATE api_keys AS k
        SET use_count = k.use_count + u.n,
            last_used_at = GREATEST(COALESCE(k.last_used_at, u.at), u.at)
       FROM (SELECT unnest($1::text[]) AS id, unnest($2::bigint[]) AS n,
                    unnest($3::timestamptz[]) AS at) AS u
      WHERE k.id = u.id`,
    [usage.map((u) => u.id), usage.map((u) => u.count), usage.map((u) => u.lastUsedAt)],
  );
}
