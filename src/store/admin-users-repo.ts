import type { SqlClient } from "./database.js";

/**
 * Admin users, their credentials and sessions (migrations/006_admin_users.sql). Every "consume"
 * is one conditional UPDATE whose row count decides: two concurrent requests with one TOTP code,
 * recovery code, refresh token or enrollment token cannot both win (PCI DSS 8.5.1).
 */

export interface AdminUserRow {
  readonly id: string;
  readonly tenant_id: string;
  readonly username: string;
  readonly roles: string[];
  readonly scopes: string[];
  readonly password_hash: string | null;
  readonly password_changed_at: Date | null;
  readonly totp_secret: Buffer | null;
  readonly totp_last_step: number | null;
  readonly failed_attempts: number;
  readonly locked_until: Date | null;
  readonly enrolled_at: Date | null;
  readonly disabled_at: Date | null;
  readonly created_at: Date;
  readonly created_by: string;
}

const USER_COLUMNS = `id, tenant_id, username, roles, scopes, password_hash, password_changed_at,
  totp_secret, totp_last_step, failed_attempts, locked_until, enrolled_at, disabled_at,
  created_at, created_by`;

/** Inserts a new user; false when the username is taken. */
export async function insertAdminUser(db: SqlClient, row: AdminUserRow): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO admin_users (${USER_COLUMNS})
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     ON CONFLICT (username) DO NOTHING RETURNING id`,
    [
      row.id,
      row.tenant_id,
      row.username,
      row.roles,
      row.scopes,
      row.password_hash,
      row.password_changed_at,
      row.totp_secret,
      row.totp_last_step,
      row.failed_attempts,
      row.locked_until,
      row.enrolled_at,
      row.disabled_at,
      row.created_at,
      row.created_by,
    ],
  );
  return rows.length === 1;
}

export async function findAdminUser(db: SqlClient, id: string): Promise<AdminUserRow | undefined> {
  const { rows } = await db.query<AdminUserRow>(
    `SELECT ${USER_COLUMNS} FROM admin_users WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function findAdminUserByUsername(
  db: SqlClient,
  username: string,
): Promise<AdminUserRow | undefined> {
  const { rows } = await db.query<AdminUserRow>(
    `SELECT ${USER_COLUMNS} FROM admin_users WHERE username = $1`,
    [username],
  );
  return rows[0];
}

export async function listAdminUsers(db: SqlClient, tenantId?: string): Promise<AdminUserRow[]> {
  const { rows } =
    tenantId === undefined
      ? await db.query<AdminUserRow>(
          `SELECT ${USER_COLUMNS} FROM admin_users ORDER BY created_at, id`,
        )
      : await db.query<AdminUserRow>(
          `SELECT ${USER_COLUMNS} FROM admin_users WHERE tenant_id = $1 ORDER BY created_at, id`,
          [tenantId],
        );
  return rows;
}

/** Sets (or, before confirmation, replaces) the password and the sealed TOTP secret. */
export async function setPendingEnrollment(
  db: SqlClient,
  id: string,
  passwordHash: string,
  totpSecret: Buffer,
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE admin_users SET password_hash = $2, totp_secret = $3, password_changed_at = $4,
            totp_last_step = NULL
      WHERE id = $1 AND enrolled_at IS NULL AND disabled_at IS NULL`,
    [id, passwordHash, totpSecret, at],
  );
  return rowCount === 1;
}

/** Completes enrolment with the step of the first code; false if already done. */
export async function confirmEnrollment(
  db: SqlClient,
  id: string,
  step: number,
  at: Date,
  verifiedSecret: Buffer,
): Promise<boolean> {
  // Only the sealed secret the code was verified against: a concurrent re-enrolment that
  // replaced it leaves this confirmation with nothing to confirm.
  const { rowCount } = await db.query(
    `UPDATE admin_users SET enrolled_at = $3, totp_last_step = $2
      WHERE id = $1 AND enrolled_at IS NULL AND totp_secret = $4
        AND (totp_last_step IS NULL OR totp_last_step < $2)`,
    [id, step, at, verifiedSecret],
  );
  return rowCount === 1;
}

/**
 * Records the step of an accepted TOTP code, only if it is later than the last one accepted:
 * true when this request won the step (docs/admin-auth.md; RFC 6238 §5.2).
 */
export async function consumeTotpStep(db: SqlClient, id: string, step: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE admin_users SET totp_last_step = $2
      WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)`,
    [id, step],
  );
  return rowCount === 1;
}

/**
 * Counts one failed attempt, atomically. The `limit`-th consecutive failure locks the account
 * until `lockUntil` and starts the count again; failures during a lockout are not counted.
 * Returns the new count and whether this failure locked the account.
 */
export async function recordFailedAttempt(
  db: SqlClient,
  id: string,
  now: Date,
  limit: number,
  lockUntil: Date,
): Promise<{ attempts: number; locked: boolean }> {
  const { rows } = await db.query<{ failed_attempts: number; locked_until: Date | null }>(
    `UPDATE admin_users
        SET failed_attempts = CASE WHEN failed_attempts + 1 >= $3 THEN 0 ELSE failed_attempts + 1 END,
            locked_until = CASE WHEN failed_attempts + 1 >= $3 THEN $4 ELSE locked_until END
      WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
      RETURNING failed_attempts, locked_until`,
    [id, now, limit, lockUntil],
  );
  const row = rows[0];
  if (row === undefined) return { attempts: 0, locked: false };
  const locked = row.locked_until !== null && row.locked_until.getTime() === lockUntil.getTime();
  return { attempts: locked ? limit : row.failed_attempts, locked };
}

/** A success ends the run of failures (and any lockout that had expired). */
export async function resetFailedAttempts(db: SqlClient, id: string): Promise<void> {
  await db.query(
    "UPDATE admin_users SET failed_attempts = 0, locked_until = NULL WHERE id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)",
    [id],
  );
}

export async function setPassword(
  db: SqlClient,
  id: string,
  passwordHash: string,
  at: Date,
): Promise<void> {
  await db.query(
    "UPDATE admin_users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
    [id, passwordHash, at],
  );
}

/** Marks the user disabled; false when there is no such user in the tenant or it already was. */
export async function disableAdminUser(
  db: SqlClient,
  tenantId: string,
  id: string,
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE admin_users SET disabled_at = $3 WHERE id = $2 AND tenant_id = $1 AND disabled_at IS NULL",
    [tenantId, id, at],
  );
  return rowCount === 1;
}

/** Lifts a lockout and clears the failure count; false when there is no such user in the tenant. */
export async function unlockAdminUser(
  db: SqlClient,
  tenantId: string,
  id: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE admin_users SET failed_attempts = 0, locked_until = NULL WHERE id = $2 AND tenant_id = $1",
    [tenantId, id],
  );
  return rowCount === 1;
}

// --- Password history (PCI DSS 8.3.7) ---------------------------------------------------------

/** Adds a password to the history and keeps only the newest `keep`. */
export async function addPasswordHistory(
  db: SqlClient,
  userId: string,
  passwordHash: string,
  at: Date,
  keep: number,
): Promise<void> {
  await db.query(
    "INSERT INTO admin_password_history (user_id, password_hash, set_at) VALUES ($1, $2, $3)",
    [userId, passwordHash, at],
  );
  await db.query(
    `DELETE FROM admin_password_history WHERE user_id = $1 AND id NOT IN (
       SELECT id FROM admin_password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)`,
    [userId, keep],
  );
}

export async function clearPasswordHistory(db: SqlClient, userId: string): Promise<void> {
  await db.query("DELETE FROM admin_password_history WHERE user_id = $1", [userId]);
}

/** The newest `limit` password hashes, newest first. */
export async function recentPasswordHashes(
  db: SqlClient,
  userId: string,
  limit: number,
): Promise<string[]> {
  const { rows } = await db.query<{ password_hash: string }>(
    `SELECT password_hash FROM admin_password_history WHERE user_id = $1
      ORDER BY id DESC LIMIT $2`,
    [userId, limit],
  );
  return rows.map((r) => r.password_hash);
}

// --- Recovery codes ---------------------------------------------------------------------------

export async function replaceRecoveryCodes(
  db: SqlClient,
  userId: string,
  macs: readonly string[],
): Promise<void> {
  await db.query("DELETE FROM admin_recovery_codes WHERE user_id = $1", [userId]);
  for (const mac of macs) {
    await db.query("INSERT INTO admin_recovery_codes (user_id, code_mac) VALUES ($1, $2)", [
      userId,
      mac,
    ]);
  }
}

export async function listRecoveryCodes(
  db: SqlClient,
  userId: string,
): Promise<{ hash: string; usedAt: Date | null }[]> {
  const { rows } = await db.query<{ code_mac: string; used_at: Date | null }>(
    "SELECT code_mac, used_at FROM admin_recovery_codes WHERE user_id = $1",
    [userId],
  );
  return rows.map((r) => ({ hash: r.code_mac, usedAt: r.used_at }));
}

/** Uses a recovery code once: true only for the request that changed the row. */
export async function consumeRecoveryCode(
  db: SqlClient,
  userId: string,
  mac: string,
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE admin_recovery_codes SET used_at = $3
      WHERE user_id = $1 AND code_mac = $2 AND used_at IS NULL`,
    [userId, mac, at],
  );
  return rowCount === 1;
}

// --- Enrollment tokens ------------------------------------------------------------------------

export interface EnrollmentTokenRow {
  readonly id: string;
  readonly user_id: string;
  readonly token_mac: Buffer;
  readonly created_at: Date;
  readonly expires_at: Date;
  readonly used_at: Date | null;
}

export async function insertEnrollmentToken(db: SqlClient, row: EnrollmentTokenRow): Promise<void> {
  await db.query(
    `INSERT INTO admin_enrollment_tokens (id, user_id, token_mac, created_at, expires_at, used_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [row.id, row.user_id, row.token_mac, row.created_at, row.expires_at, row.used_at],
  );
}

export async function findEnrollmentToken(
  db: SqlClient,
  id: string,
): Promise<EnrollmentTokenRow | undefined> {
  const { rows } = await db.query<EnrollmentTokenRow>(
    `SELECT id, user_id, token_mac, created_at, expires_at, used_at
       FROM admin_enrollment_tokens WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function consumeEnrollmentToken(
  db: SqlClient,
  id: string,
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE admin_enrollment_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
    [id, at],
  );
  return rowCount === 1;
}

// --- Sessions and refresh tokens --------------------------------------------------------------

export type SessionRevokeReason =
  | "logout"
  | "refresh_reuse"
  | "disabled"
  | "password_change"
  | "idle";

export interface AdminSessionRow {
  readonly id: string;
  readonly user_id: string;
  readonly environment: "live" | "test";
  readonly ip: string;
  readonly created_at: Date;
  readonly last_seen_at: Date;
  readonly mfa_at: Date;
  readonly revoked_at: Date | null;
  readonly revoke_reason: SessionRevokeReason | null;
}

/** A session with what authenticating its tokens needs of its user. */
export interface SessionWithUser extends AdminSessionRow {
  readonly tenant_id: string;
  readonly scopes: string[];
  readonly disabled_at: Date | null;
}

export async function insertSession(db: SqlClient, row: AdminSessionRow): Promise<void> {
  await db.query(
    `INSERT INTO admin_sessions
       (id, user_id, environment, ip, created_at, last_seen_at, mfa_at, revoked_at, revoke_reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      row.id,
      row.user_id,
      row.environment,
      row.ip,
      row.created_at,
      row.last_seen_at,
      row.mfa_at,
      row.revoked_at,
      row.revoke_reason,
    ],
  );
}

export async function findSessionWithUser(
  db: SqlClient,
  id: string,
): Promise<SessionWithUser | undefined> {
  const { rows } = await db.query<SessionWithUser>(
    `SELECT s.id, s.user_id, s.environment, s.ip, s.created_at, s.last_seen_at, s.mfa_at,
            s.revoked_at, s.revoke_reason, u.tenant_id, u.scopes, u.disabled_at
       FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
      WHERE s.id = $1`,
    [id],
  );
  return rows[0];
}

/** Marks the session seen at `at`, if it is still live and was last seen before `before`. */
export async function touchSession(
  db: SqlClient,
  id: string,
  at: Date,
  before: Date,
): Promise<void> {
  await db.query(
    `UPDATE admin_sessions SET last_seen_at = $2
      WHERE id = $1 AND revoked_at IS NULL AND last_seen_at < $3`,
    [id, at, before],
  );
}

export async function setSessionMfa(db: SqlClient, id: string, at: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE admin_sessions SET mfa_at = $2, last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    [id, at],
  );
  return rowCount === 1;
}

/** Revokes one live session; false when it was already revoked (or does not exist). */
export async function revokeSession(
  db: SqlClient,
  id: string,
  at: Date,
  reason: SessionRevokeReason,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE admin_sessions SET revoked_at = $2, revoke_reason = $3
      WHERE id = $1 AND revoked_at IS NULL`,
    [id, at, reason],
  );
  return rowCount === 1;
}

/** Revokes every live session of a user but `keep`; returns the ids revoked. */
export async function revokeUserSessions(
  db: SqlClient,
  userId: string,
  at: Date,
  reason: SessionRevokeReason,
  keep?: string,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE admin_sessions SET revoked_at = $2, revoke_reason = $3
      WHERE user_id = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR id <> $4)
      RETURNING id`,
    [userId, at, reason, keep ?? null],
  );
  return rows.map((r) => r.id);
}

export interface RefreshTokenRow {
  readonly id: string;
  readonly session_id: string;
  readonly token_mac: Buffer;
  readonly issued_at: Date;
  readonly expires_at: Date;
  readonly used_at: Date | null;
}

export async function insertRefreshToken(db: SqlClient, row: RefreshTokenRow): Promise<void> {
  await db.query(
    `INSERT INTO admin_refresh_tokens (id, session_id, token_mac, issued_at, expires_at, used_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [row.id, row.session_id, row.token_mac, row.issued_at, row.expires_at, row.used_at],
  );
}

export async function findRefreshToken(
  db: SqlClient,
  id: string,
): Promise<RefreshTokenRow | undefined> {
  const { rows } = await db.query<RefreshTokenRow>(
    `SELECT id, session_id, token_mac, issued_at, expires_at, used_at
       FROM admin_refresh_tokens WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/** Uses a refresh token once: true only for the request that changed the row. */
export async function consumeRefreshToken(db: SqlClient, id: string, at: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE admin_refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
    [id, at],
  );
  return rowCount === 1;
}
