import type { AuditEventRow } from "../audit/audit-event.js";
import type { Purpose } from "../crypto/envelope.js";
import type { Environment } from "../keys/key-manager.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { SqlClient } from "./database.js";

/** A key record (PCI DSS 3.6.1.1, 3.7.4, 3.7.5). `wrapped` is NULL once the key is destroyed. */
export interface DataKeyRow {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  readonly environment: Environment;
  readonly epoch: string;
  readonly version: number;
  readonly algorithm: string;
  readonly wrapped: Buffer | null;
  readonly kek_id: string;
  readonly kek_version: number;
  readonly created_at: Date;
  readonly encrypt_until: Date | null;
  readonly max_uses: number | null;
  readonly uses_reserved: number;
  readonly retired_at: Date | null;
  readonly destroyed_at: Date | null;
}

export interface KeySlotRef {
  readonly owner: string;
  readonly purpose: Purpose;
  readonly environment: Environment;
  readonly epoch: string;
}

const INSERT_COLUMNS =
  "id, owner, purpose, environment, epoch, version, algorithm, wrapped, kek_id, kek_version, created_at, encrypt_until, max_uses, uses_reserved, retired_at, destroyed_at";
// bigint columns come back from pg as strings: cast the counters to float8 (exact below 2^53).
const SELECT_COLUMNS =
  "id, owner, purpose, environment, epoch, version, algorithm, wrapped, kek_id, kek_version, created_at, encrypt_until, max_uses::float8 AS max_uses, uses_reserved::float8 AS uses_reserved, retired_at, destroyed_at";

export async function findLatestDataKey(
  db: SqlClient,
  slot: KeySlotRef,
): Promise<DataKeyRow | undefined> {
  const { rows } = await db.query<DataKeyRow>(
    `SELECT ${SELECT_COLUMNS} FROM data_keys
     WHERE owner = $1 AND environment = $2 AND purpose = $3 AND epoch = $4
     ORDER BY version DESC LIMIT 1`,
    [slot.owner, slot.environment, slot.purpose, slot.epoch],
  );
  return rows[0];
}

export async function findDataKey(db: SqlClient, id: string): Promise<DataKeyRow | undefined> {
  const { rows } = await db.query<DataKeyRow>(
    `SELECT ${SELECT_COLUMNS} FROM data_keys WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/** Every key record, for the inventory (PCI DSS 3.6.1.1). */
export async function listDataKeys(db: SqlClient): Promise<DataKeyRow[]> {
  const { rows } = await db.query<DataKeyRow>(
    `SELECT ${SELECT_COLUMNS} FROM data_keys ORDER BY owner, environment, purpose, epoch, version`,
  );
  return rows;
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
       INSERT INTO data_keys (${INSERT_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       ON CONFLICT (owner, environment, purpose, epoch, version) DO NOTHING RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $17, $18, $19, $20, $21, $22, $23, $24::jsonb, $25, $26 FROM ins RETURNING id`,
    [
      row.id,
      row.owner,
      row.purpose,
      row.environment,
      row.epoch,
      row.version,
      row.algorithm,
      row.wrapped,
      row.kek_id,
      row.kek_version,
      row.created_at,
      row.encrypt_until,
      row.max_uses,
      row.uses_reserved,
      row.retired_at,
      row.destroyed_at,
      ...auditParams(event),
    ],
  );
  return rows.length === 1;
}

/**
 * Reserves up to `block` more uses of a live key, and at least `minimum`; returns how many were
 * granted (0 when the key is retired, destroyed, past its time or has fewer than `minimum` left).
 */
export async function reserveDataKeyUses(
  db: SqlClient,
  id: string,
  block: number,
  minimum: number,
  now: Date,
): Promise<number> {
  const { rows } = await db.query<{ granted: number }>(
    `WITH cur AS (
       SELECT id, LEAST($2::bigint, max_uses - uses_reserved) AS granted FROM data_keys
       WHERE id = $1 AND retired_at IS NULL AND destroyed_at IS NULL
         AND max_uses - uses_reserved >= $3::bigint
         AND (encrypt_until IS NULL OR encrypt_until > $4)
       -- Not FOR UPDATE: token writers hold FOR KEY SHARE on the key (tokens-repo LIVE_KEYS),
       -- and reserving uses must not wait for them; only a destruction excludes them.
       FOR NO KEY UPDATE)
     UPDATE data_keys d SET uses_reserved = d.uses_reserved + cur.granted FROM cur
     WHERE d.id = cur.id RETURNING cur.granted::float8 AS granted`,
    [id, block, minimum, now],
  );
  return rows[0]?.granted ?? 0;
}

/** Marks a key retired (decrypt-only) unless it already is. */
export async function retireDataKey(db: SqlClient, id: string, now: Date): Promise<void> {
  await db.query(
    "UPDATE data_keys SET retired_at = $2, encrypt_until = LEAST(COALESCE(encrypt_until, $2), $2) WHERE id = $1 AND retired_at IS NULL",
    [id, now],
  );
}

/**
 * The first statement of a destruction's transaction: takes the key row FOR UPDATE, so token
 * writers (which lock it FOR KEY SHARE, tokens-repo LIVE_KEYS) wait for the destruction to end
 * and writers already holding it are waited for. The caller's next statement (a new READ
 * COMMITTED snapshot) then sees every token written under the key before the lock was granted.
 */
export async function lockDataKeyForDestroy(
  tx: SqlClient,
  id: string,
): Promise<DataKeyRow | undefined> {
  const { rows } = await tx.query<DataKeyRow>(
    `SELECT ${SELECT_COLUMNS} FROM data_keys WHERE id = $1 FOR UPDATE`,
    [id],
  );
  return rows[0];
}

/**
 * Destroys a key: its wrapped material is erased and the row kept as a tombstone, with the audit
 * event in the same statement (PCI DSS 3.7.5). Run in the transaction of
 * lockDataKeyForDestroy. Unless `force`, only a key no token is under any more (card data or
 * fingerprints) is destroyed. Returns false if it was already destroyed or still in use.
 */
export async function destroyDataKeyAudited(
  tx: SqlClient,
  id: string,
  now: Date,
  event: AuditEventRow,
  force: boolean,
): Promise<boolean> {
  const { rows } = await tx.query(
    `WITH d AS (
       UPDATE data_keys k SET wrapped = NULL, destroyed_at = $2, retired_at = COALESCE(retired_at, $2)
       WHERE id = $1 AND destroyed_at IS NULL
         AND ($13::boolean
              OR (NOT EXISTS (SELECT 1 FROM tokens t WHERE t.dek_id = k.id)
                  AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.fingerprint_key_id = k.id)))
       RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12 FROM d RETURNING id`,
    [id, now, ...auditParams(event), force],
  );
  return rows.length === 1;
}

/** The DEKs of an environment not yet wrapped under the given KEK version, after `afterId`. */
export async function findDataKeysToRewrap(
  db: SqlClient,
  environment: Environment,
  kek: { id: string; version: number },
  afterId: string,
  limit: number,
): Promise<DataKeyRow[]> {
  const { rows } = await db.query<DataKeyRow>(
    `SELECT ${SELECT_COLUMNS} FROM data_keys
     WHERE environment = $1 AND destroyed_at IS NULL AND (kek_id <> $2 OR kek_version <> $3) AND id > $4
     ORDER BY id LIMIT $5`,
    [environment, kek.id, kek.version, afterId, limit],
  );
  return rows;
}

/**
 * Replaces DEK wraps after a KEK rotation, each only if the row still holds the wrap that was
 * read (so a concurrent re-wrap or destruction is never overwritten) and never back to an older
 * version of the same KEK (a node that has not yet seen a rotation), with one audit event for
 * the batch in the same statement. Returns how many rows changed.
 */
export async function rewrapDataKeysAudited(
  db: SqlClient,
  updates: readonly {
    id: string;
    oldKekId: string;
    oldKekVersion: number;
    wrapped: Buffer;
    kekId: string;
    kekVersion: number;
  }[],
  event: AuditEventRow,
): Promise<number> {
  if (updates.length === 0) return 0;
  const { rows } = await db.query<{ n: number }>(
    `WITH up AS (
       UPDATE data_keys d SET wrapped = decode(u.wrapped, 'base64'), kek_id = u.kek_id, kek_version = u.kek_version
       FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[])
            AS u(id, old_kek_id, old_version, wrapped, kek_id, kek_version)
       WHERE d.id = u.id AND d.kek_id = u.old_kek_id AND d.kek_version = u.old_version
         AND d.destroyed_at IS NULL AND (u.kek_id <> u.old_kek_id OR u.kek_version > u.old_version)
       RETURNING d.id),
     a AS (
       INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
       SELECT $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16 WHERE EXISTS (SELECT 1 FROM up)
       RETURNING id)
     SELECT (SELECT count(*) FROM up)::int AS n, (SELECT count(*) FROM a)::int AS audited`,
    [
      updates.map((u) => u.id),
      updates.map((u) => u.oldKekId),
      updates.map((u) => u.oldKekVersion),
      updates.map((u) => u.wrapped.toString("base64")),
      updates.map((u) => u.kekId),
      updates.map((u) => u.kekVersion),
      ...auditParams(event),
    ],
  );
  return rows[0]?.n ?? 0;
}
