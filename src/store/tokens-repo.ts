import type { AuditEventRow } from "../audit/audit-event.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { SqlClient } from "./database.js";

export interface TokenRow {
  readonly tenant_id: string;
  readonly id: string;
  readonly format: "random" | "card_alias";
  readonly brand: string;
  readonly bin: string;
  readonly last4: string;
  readonly exp_month: number;
  readonly exp_year: number;
  readonly fingerprint: string;
  readonly dedupe_key: string | null;
  readonly dek_id: string;
  readonly ciphertext: Buffer;
  readonly metadata: Record<string, string>;
  readonly created_at: Date;
  readonly expires_at: Date | null;
}

const TOKEN_COLUMNS =
  "tenant_id, id, format, brand, bin, last4, exp_month, exp_year, fingerprint, dedupe_key, dek_id, ciphertext, metadata, created_at, expires_at";

function tokenParams(row: TokenRow): unknown[] {
  return [
    row.tenant_id,
    row.id,
    row.format,
    row.brand,
    row.bin,
    row.last4,
    row.exp_month,
    row.exp_year,
    row.fingerprint,
    row.dedupe_key,
    row.dek_id,
    row.ciphertext,
    JSON.stringify(row.metadata),
    row.created_at,
    row.expires_at,
  ];
}

// Audit placeholders after the 15 token parameters: $16..$25.
const AUDIT_VALUES = "$16, $17, $18, $19, $20, $21, $22, $23::jsonb, $24, $25";

/**
 * Inserts a token and its audit event in one statement (one round trip, atomic: PostgreSQL runs
 * a statement with data-modifying CTEs as a unit). Returns false when a unique constraint was
 * hit: the dedupe key (same card already tokenized) or, for card aliases, the token id.
 */
export async function insertTokenAudited(
  db: SqlClient,
  row: TokenRow,
  audit: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH ins AS (
       INSERT INTO tokens (${TOKEN_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15)
       ON CONFLICT DO NOTHING RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) SELECT ${AUDIT_VALUES} FROM ins RETURNING id`,
    [...tokenParams(row), ...auditParams(audit)],
  );
  return rows.length === 1;
}

export async function findTokenByDedupeKey(
  db: SqlClient,
  tenantId: string,
  dedupeKey: string,
): Promise<TokenRow | undefined> {
  const { rows } = await db.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND dedupe_key = $2`,
    [tenantId, dedupeKey],
  );
  return rows[0];
}

export async function findTokensByDedupeKeys(
  db: SqlClient,
  tenantId: string,
  dedupeKeys: readonly string[],
): Promise<TokenRow[]> {
  const { rows } = await db.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND dedupe_key = ANY($2::text[])`,
    [tenantId, dedupeKeys],
  );
  return rows;
}

/**
 * Reads a token and records the access in the same statement: if the audit insert fails, the
 * statement fails and no row (so no ciphertext) comes back. An absent token records nothing
 * here and returns undefined.
 */
export async function findTokenAudited(
  db: SqlClient,
  tenantId: string,
  id: string,
  audit: AuditEventRow,
): Promise<TokenRow | undefined> {
  const { rows } = await db.query<TokenRow>(
    `WITH t AS (SELECT ${TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND id = $2),
          a AS (INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
                SELECT $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12 FROM t RETURNING id)
     SELECT t.* FROM t, a`,
    [tenantId, id, ...auditParams(audit)],
  );
  return rows[0];
}

/** Deletes a token and records the deletion atomically; false when there was no such token. */
export async function deleteTokenAudited(
  db: SqlClient,
  tenantId: string,
  id: string,
  audit: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH d AS (DELETE FROM tokens WHERE tenant_id = $1 AND id = $2 RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12 FROM d RETURNING id`,
    [tenantId, id, ...auditParams(audit)],
  );
  return rows.length === 1;
}

/**
 * Inserts many tokens and their audit events in one statement; returns the ids that were
 * inserted (the others hit a unique constraint, see insertTokenAudited).
 */
export async function insertTokensAudited(
  db: SqlClient,
  rows: readonly TokenRow[],
  audits: readonly AuditEventRow[],
): Promise<Set<string>> {
  const col = <K extends keyof TokenRow>(k: K) => rows.map((r) => r[k]);
  const acol = <K extends keyof AuditEventRow>(k: K) => audits.map((a) => a[k]);
  const result = await db.query<{ object_id: string }>(
    `WITH ins AS (
       INSERT INTO tokens (${TOKEN_COLUMNS})
       SELECT t.tenant_id, t.id, t.format, t.brand, t.bin, t.last4, t.exp_month, t.exp_year, t.fingerprint,
              t.dedupe_key, t.dek_id, decode(t.ciphertext, 'base64'), t.metadata::jsonb, t.created_at, t.expires_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[],
                     $8::smallint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $14::timestamptz[], $15::timestamptz[])
           AS t(tenant_id, id, format, brand, bin, last4, exp_month, exp_year, fingerprint, dedupe_key, dek_id,
                ciphertext, metadata, created_at, expires_at)
       ON CONFLICT DO NOTHING RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT e.id, e.occurred_at, e.tenant_id, e.actor, e.action, e.object_id, e.outcome, e.details::jsonb,
            e.mac_key_id, decode(e.row_mac, 'base64')
       FROM unnest($16::text[], $17::timestamptz[], $18::text[], $19::text[], $20::text[], $21::text[],
                   $22::text[], $23::text[], $24::text[], $25::text[])
         AS e(id, occurred_at, tenant_id, actor, action, object_id, outcome, details, mac_key_id, row_mac)
       JOIN ins ON ins.id = e.object_id
     RETURNING object_id`,
    [
      col("tenant_id"),
      col("id"),
      col("format"),
      col("brand"),
      col("bin"),
      col("last4"),
      col("exp_month"),
      col("exp_year"),
      col("fingerprint"),
      col("dedupe_key"),
      col("dek_id"),
      rows.map((r) => r.ciphertext.toString("base64")),
      rows.map((r) => JSON.stringify(r.metadata)),
      rows.map((r) => r.created_at.toISOString()),
      rows.map((r) => r.expires_at?.toISOString() ?? null),
      acol("id"),
      audits.map((a) => a.occurred_at.toISOString()),
      acol("tenant_id"),
      acol("actor"),
      acol("action"),
      acol("object_id"),
      acol("outcome"),
      audits.map((a) => JSON.stringify(a.details)),
      acol("mac_key_id"),
      audits.map((a) => a.row_mac.toString("base64")),
    ],
  );
  return new Set(result.rows.map((r) => r.object_id));
}
