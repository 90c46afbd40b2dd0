import type { AuditEventRow } from "../audit/audit-event.js";
import type { Purpose } from "../crypto/envelope.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { SqlClient } from "./database.js";

export interface DataKeyRow {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  readonly version: number;
  readonly wrapped: Buffer;
  readonly kek_id: string;
  readonly kek_version: number;
  readonly created_at: Date;
}

const COLUMNS = "id, owner, purpose, version, wrapped, kek_id, kek_version, created_at";

export async function findLatestDataKey(
  db: SqlClient,
  owner: string,
  purpose: Purpose,
): Promise<DataKeyRow | undefined> {
  const { rows } = await db.query<DataKeyRow>(
    `SELECT ${COLUMNS} FROM data_keys WHERE owner = $1 AND purpose = $2 ORDER BY version DESC LIMIT 1`,
    [owner, purpose],
  );
  return rows[0];
}

export async function findDataKey(db: SqlClient, id: string): Promise<DataKeyRow | undefined> {
  const { rows } = await db.query<DataKeyRow>(`SELECT ${COLUMNS} FROM data_keys WHERE id = $1`, [
    id,
  ]);
  return rows[0];
}

/**
 * Inserts a new key version and its `key.create` audit event in one statement; returns false
 * (and records nothing) when another node created that version first.
 */
export async function insertDataKeyAudited(
  db: SqlClient,
  row: DataKeyRow,
  event: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH ins AS (
       INSERT INTO data_keys (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (owner, purpose, version) DO NOTHING RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17, $18 FROM ins RETURNING id`,
    [
      row.id,
      row.owner,
      row.purpose,
      row.version,
      row.wrapped,
      row.kek_id,
      row.kek_version,
      row.created_at,
      ...auditParams(event),
    ],
  );
  return rows.length === 1;
}
