import type { SqlClient } from "./database.js";

export interface TenantRow {
  readonly id: string;
  readonly name: string;
  readonly created_at: Date;
}

export async function insertTenant(db: SqlClient, row: TenantRow): Promise<void> {
  await db.query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)", [
    row.id,
    row.name,
    row.created_at,
  ]);
}

export async function listTenants(db: SqlClient): Promise<TenantRow[]> {
  const { rows } = await db.query<TenantRow>(
    "SELECT id, name, created_at FROM tenants ORDER BY created_at, id",
  );
  return rows;
}

export async function findTenant(db: SqlClient, id: string): Promise<TenantRow | undefined> {
  const { rows } = await db.query<TenantRow>(
    "SELECT id, name, created_at FROM tenants WHERE id = $1",
    [id],
  );
  return rows[0];
}

export async function countTenants(db: SqlClient): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tenants");
  return rows[0]?.n ?? 0;
}
