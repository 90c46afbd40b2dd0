import type { AuditEventRow } from "../audit/audit-event.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { SqlClient } from "./database.js";
import type { TokenRow, TokenScope } from "./tokens-repo.js";

/** One entry of a tenant's forward allowlist (migrations/007_payment_edge.sql). */
export interface ForwardDestinationRow {
  readonly id: string;
  readonly tenant_id: string;
  /** Normalized host, with `:port` when not 443 (IPv6 literals in brackets). */
  readonly host: string;
  readonly path_prefix: string;
  readonly created_at: Date;
  readonly created_by: string;
}

const DESTINATION_COLUMNS = "id, tenant_id, host, path_prefix, created_at, created_by";
const AUDIT_AT_7 = "$7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16";

/**
 * Adds a destination and its `forward_destination.create` event in one statement; false when
 * the tenant already has this host and path prefix (nothing written).
 */
export async function insertDestinationAudited(
  db: SqlClient,
  row: ForwardDestinationRow,
  audit: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH ins AS (
       INSERT INTO forward_destinations (${DESTINATION_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (tenant_id, host, path_prefix) DO NOTHING RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) SELECT ${AUDIT_AT_7} FROM ins RETURNING id`,
    [
      row.id,
      row.tenant_id,
      row.host,
      row.path_prefix,
      row.created_at,
      row.created_by,
      ...auditParams(audit),
    ],
  );
  return rows.length === 1;
}

export async function listDestinations(
  db: SqlClient,
  tenantId: string,
): Promise<ForwardDestinationRow[]> {
  const { rows } = await db.query<ForwardDestinationRow>(
    `SELECT ${DESTINATION_COLUMNS} FROM forward_destinations WHERE tenant_id = $1
      ORDER BY created_at, id`,
    [tenantId],
  );
  return rows;
}

/** Removes one of the tenant's destinations with its audit event; false when none matched. */
export async function deleteDestinationAudited(
  db: SqlClient,
  tenantId: string,
  id: string,
  audit: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH d AS (DELETE FROM forward_destinations WHERE tenant_id = $1 AND id = $2 RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12 FROM d RETURNING id`,
    [tenantId, id, ...auditParams(audit)],
  );
  return rows.length === 1;
}

/** The columns the forward proxy needs to decrypt a token's card. */
export type ForwardTokenRow = Pick<TokenRow, "id" | "dek_id" | "ciphertext">;

/**
 * Reads every token a forward names, within the caller's scope, and writes the one
 * `token.forward` event in the same statement, only when all of them were found (PCI DSS
 * 10.2.1: the access to card data and its record are one atomic act). Fewer rows than ids
 * means one is missing or another tenant's: nothing was recorded, nothing is returned.
 */
export async function findTokensForForwardAudited(
  db: SqlClient,
  scope: TokenScope,
  ids: readonly string[],
  audit: AuditEventRow,
): Promise<ForwardTokenRow[]> {
  const { rows } = await db.query<ForwardTokenRow>(
    `WITH t AS (
       SELECT id, dek_id, ciphertext FROM tokens
        WHERE id = ANY($4::text[]) AND tenant_id = $1 AND environment = $2
          AND (expires_at IS NULL OR expires_at > $3)),
     a AS (
       INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
       SELECT $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15
        WHERE (SELECT count(*) FROM t) = $5 RETURNING id)
     SELECT t.* FROM t, a`,
    [scope.tenantId, scope.environment, scope.now, ids, ids.length, ...auditParams(audit)],
  );
  return rows;
}
