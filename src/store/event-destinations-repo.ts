import type { SqlClient } from "./database.js";

/** A merchant's endpoint for the vault's events (migrations/007_payment_edge.sql). */
export interface EventDestinationRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly url: string;
  readonly event_types: string[];
  readonly description: string;
  /** The sealed list of signing secrets (destination-secrets.ts), never returned by a route. */
  readonly secrets: Buffer;
  readonly dek_id: string;
  readonly status: "active" | "disabled";
  readonly created_at: Date;
  readonly created_by: string;
  readonly updated_at: Date;
}

const DESTINATION_COLUMNS =
  "id, tenant_id, url, event_types, description, secrets, dek_id, status, created_at, created_by, updated_at";

export async function insertDestination(db: SqlClient, row: EventDestinationRow): Promise<void> {
  await db.query(
    `INSERT INTO event_destinations (${DESTINATION_COLUMNS})
     VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, $9, $10, $11)`,
    [
      row.id,
      row.tenant_id,
      row.url,
      row.event_types,
      row.description,
      row.secrets,
      row.dek_id,
      row.status,
      row.created_at,
      row.created_by,
      row.updated_at,
    ],
  );
}

/** The destination, or undefined; with `tenantId`, only that tenant's (another's is "not found"). */
export async function findDestination(
  db: SqlClient,
  tenantId: string | undefined,
  id: string,
): Promise<EventDestinationRow | undefined> {
  const { rows } = await db.query<EventDestinationRow>(
    `SELECT ${DESTINATION_COLUMNS} FROM event_destinations
      WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return rows[0];
}

export async function listDestinations(
  db: SqlClient,
  tenantId: string,
): Promise<EventDestinationRow[]> {
  const { rows } = await db.query<EventDestinationRow>(
    `SELECT ${DESTINATION_COLUMNS} FROM event_destinations WHERE tenant_id = $1 ORDER BY created_at, id`,
    [tenantId],
  );
  return rows;
}

export async function findDestinationsByIds(
  db: SqlClient,
  ids: readonly string[],
): Promise<EventDestinationRow[]> {
  const { rows } = await db.query<EventDestinationRow>(
    `SELECT ${DESTINATION_COLUMNS} FROM event_destinations WHERE id = ANY($1::text[])`,
    [ids],
  );
  return rows;
}

/**
 * Replaces the sealed secrets if the row still holds `previous` (compare-and-set: of two
 * concurrent rotations one wins, the other reads again). False when it changed or is gone.
 */
export async function replaceDestinationSecrets(
  db: SqlClient,
  key: { readonly tenantId: string; readonly id: string },
  previous: Buffer,
  next: { readonly secrets: Buffer; readonly dekId: string; readonly at: Date },
): Promise<boolean> {
  const result = await db.query(
    `UPDATE event_destinations SET secrets = $4, dek_id = $5, updated_at = $6
      WHERE id = $1 AND tenant_id = $2 AND secrets = $3`,
    [key.id, key.tenantId, previous, next.secrets, next.dekId, next.at],
  );
  return result.rowCount === 1;
}

/** Deletes the destination and its deliveries; undefined when it is not the tenant's. */
export async function deleteDestination(
  db: SqlClient,
  tenantId: string,
  id: string,
): Promise<{ deliveries: number } | undefined> {
  const deliveries = await db.query(
    "DELETE FROM event_deliveries WHERE destination_id = $1 AND tenant_id = $2",
    [id, tenantId],
  );
  const destination = await db.query(
    "DELETE FROM event_destinations WHERE id = $1 AND tenant_id = $2",
    [id, tenantId],
  );
  return destination.rowCount === 1 ? { deliveries: deliveries.rowCount } : undefined;
}

/** Active destinations of these tenants with what they subscribe to (the publisher's fan-out). */
export async function findSubscribedDestinations(
  db: SqlClient,
  tenantIds: readonly string[],
): Promise<{ id: string; tenant_id: string; event_types: string[] }[]> {
  const { rows } = await db.query<{ id: string; tenant_id: string; event_types: string[] }>(
    `SELECT id, tenant_id, event_types FROM event_destinations
      WHERE tenant_id = ANY($1::text[]) AND status = 'active'`,
    [tenantIds],
  );
  return rows;
}

/** The dispatcher's cheap check: does any tenant have an active destination at all? */
export async function anyActiveDestination(db: SqlClient): Promise<boolean> {
  const { rows } = await db.query<{ any: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM event_destinations WHERE status = 'active') AS any",
  );
  return rows[0]?.any === true;
}

export interface NewDelivery {
  readonly id: string;
  readonly tenant_id: string;
  readonly destination_id: string;
  readonly event_id: string;
  readonly event_type: string;
  /** JSON text of `{type, timestamp, data}`: metadata only. */
  readonly payload: string;
  readonly created_at: Date;
}

/** Queues deliveries (state queued, due now); one per (destination, event): repeats do nothing. */
export async function insertDeliveries(
  db: SqlClient,
  deliveries: readonly NewDelivery[],
): Promise<number> {
  if (deliveries.length === 0) return 0;
  const column = <K extends keyof NewDelivery>(key: K) => deliveries.map((d) => d[key]);
  const result = await db.query(
    `INSERT INTO event_deliveries
       (id, tenant_id, destination_id, event_id, event_type, payload, created_at, state, attempts, run_at)
     SELECT u.id, u.tenant_id, u.destination_id, u.event_id, u.event_type, u.payload::jsonb,
            u.created_at, 'queued', 0, u.created_at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                   $7::timestamptz[])
         AS u(id, tenant_id, destination_id, event_id, event_type, payload, created_at)
     ON CONFLICT (destination_id, event_id) DO NOTHING`,
    [
      column("id"),
      column("tenant_id"),
      column("destination_id"),
      column("event_id"),
      column("event_type"),
      column("payload"),
      column("created_at"),
    ],
  );
  return result.rowCount;
}

export type DeliveryState = "queued" | "processing" | "done" | "dead";

/** A delivery as listed: never its payload (metadata, but not ours to echo) nor any secret. */
export interface DeliveryRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly destination_id: string;
  readonly event_id: string;
  readonly event_type: string;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly last_status: number | null;
  readonly last_error: string | null;
  readonly created_at: Date;
  readonly run_at: Date;
  readonly finished_at: Date | null;
}

const DELIVERY_COLUMNS =
  "id, tenant_id, destination_id, event_id, event_type, state, attempts, last_status, last_error, created_at, run_at, finished_at";

export async function findDelivery(
  db: SqlClient,
  tenantId: string | undefined,
  id: string,
): Promise<DeliveryRow | undefined> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM event_deliveries
      WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return rows[0];
}

export interface DeliveryQuery {
  readonly tenantId: string | undefined;
  readonly state: DeliveryState | undefined;
  readonly destinationId: string | undefined;
  /** Deliveries strictly after this (created_at, id): the previous page's last one. */
  readonly after: { readonly at: Date; readonly id: string } | undefined;
  readonly limit: number;
}

/** Deliveries oldest first, a page at a time (event_deliveries_tenant index). */
export async function listDeliveries(db: SqlClient, query: DeliveryQuery): Promise<DeliveryRow[]> {
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM event_deliveries
      WHERE ($1::text IS NULL OR tenant_id = $1)
        AND ($2::text IS NULL OR state = $2)
        AND ($3::text IS NULL OR destination_id = $3)
        AND ($4::timestamptz IS NULL OR (created_at, id) > ($4::timestamptz, $5::text))
      ORDER BY created_at, id
      LIMIT $6`,
    [
      query.tenantId ?? null,
      query.state ?? null,
      query.destinationId ?? null,
      query.after?.at ?? null,
      query.after?.id ?? "",
      query.limit,
    ],
  );
  return rows;
}

/** A claimed delivery, as the worker sends it. */
export interface ClaimedDelivery {
  readonly id: string;
  readonly tenant_id: string;
  readonly destination_id: string;
  readonly event_id: string;
  readonly payload: unknown;
  readonly attempts: number;
  /** The claim's lease: with `attempts`, what identifies this claim (queue-table.ts). */
  readonly locked_until: Date | null;
}

export const CLAIMED_DELIVERY_COLUMNS =
  "id, tenant_id, destination_id, event_id, payload, attempts, locked_until";

/** Where a dispatcher stands in the audit trail: after this (txid, id). */
export interface DispatchPosition {
  readonly txid: string;
  readonly id: string;
}

/** Creates the named cursor at the start of the trail if it does not exist yet. */
export async function ensureDispatchCursor(db: SqlClient, name: string): Promise<void> {
  await db.query(
    `INSERT INTO event_dispatch_cursor (name, last_txid, last_id) VALUES ($1, '0'::xid8, '')
     ON CONFLICT (name) DO NOTHING`,
    [name],
  );
}

export async function readDispatchCursor(
  db: SqlClient,
  name: string,
): Promise<DispatchPosition | undefined> {
  const { rows } = await db.query<DispatchPosition>(
    "SELECT last_txid::text AS txid, last_id AS id FROM event_dispatch_cursor WHERE name = $1",
    [name],
  );
  return rows[0];
}

/**
 * Locks the cursor row for this transaction; undefined when another dispatcher holds it (SKIP
 * LOCKED: that pass does the work, this one returns at once) or it does not exist.
 */
export async function lockDispatchCursor(
  db: SqlClient,
  name: string,
): Promise<DispatchPosition | undefined> {
  const { rows } = await db.query<DispatchPosition>(
    `SELECT last_txid::text AS txid, last_id AS id FROM event_dispatch_cursor
      WHERE name = $1 FOR UPDATE SKIP LOCKED`,
    [name],
  );
  return rows[0];
}

export async function advanceDispatchCursor(
  db: SqlClient,
  name: string,
  to: DispatchPosition,
): Promise<void> {
  await db.query(
    "UPDATE event_dispatch_cursor SET last_txid = $2::xid8, last_id = $3 WHERE name = $1",
    [name, to.txid, to.id],
  );
}

/** A successful token.create / token.delete of a tenant, as the dispatcher reads it. */
export interface TokenAuditEvent {
  readonly id: string;
  readonly txid: string;
  readonly tenant_id: string;
  readonly action: "token.create" | "token.delete";
  readonly object_id: string;
  readonly occurred_at: Date;
}

/**
 * Token events after `from` in (txid, id) order, only from transactions below `horizon` (all
 * finished: none can still add an event there), at most `limit` (audit_events_txid index).
 */
export async function findTokenEventsAfter(
  db: SqlClient,
  from: DispatchPosition,
  horizon: string,
  limit: number,
): Promise<TokenAuditEvent[]> {
  const { rows } = await db.query<TokenAuditEvent>(
    `SELECT id, txid::text AS txid, tenant_id, action, object_id, occurred_at FROM audit_events
      WHERE (txid, id) > ($1::xid8, $2::text) AND txid < $3::xid8
        AND action IN ('token.create', 'token.delete') AND outcome = 'success'
        AND tenant_id IS NOT NULL AND object_id IS NOT NULL
      ORDER BY txid, id
      LIMIT $4`,
    [from.txid, from.id, horizon, limit],
  );
  return rows;
}
