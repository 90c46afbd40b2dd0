import type { QueueState } from "../queue/queue-table.js";
import type { SqlClient } from "./database.js";

/** A received event: metadata only, never the body (issue 6; PCI DSS 3.2.1: no CHD kept). */
export interface WebhookEventRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly endpoint_id: string;
  readonly provider: string;
  readonly provider_event_id: string;
  readonly event_type: string;
  readonly metadata: Readonly<Record<string, string | number | boolean | null>>;
  readonly received_at: Date;
  readonly state: QueueState;
  readonly attempts: number;
  readonly run_at: Date;
  readonly locked_until: Date | null;
  readonly last_error: string | null;
  readonly finished_at: Date | null;
}

export const WEBHOOK_EVENT_COLUMNS =
  "id, tenant_id, endpoint_id, provider, provider_event_id, event_type, metadata, received_at, state, attempts, run_at, locked_until, last_error, finished_at";

export interface NewWebhookEvent {
  readonly id: string;
  readonly tenantId: string;
  readonly endpointId: string;
  readonly provider: string;
  readonly providerEventId: string;
  readonly eventType: string;
  readonly metadata: Readonly<Record<string, string | number | boolean | null>>;
  readonly receivedAt: Date;
}

/**
 * Queues many received events in one statement (the intake's group commit). A provider event id
 * already received on the endpoint is skipped by the unique key, not queued twice; the result
 * holds the `endpointId \0 providerEventId` of each row this statement inserted.
 */
export async function insertWebhookEvents(
  db: SqlClient,
  events: readonly NewWebhookEvent[],
): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const values: string[] = [];
  const params: unknown[] = [];
  for (const event of events) {
    const n = params.length;
    values.push(
      `($${n + 1}::text, $${n + 2}::text, $${n + 3}::text, $${n + 4}::text, $${n + 5}::text, $${n + 6}::text, $${n + 7}::jsonb, $${n + 8}::timestamptz)`,
    );
    params.push(
      event.id,
      event.tenantId,
      event.endpointId,
      event.provider,
      event.providerEventId,
      event.eventType,
      JSON.stringify(event.metadata),
      event.receivedAt,
    );
  }
  // Joined with the endpoints: an event whose endpoint was deleted since the intake read it is
  // skipped, not a foreign-key error that would fail every other event of the batch.
  const result = await db.query<{ endpoint_id: string; provider_event_id: string }>(
    `INSERT INTO webhook_events
       (id, tenant_id, endpoint_id, provider, provider_event_id, event_type, metadata, received_at, state, run_at)
     SELECT v.id, v.tenant_id, v.endpoint_id, v.provider, v.provider_event_id, v.event_type,
            v.metadata, v.received_at, 'queued', v.received_at
       FROM (VALUES ${values.join(", ")})
         AS v (id, tenant_id, endpoint_id, provider, provider_event_id, event_type, metadata, received_at)
       JOIN webhook_endpoints e ON e.id = v.endpoint_id AND e.tenant_id = v.tenant_id
     ON CONFLICT (endpoint_id, provider_event_id) DO NOTHING
     RETURNING endpoint_id, provider_event_id`,
    params,
  );
  return new Set(result.rows.map((row) => `${row.endpoint_id}\u0000${row.provider_event_id}`));
}

/** Which of these (endpoint, provider event id) pairs were received already. */
export async function findReceivedKeys(
  db: SqlClient,
  events: readonly NewWebhookEvent[],
): Promise<Set<string>> {
  const result = await db.query<{ endpoint_id: string; provider_event_id: string }>(
    `SELECT endpoint_id, provider_event_id FROM webhook_events
      WHERE (endpoint_id, provider_event_id) IN (
        SELECT * FROM unnest($1::text[], $2::text[]))`,
    [events.map((e) => e.endpointId), events.map((e) => e.providerEventId)],
  );
  return new Set(result.rows.map((row) => `${row.endpoint_id}\u0000${row.provider_event_id}`));
}

export async function findWebhookEvent(
  db: SqlClient,
  id: string,
  tenantId: string | undefined,
): Promise<WebhookEventRow | undefined> {
  const result = await db.query<WebhookEventRow>(
    `SELECT ${WEBHOOK_EVENT_COLUMNS} FROM webhook_events
      WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return result.rows[0];
}

export interface WebhookEventQuery {
  /** Undefined: every tenant (the CLI). */
  readonly tenantId: string | undefined;
  readonly state?: QueueState;
  readonly endpointId?: string;
  /** Keyset paging: events after this id (ids sort by time of receipt within a page). */
  readonly after?: { readonly receivedAt: Date; readonly id: string };
  readonly limit: number;
}

/** Events newest last, after the cursor; a page of `limit`. */
export async function listWebhookEvents(
  db: SqlClient,
  query: WebhookEventQuery,
): Promise<WebhookEventRow[]> {
  const result = await db.query<WebhookEventRow>(
    `SELECT ${WEBHOOK_EVENT_COLUMNS} FROM webhook_events
      WHERE ($1::text IS NULL OR tenant_id = $1)
        AND ($2::text IS NULL OR state = $2)
        AND ($3::text IS NULL OR endpoint_id = $3)
        AND ($4::timestamptz IS NULL OR (received_at, id) > ($4, $5))
      ORDER BY received_at, id
      LIMIT $6`,
    [
      query.tenantId ?? null,
      query.state ?? null,
      query.endpointId ?? null,
      query.after?.receivedAt ?? null,
      query.after?.id ?? "",
      query.limit,
    ],
  );
  return result.rows;
}
