import type { AuditEventRow } from "../audit/audit-event.js";
import type { SqlClient } from "./database.js";

/** Column list and placeholders for inserting one event; the CTE statements in other repos reuse them. */
export const AUDIT_INSERT_COLUMNS =
  "id, occurred_at, tenant_id, actor, action, object_id, outcome, details, mac_key_id, row_mac";

export function auditParams(row: AuditEventRow): unknown[] {
  return [
    row.id,
    row.occurred_at,
    row.tenant_id,
    row.actor,
    row.action,
    row.object_id,
    row.outcome,
    JSON.stringify(row.details),
    row.mac_key_id,
    row.row_mac,
  ];
}

export async function insertAuditEvent(db: SqlClient, row: AuditEventRow): Promise<void> {
  await db.query(
    `INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)`,
    auditParams(row),
  );
}

export interface SealedHead {
  readonly chain_seq: number;
  readonly chain_mac: Buffer;
}

export async function findChainHead(db: SqlClient): Promise<SealedHead | undefined> {
  const { rows } = await db.query<SealedHead>(
    "SELECT chain_seq, chain_mac FROM audit_events WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1",
  );
  return rows[0];
}

const EVENT_COLUMNS =
  "id, occurred_at, tenant_id, actor, action, object_id, outcome, details, mac_key_id, row_mac";

/**
 * Unsealed events whose transactions have all ended: every transaction with an id below the
 * oldest still-running one (the snapshot's xmin) has committed or aborted, so no event can
 * appear later in this range. Sealing in (txid, id) order therefore never skips a committed
 * event, without any lock on the write path.
 */
export async function findSealableEvents(db: SqlClient, limit: number): Promise<AuditEventRow[]> {
  const { rows } = await db.query<AuditEventRow>(
    `SELECT ${EVENT_COLUMNS} FROM audit_events
      WHERE chain_seq IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY txid, id LIMIT $1`,
    [limit],
  );
  return rows;
}

export async function sealEvent(
  db: SqlClient,
  id: string,
  seq: number,
  mac: Buffer,
): Promise<void> {
  await db.query(
    "UPDATE audit_events SET chain_seq = $2, chain_mac = $3 WHERE id = $1 AND chain_seq IS NULL",
    [id, seq, mac],
  );
}

export interface StoredEvent extends AuditEventRow {
  readonly chain_seq: number | null;
  readonly chain_mac: Buffer | null;
}

/** Sealed events in chain order, a page at a time, for verification. */
export async function findSealedEvents(
  db: SqlClient,
  afterSeq: number,
  limit: number,
): Promise<StoredEvent[]> {
  const { rows } = await db.query<StoredEvent>(
    `SELECT ${EVENT_COLUMNS}, chain_seq, chain_mac FROM audit_events
      WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows;
}

export async function findUnsealedEvents(db: SqlClient, limit: number): Promise<StoredEvent[]> {
  const { rows } = await db.query<StoredEvent>(
    `SELECT ${EVENT_COLUMNS}, chain_seq, chain_mac FROM audit_events WHERE chain_seq IS NULL ORDER BY txid, id LIMIT $1`,
    [limit],
  );
  return rows;
}
