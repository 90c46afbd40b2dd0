import { createHash } from "node:crypto";
import type { AuditEventRow } from "../audit/audit-event.js";
import type { Environment } from "../keys/key-manager.js";
import { AUDIT_INSERT_COLUMNS, auditParams } from "./audit-repo.js";
import type { Database, SqlClient } from "./database.js";

/**
 * SQL of the key lifecycle: re-encryption and re-fingerprinting jobs (PCI DSS 3.6.4, 3.7.4),
 * retention purges and crypto-shredding (3.2.1, 3.7.5), and dual-control ceremonies (3.6.1.2).
 * Every write carries its audit event in the same statement or transaction.
 */

/** A token whose card data is under a retired (not destroyed) key of the job's purpose. */
export interface StaleTokenRow {
  readonly tenant_id: string;
  readonly id: string;
  readonly environment: Environment;
  readonly format: "random" | "card_alias";
  readonly dek_id: string;
  readonly ciphertext: Buffer;
  readonly fingerprint_key_id: string;
  readonly has_dedupe: boolean;
  /** The epoch of the token's current PAN key: its new key is the newest of that epoch. */
  readonly epoch: string;
}

/** Which column names the key a job moves tokens off. */
export type JobPurpose = "pan" | "fingerprint";

const KEY_COLUMN: Record<JobPurpose, string> = { pan: "dek_id", fingerprint: "fingerprint_key_id" };

export async function findStaleTokens(
  db: SqlClient,
  purpose: JobPurpose,
  tenantId: string | null,
  limit: number,
  after: { tenantId: string; id: string },
): Promise<StaleTokenRow[]> {
  const column = KEY_COLUMN[purpose];
  const { rows } = await db.query<StaleTokenRow>(
    `SELECT t.tenant_id, t.id, t.environment, t.format, t.dek_id, t.ciphertext, t.fingerprint_key_id,
            t.dedupe_key IS NOT NULL AS has_dedupe, p.epoch
       FROM tokens t
       JOIN data_keys k ON k.id = t.${column}
       JOIN data_keys p ON p.id = t.dek_id
      WHERE k.retired_at IS NOT NULL AND k.destroyed_at IS NULL
        AND ($1::text IS NULL OR t.tenant_id = $1)
        AND (t.tenant_id, t.id) > ($3::text, $4::text)
      ORDER BY t.tenant_id, t.id
      LIMIT $2`,
    [tenantId, limit, after.tenantId, after.id],
  );
  return rows;
}

export async function countStaleTokens(
  db: SqlClient,
  purpose: JobPurpose,
  tenantId: string | null,
): Promise<number> {
  const column = KEY_COLUMN[purpose];
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::float8 AS n FROM tokens t JOIN data_keys k ON k.id = t.${column}
      WHERE k.retired_at IS NOT NULL AND k.destroyed_at IS NULL
        AND ($1::text IS NULL OR t.tenant_id = $1)`,
    [tenantId],
  );
  return rows[0]?.n ?? 0;
}

export interface ReencryptUpdate {
  readonly tenantId: string;
  readonly id: string;
  readonly oldDekId: string;
  readonly dekId: string;
  readonly ciphertext: Buffer;
}

/** What a re-encryption batch did: all of it, or (nothing written) which rows still can move. */
export type BatchOutcome =
  | { readonly moved: number; readonly movable?: undefined }
  | { readonly moved: 0; readonly movable: readonly { tenantId: string; id: string }[] };

/**
 * Moves tokens to new ciphertexts and advances the job, with the batch's `key.reencrypt` audit
 * event, in one statement (PCI DSS 3.6.4, 3.7.4). All or nothing, so the event's count is exact:
 * the rows are locked first, and only if every one is still under the key it was read with
 * (compare-and-set: a crash or a second runner never encrypts a token twice) and its new key
 * still exists (locked against a destruction as tokens-repo LIVE_KEYS does) are they written.
 * Otherwise nothing is written and the rows that can still move are returned, for the caller to
 * retry with an event that counts just those.
 */
export async function applyReencryption(
  db: SqlClient,
  jobId: string,
  updates: readonly ReencryptUpdate[],
  now: Date,
  event: AuditEventRow,
): Promise<BatchOutcome> {
  const { rows } = await db.query<{ n: number; ok: boolean; tenants: string[]; ids: string[] }>(
    `WITH u AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
         AS u(tenant_id, id, old_dek_id, dek_id, ciphertext)),
     live AS (SELECT k.id FROM data_keys k WHERE k.id = ANY($4::text[]) AND k.destroyed_at IS NULL
              FOR KEY SHARE),
     cand AS (
       SELECT t.tenant_id, t.id FROM tokens t
         JOIN u ON t.tenant_id = u.tenant_id AND t.id = u.id AND t.dek_id = u.old_dek_id
        WHERE u.dek_id IN (SELECT id FROM live)
        ORDER BY t.tenant_id, t.id
        FOR UPDATE OF t),
     whole AS (SELECT count(*) = cardinality($2::text[]) AS ok FROM cand),
     up AS (
       UPDATE tokens t SET dek_id = u.dek_id, ciphertext = decode(u.ciphertext, 'base64')
         FROM u, whole
        WHERE whole.ok AND t.tenant_id = u.tenant_id AND t.id = u.id AND t.dek_id = u.old_dek_id
        RETURNING t.id),
     j AS (UPDATE key_rotation_jobs SET done = done + (SELECT count(*) FROM up), updated_at = $7
            WHERE id = $6 AND EXISTS (SELECT 1 FROM up) RETURNING id),
     a AS (INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
           SELECT $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17 WHERE EXISTS (SELECT 1 FROM up)
           RETURNING id)
     SELECT (SELECT count(*) FROM up)::int AS n, (SELECT ok FROM whole) AS ok,
            (SELECT count(*) FROM j)::int AS j, (SELECT count(*) FROM a)::int AS a,
            ARRAY(SELECT tenant_id FROM cand) AS tenants, ARRAY(SELECT id FROM cand) AS ids`,
    [
      updates.map((u) => u.tenantId),
      updates.map((u) => u.id),
      updates.map((u) => u.oldDekId),
      updates.map((u) => u.dekId),
      updates.map((u) => u.ciphertext.toString("base64")),
      jobId,
      now,
      ...auditParams(event),
    ],
  );
  const row = rows[0];
  if (row === undefined || row.ok) return { moved: row?.n ?? 0 };
  return {
    moved: 0,
    movable: row.ids.map((id, i) => ({ tenantId: row.tenants[i] as string, id })),
  };
}

export interface RefingerprintUpdate {
  readonly tenantId: string;
  readonly id: string;
  readonly oldKeyId: string;
  readonly keyId: string;
  readonly fingerprint: string;
  readonly dedupeKey: string | null;
}

/**
 * Re-fingerprinting a batch (a fingerprint-key rotation) is one transaction of these four
 * statements, so its audit event can count what was done. First: locks the rows still under the
 * key they were read with (compare-and-set, as applyReencryption), in a fixed order.
 */
export async function lockRefingerprintRows(
  tx: SqlClient,
  updates: readonly RefingerprintUpdate[],
): Promise<{ tenant_id: string; id: string }[]> {
  const { rows } = await tx.query<{ tenant_id: string; id: string }>(
    `SELECT t.tenant_id, t.id FROM tokens t
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(tenant_id, id, old_key_id)
         ON t.tenant_id = u.tenant_id AND t.id = u.id AND t.fingerprint_key_id = u.old_key_id
      ORDER BY t.tenant_id, t.id
      FOR UPDATE OF t`,
    [updates.map((u) => u.tenantId), updates.map((u) => u.id), updates.map((u) => u.oldKeyId)],
  );
  return rows;
}

/**
 * Second: a re-fingerprinted token may get the dedupe key another token of the same card already
 * holds (one tokenized again during the rotation, under the new key: the unique index
 * tokens_dedupe would refuse the batch forever). The older token keeps the dedupe key: a newer
 * holder's is cleared here (it no longer deduplicates; its card data is untouched). Returns how
 * many were cleared.
 */
export async function clearNewerDedupeHolders(
  tx: SqlClient,
  updates: readonly RefingerprintUpdate[],
): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    `WITH b AS (
       SELECT DISTINCT ON (u.tenant_id, u.dedupe_key) u.tenant_id, u.dedupe_key, t.created_at, t.id
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(tenant_id, id, dedupe_key)
         JOIN tokens t ON t.tenant_id = u.tenant_id AND t.id = u.id
        WHERE u.dedupe_key IS NOT NULL
        ORDER BY u.tenant_id, u.dedupe_key, t.created_at, t.id),
     c AS (
       UPDATE tokens h SET dedupe_key = NULL FROM b
        WHERE h.tenant_id = b.tenant_id AND h.dedupe_key = b.dedupe_key
          AND (h.created_at, h.id) > (b.created_at, b.id)
        RETURNING h.id)
     SELECT count(*)::int AS n FROM c`,
    [updates.map((u) => u.tenantId), updates.map((u) => u.id), updates.map((u) => u.dedupeKey)],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Third: the new fingerprints and dedupe keys. A dedupe key an older token still holds (or an
 * older token of the same batch gets) is not taken: that token's dedupe key is cleared instead.
 * Returns how many tokens moved and how many of them lost their dedupe key.
 */
export async function updateFingerprints(
  tx: SqlClient,
  updates: readonly RefingerprintUpdate[],
): Promise<{ moved: number; cleared: number }> {
  const { rows } = await tx.query<{ moved: number; cleared: number }>(
    `WITH r AS (
       SELECT u.*, row_number() OVER (PARTITION BY u.tenant_id, u.dedupe_key
                                      ORDER BY t.created_at, t.id) AS rn
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS u(tenant_id, id, old_key_id, key_id, fingerprint, dedupe_key)
         JOIN tokens t ON t.tenant_id = u.tenant_id AND t.id = u.id),
     up AS (
       UPDATE tokens t SET fingerprint_key_id = r.key_id, fingerprint = r.fingerprint,
              dedupe_key = CASE
                WHEN r.dedupe_key IS NOT NULL AND r.rn = 1 AND NOT EXISTS (
                  SELECT 1 FROM tokens h WHERE h.tenant_id = r.tenant_id AND h.dedupe_key = r.dedupe_key)
                THEN r.dedupe_key END
         FROM r
        WHERE t.tenant_id = r.tenant_id AND t.id = r.id AND t.fingerprint_key_id = r.old_key_id
        RETURNING t.dedupe_key IS NULL AND r.dedupe_key IS NOT NULL AS cleared)
     SELECT count(*)::int AS moved, (count(*) FILTER (WHERE cleared))::int AS cleared FROM up`,
    [
      updates.map((u) => u.tenantId),
      updates.map((u) => u.id),
      updates.map((u) => u.oldKeyId),
      updates.map((u) => u.keyId),
      updates.map((u) => u.fingerprint),
      updates.map((u) => u.dedupeKey),
    ],
  );
  return { moved: rows[0]?.moved ?? 0, cleared: rows[0]?.cleared ?? 0 };
}

/** Fourth: the job's progress and the batch's audit event (built with the exact counts). */
export async function advanceJobAudited(
  tx: SqlClient,
  jobId: string,
  counts: { moved: number; dedupeCleared: number },
  now: Date,
  event: AuditEventRow,
): Promise<void> {
  await tx.query(
    `WITH j AS (
       UPDATE key_rotation_jobs SET done = done + $2::bigint, dedupe_cleared = dedupe_cleared + $3::bigint,
              updated_at = $4
        WHERE id = $1 RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14 FROM j`,
    [jobId, counts.moved, counts.dedupeCleared, now, ...auditParams(event)],
  );
}

export interface RotationJobRow {
  readonly id: string;
  readonly purpose: JobPurpose;
  readonly tenant_id: string | null;
  readonly state: "running" | "done";
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  /** Re-fingerprinted tokens whose dedupe key an older token of the same card kept (or took). */
  readonly dedupe_cleared: number;
  readonly started_by: string;
  readonly started_at: Date;
  readonly updated_at: Date;
  readonly finished_at: Date | null;
}

const JOB_COLUMNS =
  "id, purpose, tenant_id, state, total::float8 AS total, done::float8 AS done, failed::float8 AS failed, dedupe_cleared::float8 AS dedupe_cleared, started_by, started_at, updated_at, finished_at";

export async function insertRotationJob(db: SqlClient, job: RotationJobRow): Promise<void> {
  await db.query(
    `INSERT INTO key_rotation_jobs (id, purpose, tenant_id, state, total, done, started_by, started_at, updated_at, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      job.id,
      job.purpose,
      job.tenant_id,
      job.state,
      job.total,
      job.done,
      job.started_by,
      job.started_at,
      job.updated_at,
      job.finished_at,
    ],
  );
}

/** The unfinished job of this purpose and scope, if one was interrupted. */
export async function findRunningJob(
  db: SqlClient,
  purpose: JobPurpose,
  tenantId: string | null,
): Promise<RotationJobRow | undefined> {
  const { rows } = await db.query<RotationJobRow>(
    `SELECT ${JOB_COLUMNS} FROM key_rotation_jobs
      WHERE state = 'running' AND purpose = $1 AND tenant_id IS NOT DISTINCT FROM $2
      ORDER BY started_at LIMIT 1`,
    [purpose, tenantId],
  );
  return rows[0];
}

export async function findJob(db: SqlClient, id: string): Promise<RotationJobRow | undefined> {
  const { rows } = await db.query<RotationJobRow>(
    `SELECT ${JOB_COLUMNS} FROM key_rotation_jobs WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function listJobs(db: SqlClient, limit: number): Promise<RotationJobRow[]> {
  const { rows } = await db.query<RotationJobRow>(
    `SELECT ${JOB_COLUMNS} FROM key_rotation_jobs ORDER BY started_at DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

/**
 * Marks a job done (once: a second runner finishing too changes nothing). Tokens that appeared
 * under a retired key while the job ran were moved too, so the total is at least what was done.
 */
export async function finishJob(
  db: SqlClient,
  id: string,
  now: Date,
  failed: number,
): Promise<void> {
  await db.query(
    `UPDATE key_rotation_jobs SET state = 'done', finished_at = $2, updated_at = $2, failed = $3,
            total = GREATEST(total, done)
      WHERE id = $1 AND state = 'running'`,
    [id, now, failed],
  );
}

/**
 * When the most recent key of the job's purpose and scope was retired. Until every node has
 * re-read its current key after that (KeyRing's ACTIVE_RECHECK_MS), new tokens may still appear
 * under it.
 */
export async function latestRetirement(
  db: SqlClient,
  purpose: JobPurpose,
  tenantId: string | null,
): Promise<Date | undefined> {
  const { rows } = await db.query<{ at: Date | null }>(
    `SELECT max(retired_at) AS at FROM data_keys
      WHERE purpose = $1 AND retired_at IS NOT NULL AND destroyed_at IS NULL AND owner <> 'system'
        AND ($2::text IS NULL OR owner = $2)`,
    [purpose, tenantId],
  );
  return rows[0]?.at ?? undefined;
}

/** The most recent finished job of this purpose and scope. */
export async function findLastFinishedJob(
  db: SqlClient,
  purpose: JobPurpose,
  tenantId: string | null,
): Promise<RotationJobRow | undefined> {
  const { rows } = await db.query<RotationJobRow>(
    `SELECT ${JOB_COLUMNS} FROM key_rotation_jobs
      WHERE state = 'done' AND purpose = $1 AND tenant_id IS NOT DISTINCT FROM $2
      ORDER BY finished_at DESC LIMIT 1`,
    [purpose, tenantId],
  );
  return rows[0];
}

/** Tokens past retention at `now`, oldest first. */
export async function findExpiredTokens(
  db: SqlClient,
  now: Date,
  limit: number,
): Promise<{ tenant_id: string; id: string }[]> {
  const { rows } = await db.query<{ tenant_id: string; id: string }>(
    "SELECT tenant_id, id FROM tokens WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
    [now, limit],
  );
  return rows;
}

/** Deletes the given tokens if still past retention at `now`; returns how many went. */
export async function deleteExpiredTokens(
  db: SqlClient,
  ids: readonly { tenant_id: string; id: string }[],
  now: Date,
): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH d AS (
       DELETE FROM tokens t USING unnest($1::text[], $2::text[]) AS u(tenant_id, id)
        WHERE t.tenant_id = u.tenant_id AND t.id = u.id AND t.expires_at <= $3 RETURNING t.id)
     SELECT count(*)::int AS n FROM d`,
    [ids.map((r) => r.tenant_id), ids.map((r) => r.id), now],
  );
  return rows[0]?.n ?? 0;
}

/** PAN keys of month epochs with no token left: candidates for crypto-shredding. */
export async function findEmptyEpochKeys(
  db: SqlClient,
): Promise<{ id: string; owner: string; environment: Environment; epoch: string }[]> {
  const { rows } = await db.query<{
    id: string;
    owner: string;
    environment: Environment;
    epoch: string;
  }>(
    `SELECT k.id, k.owner, k.environment, k.epoch FROM data_keys k
      WHERE k.purpose = 'pan' AND k.destroyed_at IS NULL AND k.epoch ~ '^[0-9]{4}-[0-9]{2}$'
        AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.dek_id = k.id)
      ORDER BY k.epoch, k.id`,
  );
  return rows;
}

export async function insertPurgeRun(
  db: SqlClient,
  run: { id: string; actor: string; ranAt: Date; tokensPurged: number; keysDestroyed: number },
): Promise<void> {
  await db.query(
    "INSERT INTO purge_runs (id, actor, ran_at, tokens_purged, keys_destroyed) VALUES ($1, $2, $3, $4, $5)",
    [run.id, run.actor, run.ranAt, run.tokensPurged, run.keysDestroyed],
  );
}

export interface RetentionDueRow {
  readonly tenant_id: string;
  readonly environment: Environment;
  readonly epoch: string;
  readonly tokens: number;
  readonly first_expiry: Date;
  readonly last_expiry: Date;
}

/** Tokens whose retention ends before `until`, by tenant, environment and epoch. */
export async function retentionDue(db: SqlClient, until: Date): Promise<RetentionDueRow[]> {
  const { rows } = await db.query<RetentionDueRow>(
    `SELECT t.tenant_id, t.environment, k.epoch, count(*)::float8 AS tokens,
            min(t.expires_at) AS first_expiry, max(t.expires_at) AS last_expiry
       FROM tokens t JOIN data_keys k ON k.id = t.dek_id
      WHERE t.expires_at < $1
      GROUP BY t.tenant_id, t.environment, k.epoch ORDER BY first_expiry`,
    [until],
  );
  return rows;
}

export async function purgeRunsSince(
  db: SqlClient,
  since: Date,
): Promise<
  { id: string; actor: string; ran_at: Date; tokens_purged: number; keys_destroyed: number }[]
> {
  const { rows } = await db.query<{
    id: string;
    actor: string;
    ran_at: Date;
    tokens_purged: number;
    keys_destroyed: number;
  }>(
    `SELECT id, actor, ran_at, tokens_purged::float8 AS tokens_purged, keys_destroyed
       FROM purge_runs WHERE ran_at >= $1 ORDER BY ran_at`,
    [since],
  );
  return rows;
}

/** Counts of persistent tokens, by tenant and environment (kept until deleted). */
export async function persistentCounts(
  db: SqlClient,
): Promise<{ tenant_id: string; environment: Environment; tokens: number }[]> {
  const { rows } = await db.query<{ tenant_id: string; environment: Environment; tokens: number }>(
    `SELECT tenant_id, environment, count(*)::float8 AS tokens FROM tokens WHERE persistent
      GROUP BY tenant_id, environment ORDER BY tenant_id, environment`,
  );
  return rows;
}

export interface CeremonyRow {
  readonly id: string;
  readonly action: "kek.rotate" | "dek.destroy" | "custodians.rekey";
  readonly params: Record<string, string | number | boolean>;
  readonly state: "pending" | "executed" | "rejected" | "failed";
  readonly proposed_by: string;
  readonly proposed_at: Date;
  readonly expires_at: Date;
  readonly decided_by: string | null;
  readonly decided_at: Date | null;
}

const CEREMONY_COLUMNS =
  "id, action, params, state, proposed_by, proposed_at, expires_at, decided_by, decided_at";

export async function insertCeremonyAudited(
  db: SqlClient,
  row: CeremonyRow,
  event: AuditEventRow,
): Promise<void> {
  await db.query(
    `WITH c AS (
       INSERT INTO key_ceremonies (${CEREMONY_COLUMNS}) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)
       RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18, $19 FROM c`,
    [
      row.id,
      row.action,
      JSON.stringify(row.params),
      row.state,
      row.proposed_by,
      row.proposed_at,
      row.expires_at,
      row.decided_by,
      row.decided_at,
      ...auditParams(event),
    ],
  );
}

export async function findCeremony(db: SqlClient, id: string): Promise<CeremonyRow | undefined> {
  const { rows } = await db.query<CeremonyRow>(
    `SELECT ${CEREMONY_COLUMNS} FROM key_ceremonies WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function listCeremonies(db: SqlClient, limit: number): Promise<CeremonyRow[]> {
  const { rows } = await db.query<CeremonyRow>(
    `SELECT ${CEREMONY_COLUMNS} FROM key_ceremonies ORDER BY proposed_at DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

/**
 * Decides a pending ceremony (compare-and-set on its state, a different principal, not expired),
 * with its audit event, in one statement. Returns false when any condition no longer holds.
 */
export async function decideCeremonyAudited(
  db: SqlClient,
  id: string,
  state: "executed" | "rejected" | "failed",
  decidedBy: string,
  now: Date,
  event: AuditEventRow,
): Promise<boolean> {
  const { rows } = await db.query(
    `WITH c AS (
       UPDATE key_ceremonies SET state = $2, decided_by = $3, decided_at = $4
        WHERE id = $1 AND state = 'pending' AND proposed_by <> $3 AND expires_at > $4
        RETURNING id)
     INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS})
     SELECT $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14 FROM c RETURNING id`,
    [id, state, decidedBy, now, ...auditParams(event)],
  );
  return rows.length === 1;
}

/** Namespace of the vault's advisory locks ("pvkl"), the first key of pg_try_advisory_xact_lock. */
const LOCK_NAMESPACE = 0x70766b6c;
/** Locks this process holds, per store: PGlite is one process, so this is all it needs. */
const heldLocks = new WeakMap<Database, Set<string>>();

export type Exclusive<T> =
  | { readonly acquired: true; readonly value: T }
  | { readonly acquired: false };

/**
 * Runs `work` as the only holder of the lock `name` across every node on this store, or returns
 * `{ acquired: false }` at once when another holds it (no waiting: the caller reports a 409).
 * On PostgreSQL the lock is a session-level advisory lock on a connection of its own, outside
 * the pool (so any pool size works and two sections never wait on each other's connections), and
 * released when `work` ends, also if the process dies. PGlite is opened by one process only (the
 * data directory lock), so the in-process set is the lock there.
 */
export async function withExclusiveLock<T>(
  db: Database,
  name: string,
  work: () => Promise<T>,
): Promise<Exclusive<T>> {
  let held = heldLocks.get(db);
  if (held === undefined) {
    held = new Set();
    heldLocks.set(db, held);
  }
  if (held.has(name)) return { acquired: false };
  held.add(name);
  try {
    const key = createHash("sha256").update(name).digest().readInt32BE(0);
    const release = await db.tryAdvisoryLock(LOCK_NAMESPACE, key);
    if (release === undefined) return { acquired: false };
    try {
      return { acquired: true, value: await work() };
    } finally {
      await release();
    }
  } finally {
    held.delete(name);
  }
}
