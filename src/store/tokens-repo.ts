import type { AuditEventRow } from "../audit/audit-event.js";
import type { Environment } from "../keys/key-manager.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { SqlClient } from "./database.js";

export interface TokenRow {
  readonly tenant_id: string;
  readonly environment: Environment;
  readonly id: string;
  readonly format: "random" | "card_alias";
  readonly brand: string;
  readonly bin: string;
  readonly last4: string;
  readonly exp_month: number;
  readonly exp_year: number;
  readonly fingerprint: string;
  readonly fingerprint_key_id: string;
  readonly dedupe_key: string | null;
  readonly dek_id: string;
  readonly ciphertext: Buffer;
  readonly metadata: Record<string, string>;
  readonly created_at: Date;
  readonly expires_at: Date | null;
  /** Kept until deleted (a stored credential); otherwise expires_at is its retention end. */
  readonly persistent: boolean;
}

/**
 * Whose tokens a read sees: one tenant's, in one environment (a `pv_test_` key never sees live
 * tokens), and only those still within retention at `now` (an expired token awaiting the purge
 * is already gone to callers).
 */
export interface TokenScope {
  readonly tenantId: string;
  readonly environment: Environment;
  readonly now: Date;
}

const TOKEN_COLUMNS =
  "tenant_id, id, format, brand, bin, last4, exp_month, exp_year, fingerprint, dedupe_key, dek_id, ciphertext, metadata, created_at, expires_at, environment, persistent, fingerprint_key_id";

/**
 * Card data is only ever sealed under a key that still exists (PCI DSS 3.7.5): a DEK destroyed by
 * another node or the CLI (a `dek.destroy` ceremony, or retention) refuses the write even while
 * this node still caches it. The check locks the key row in the writing statement itself, so it
 * cannot be overtaken by a destruction:
 * - a destruction takes the row FOR UPDATE first (destroyDataKey… in data-keys-repo.ts): the
 *   writer waits for it to end, then re-reads the row (READ COMMITTED re-check) and, the key
 *   being destroyed, writes nothing;
 * - a writer that locked first makes the destruction wait for its commit, and the destruction's
 *   next statement then sees the new token under the key.
 * FOR KEY SHARE is the lock the tokens → data_keys foreign key takes anyway, so this adds no new
 * lock to the hot path, and it does not conflict with the use-counter and retirement updates
 * (FOR NO KEY UPDATE); only the destruction's FOR UPDATE excludes it. `$IDS` is a text[].
 */
const LIVE_KEYS =
  "live AS (SELECT k.id FROM data_keys k WHERE k.id = ANY($IDS) AND k.destroyed_at IS NULL FOR KEY SHARE)";

/** The scope's conditions on `tokens`, with its three parameters starting at $n. */
function inScope(n: number): string {
  return `tenant_id = $${n} AND environment = $${n + 1} AND (expires_at IS NULL OR expires_at > $${n + 2})`;
}

function scopeParams(scope: TokenScope): unknown[] {
  return [scope.tenantId, scope.environment, scope.now];
}

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
    row.environment,
    row.persistent,
    row.fingerprint_key_id,
  ];
}

// Audit placeholders after the 18 token parameters: $19..$28.
const AUDIT_VALUES = "$19, $20, $21, $22, $23, $24, $25, $26::jsonb, $27, $28";

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
    `WITH ${LIVE_KEYS.replace("$IDS", "ARRAY[$11::text]")},
     ins AS (
       INSERT INTO tokens (${TOKEN_COLUMNS})
       SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::smallint, $8::smallint,
              $9::text, $10::text, $11::text, $12::bytea, $13::jsonb, $14::timestamptz,
              $15::timestamptz, $16::text, $17::boolean, $18::text
         FROM live
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
  scope: TokenScope,
  id: string,
  audit: AuditEventRow,
): Promise<TokenRow | undefined> {
  const { rows } = await db.query<TokenRow>(
    `WITH t AS (SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = $4 AND ${inScope(1)}),
          a AS (INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
                SELECT $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14 FROM t RETURNING id)
     SELECT t.* FROM t, a`,
    [...scopeParams(scope), id, ...auditParams(audit)],
  );
  return rows[0];
}

/** Deletes a token and records the deletion atomically; false when there was no such token. */
export async function deleteTokenAudited(
  db: SqlClient,
  scope: TokenScope,
  id: string,
  audit: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH d AS (DELETE FROM tokens WHERE id = $4 AND ${inScope(1)} RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14 FROM d RETURNING id`,
    [...scopeParams(scope), id, ...auditParams(audit)],
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
    `WITH ${LIVE_KEYS.replace("$IDS", "$11::text[]")},
     ins AS (
       INSERT INTO tokens (${TOKEN_COLUMNS})
       SELECT t.tenant_id, t.id, t.format, t.brand, t.bin, t.last4, t.exp_month, t.exp_year, t.fingerprint,
              t.dedupe_key, t.dek_id, decode(t.ciphertext, 'base64'), t.metadata::jsonb, t.created_at, t.expires_at,
              t.environment, t.persistent, t.fingerprint_key_id
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[],
                     $8::smallint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $14::timestamptz[], $15::timestamptz[], $26::text[], $27::boolean[], $28::text[])
           AS t(tenant_id, id, format, brand, bin, last4, exp_month, exp_year, fingerprint, dedupe_key, dek_id,
                ciphertext, metadata, created_at, expires_at, environment, persistent, fingerprint_key_id)
        WHERE t.dek_id IN (SELECT id FROM live)
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
      col("environment"),
      col("persistent"),
      col("fingerprint_key_id"),
    ],
  );
  return new Set(result.rows.map((r) => r.object_id));
}

/** Deletes one token that is past its retention at `now`, with its purge event, atomically. */
export async function deleteExpiredToken(
  db: SqlClient,
  tenantId: string,
  id: string,
  now: Date,
  audit: AuditEventRow,
): Promise<void> {
  await db.query(
    `WITH d AS (DELETE FROM tokens WHERE tenant_id = $1 AND id = $2 AND expires_at <= $3 RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13 FROM d`,
    [tenantId, id, now, ...auditParams(audit)],
  );
}

/**
 * Extends a token's retention when the same card is tokenized again for longer (or as a stored
 * credential): the new retention end, and the card re-encrypted under the key of the new expiry
 * epoch, with the `token.deduplicate` event, in one statement. Compare-and-set: only if the row
 * is still under `oldDekId` and still ends sooner than asked, and only if the new key still
 * exists (locked as LIVE_KEYS says). Returns the updated row, or undefined when another request
 * changed it first or the new key was destroyed.
 */
export async function extendTokenRetention(
  db: SqlClient,
  change: {
    readonly tenantId: string;
    readonly id: string;
    readonly oldDekId: string;
    readonly expiresAt: Date | null;
    readonly dekId: string;
    readonly ciphertext: Buffer;
  },
  audit: AuditEventRow,
): Promise<TokenRow | undefined> {
  const { rows } = await db.query<TokenRow>(
    `WITH ${LIVE_KEYS.replace("$IDS", "ARRAY[$4::text]")},
     up AS (
       UPDATE tokens SET expires_at = $3::timestamptz, persistent = ($3::timestamptz IS NULL), dek_id = $4, ciphertext = $5
        WHERE tenant_id = $1 AND id = $2 AND dek_id = $6 AND NOT persistent
          AND ($3::timestamptz IS NULL OR expires_at < $3::timestamptz)
          AND $4::text IN (SELECT id FROM live)
        RETURNING ${TOKEN_COLUMNS}),
     a AS (INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
           SELECT $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16 FROM up RETURNING id)
     SELECT up.* FROM up, a`,
    [
      change.tenantId,
      change.id,
      change.expiresAt,
      change.dekId,
      change.ciphertext,
      change.oldDekId,
      ...auditParams(audit),
    ],
  );
  return rows[0];
}

/**
 * How many tokens a key still protects: card data under it (`dek_id`) or fingerprints and dedupe
 * keys made with it (`fingerprint_key_id`), expired or not. Run after the key row is locked FOR
 * UPDATE, in a statement of its own, so its snapshot includes every writer that got there first.
 */
export async function countTokensUnderKey(db: SqlClient, keyId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM tokens WHERE dek_id = $1)
           + (SELECT count(*) FROM tokens WHERE fingerprint_key_id = $1))::float8 AS n`,
    [keyId],
  );
  return rows[0]?.n ?? 0;
}
