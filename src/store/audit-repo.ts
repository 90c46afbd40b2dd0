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

export interface SealRow {
  readonly seq: number;
  readonly from_txid: string;
  readonly to_txid: string;
  readonly event_count: number;
  readonly digest: Buffer;
  readonly mac_key_id: string;
  readonly chain_mac: Buffer;
  readonly sealed_at: Date;
}

const SEAL_COLUMNS =
  "seq, from_txid::text AS from_txid, to_txid::text AS to_txid, event_count, digest, mac_key_id, chain_mac, sealed_at";

export async function findLastSeal(db: SqlClient): Promise<SealRow | undefined> {
  const { rows } = await db.query<SealRow>(
    `SELECT ${SEAL_COLUMNS} FROM audit_seals ORDER BY seq DESC LIMIT 1`,
  );
  return rows[0];
}

export async function findSeals(
  db: SqlClient,
  afterSeq: number,
  limit: number,
): Promise<SealRow[]> {
  const { rows } = await db.query<SealRow>(
    `SELECT ${SEAL_COLUMNS} FROM audit_seals WHERE seq > $1 ORDER BY seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows;
}

export async function insertSeal(db: SqlClient, seal: SealRow): Promise<void> {
  await db.query(
    `INSERT INTO audit_seals (seq, from_txid, to_txid, event_count, digest, mac_key_id, chain_mac, sealed_at)
     VALUES ($1, $2::xid8, $3::xid8, $4, $5, $6, $7, $8)`,
    [
      seal.seq,
      seal.from_txid,
      seal.to_txid,
      seal.event_count,
      seal.digest,
      seal.mac_key_id,
      seal.chain_mac,
      seal.sealed_at,
    ],
  );
}

/**
 * The oldest transaction id still running (the snapshot's xmin), as text. Every transaction
 * below it has committed or aborted, so no event with a smaller txid can appear any more: events
 * below this horizon can be sealed without any lock on the write path.
 */
export async function findSealHorizon(db: SqlClient): Promise<string> {
  const { rows } = await db.query<{ horizon: string }>(
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon",
  );
  return rows[0]?.horizon ?? "0";
}

export interface StoredEvent extends AuditEventRow {
  readonly txid: string;
}

const EVENT_COLUMNS =
  "id, txid::text AS txid, occurred_at, tenant_id, actor, action, object_id, outcome, details, mac_key_id, row_mac";

/** Events with from <= txid < to (to undefined: no upper bound), in seal order. */
export async function findEventsInRange(
  db: SqlClient,
  fromTxid: string,
  toTxid: string | undefined,
  limit: number,
): Promise<StoredEvent[]> {
  const { rows } =
    toTxid === undefined
      ? await db.query<StoredEvent>(
          `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE txid >= $1::xid8 ORDER BY txid, id LIMIT $2`,
          [fromTxid, limit],
        )
      : await db.query<StoredEvent>(
          `SELECT ${EVENT_COLUMNS} FROM audit_events
            WHERE txid >= $1::xid8 AND txid < $2::xid8 ORDER BY txid, id LIMIT $3`,
          [fromTxid, toTxid, limit],
        );
  return rows;
}

export interface TenantEventQuery {
  readonly tenantId: string;
  /** Events strictly after this (occurred_at, id) position: the previous page's last event. */
  readonly after: { readonly at: Date; readonly id: string } | undefined;
  readonly since: Date | undefined;
  readonly until: Date | undefined;
  readonly action: string | undefined;
  readonly limit: number;
}

/** One tenant's events in time order, a page at a time (audit_events_tenant_time index). */
export async function findTenantEvents(
  db: SqlClient,
  query: TenantEventQuery,
): Promise<StoredEvent[]> {
  const { rows } = await db.query<StoredEvent>(
    `SELECT ${EVENT_COLUMNS} FROM audit_events
      WHERE tenant_id = $1
        AND ($2::timestamptz IS NULL OR (occurred_at, id) > ($2::timestamptz, $3::text))
        AND ($4::timestamptz IS NULL OR occurred_at >= $4::timestamptz)
        AND ($5::timestamptz IS NULL OR occurred_at < $5::timestamptz)
        AND ($6::text IS NULL OR action = $6::text)
      ORDER BY occurred_at, id
      LIMIT $7`,
    [
      query.tenantId,
      query.after?.at ?? null,
      query.after?.id ?? "",
      query.since ?? null,
      query.until ?? null,
      query.action ?? null,
      query.limit,
    ],
  );
  return rows;
}
