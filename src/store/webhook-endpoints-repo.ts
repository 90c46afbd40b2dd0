import type { AuditEventRow } from "../audit/audit-event.js";
import { insertAuditEvent } from "./audit-repo.js";
import type { Database, SqlClient } from "./database.js";

export type WebhookProvider = "stripe" | "standard" | "paypal" | "hmac";

export const WEBHOOK_PROVIDERS: readonly WebhookProvider[] = [
  "stripe",
  "standard",
  "paypal",
  "hmac",
];

export interface WebhookEndpointRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly provider: WebhookProvider;
  readonly description: string;
  /** What is not secret: the HMAC scheme, PayPal's webhook id and certificates, field names. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The sealed JSON list of secrets (null for PayPal, which signs with a certificate). */
  readonly secrets: Buffer | null;
  readonly dek_id: string | null;
  readonly status: "active" | "disabled";
  readonly created_at: Date;
  readonly created_by: string;
  readonly updated_at: Date;
}

const COLUMNS =
  "id, tenant_id, provider, description, settings, secrets, dek_id, status, created_at, created_by, updated_at";

/** Inserts the endpoint and its audit event in one transaction (PCI DSS 10.2.1.5: config change). */
export async function insertWebhookEndpoint(
  db: Database,
  row: WebhookEndpointRow,
  event: AuditEventRow,
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO webhook_endpoints (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $9)`,
      [
        row.id,
        row.tenant_id,
        row.provider,
        row.description,
        JSON.stringify(row.settings),
        row.secrets,
        row.dek_id,
        row.status,
        row.created_at,
        row.created_by,
      ],
    );
    await insertAuditEvent(tx, event);
  });
}

/** The endpoint, or undefined; with `tenantId`, only that tenant's (another's is "not found"). */
export async function findWebhookEndpoint(
  db: SqlClient,
  id: string,
  tenantId?: string,
): Promise<WebhookEndpointRow | undefined> {
  const result = await db.query<WebhookEndpointRow>(
    `SELECT ${COLUMNS} FROM webhook_endpoints WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return result.rows[0];
}

export async function listWebhookEndpoints(
  db: SqlClient,
  tenantId: string,
): Promise<WebhookEndpointRow[]> {
  const result = await db.query<WebhookEndpointRow>(
    `SELECT ${COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id`,
    [tenantId],
  );
  return result.rows;
}

/**
 * Replaces the sealed secrets when the row still holds `previous` (a compare-and-set: of two
 * rotations at once one wins, the other is told to retry, and no secret is silently lost),
 * with the audit event in the same transaction.
 */
export async function replaceWebhookSecrets(
  db: Database,
  row: { id: string; tenantId: string; previous: Buffer; secrets: Buffer; dekId: string },
  now: Date,
  event: AuditEventRow,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const result = await tx.query(
      `UPDATE webhook_endpoints SET secrets = $3, dek_id = $4, updated_at = $5
        WHERE id = $1 AND tenant_id = $2 AND secrets = $6`,
      [row.id, row.tenantId, row.secrets, row.dekId, now, row.previous],
    );
    if (result.rowCount !== 1) return false;
    await insertAuditEvent(tx, event);
    return true;
  });
}

/** Deletes the endpoint (its events go with it) with its audit event, in one transaction. */
export async function deleteWebhookEndpoint(
  db: Database,
  id: string,
  tenantId: string,
  event: AuditEventRow,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const result = await tx.query(
      "DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2",
      [id, tenantId],
    );
    if (result.rowCount !== 1) return false;
    await insertAuditEvent(tx, event);
    return true;
  });
}
