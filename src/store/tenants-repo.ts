import type { SqlClient } from "./database.js";

export interface TenantRow {
  readonly id: string;
  readonly name: string;
  readonly created_at: Date;
  /** Days a token is kept after creation unless persistent or given its own expiry (PCI DSS 3.2.1). */
  readonly retention_days: number;
}

export async function insertTenant(db: SqlClient, row: TenantRow): Promise<void> {
  await db.query(
    "INSERT INTO tenants (id, name, created_at, retention_days) VALUES ($1, $2, $3, $4)",
    [row.id, row.name, row.created_at, row.retention_days],
  );
}

/** Sets a tenant's retention policy; false when there is no such tenant. */
export async function updateTenantRetention(
  db: SqlClient,
  id: string,
  days: number,
): Promise<boolean> {
  const { rows } = await db.query(
    "UPDATE tenants SET retention_days = $2 WHERE id = $1 RETURNING id",
    [id, days],
  );
  return rows.length === 1;
}

export async function listTenants(db: SqlClient): Promise<TenantRow[]> {
  const { rows } = await db.query<TenantRow>(
    "SELECT id, name, created_at, retention_days FROM tenants ORDER BY created_at, id",
  );
  return rows;
}

export async function findTenant(db: SqlClient, id: string): Promise<TenantRow | undefined> {
  const { rows } = await db.query<TenantRow>(
    "SELECT id, name, created_at, retention_days FROM tenants WHERE id = $1",
    [id],
  );
  return rows[0];
}

export async function countTenants(db: SqlClient): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tenants");
  return rows[0]?.n ?? 0;
}
