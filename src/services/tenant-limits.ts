import { VaultError } from "../errors/registry.js";
import type { SqlClient } from "../store/database.js";

/**
 * How many of each configuration object one tenant may hold. Each is cheap alone but costs
 * work on every request or event: forward destinations are read for every forward, every token
 * event fans out to every event destination (in one transaction), and each intake endpoint keeps
 * a verifier in memory. A cap keeps one tenant from degrading the vault for the others.
 */
export const TENANT_LIMITS = {
  forward_destinations: 100,
  webhook_endpoints: 100,
  event_destinations: 20,
} as const;

export type LimitedTable = keyof typeof TENANT_LIMITS;

/** Throws LIMIT_REACHED (409) when the tenant already holds its maximum of `table`'s rows. */
export async function assertBelowLimit(
  db: SqlClient,
  table: LimitedTable,
  tenantId: string,
): Promise<void> {
  const limit = TENANT_LIMITS[table];
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE tenant_id = $1`,
    [tenantId],
  );
  if ((rows[0]?.n ?? 0) >= limit) {
    throw new VaultError("LIMIT_REACHED", { detail: `at most ${limit} per tenant` });
  }
}
