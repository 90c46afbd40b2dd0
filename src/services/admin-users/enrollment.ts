import { checkPasswordPolicy, hashPassword } from "../../auth/passwords.js";
import { generateRecoveryCodes } from "../../auth/recovery-codes.js";
import { encodeBase32, generateTotpSecret, totpUri, verifyTotp } from "../../auth/totp.js";
import { VaultError } from "../../errors/registry.js";
import type { AdminUserRow, EnrollmentTokenRow } from "../../store/admin-users-repo.js";
import {
  addPasswordHistory,
  clearPasswordHistory,
  confirmEnrollment,
  consumeEnrollmentToken,
  findAdminUser,
  findEnrollmentToken,
  replaceRecoveryCodes,
  resetFailedAttempts,
  setPendingEnrollment,
} from "../../store/admin-users-repo.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { AuthAttempts, RequestOrigin } from "./attempts.js";
import type { CredentialKeys } from "./credentials.js";
import { parseSecret } from "./credentials.js";
import { PASSWORD_HISTORY_KEEP } from "./policy.js";
import type { ScryptGate } from "./scrypt-gate.js";

/** Shown to the new user once (over TLS, `Cache-Control: no-store`), never stored or logged. */
export interface EnrollmentSecrets {
  /** The `otpauth://` URI to render as a QR code: it IS the TOTP secret. */
  readonly otpauthUri: string;
  /** The same secret in base32, for typing into an authenticator by hand. */
  readonly secret: string;
  readonly recoveryCodes: readonly string[];
}

/**
 * Enrolment of a new admin user with the one-time token their administrator was given: set a
 * password (PCI DSS 8.3.6) and a TOTP secret (8.4.2) and receive ten recovery codes, then
 * confirm with a first code. The token works for 24 hours; confirming spends it. Until then the
 * user may enroll again (a lost QR code), which replaces the secret and the codes.
 */
export class AdminEnrollment {
  constructor(
    private readonly db: Database,
    private readonly gate: ScryptGate,
    private readonly credentials: CredentialKeys,
    private readonly attempts: AuthAttempts,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async enroll(token: string, password: string, origin: RequestOrigin): Promise<EnrollmentSecrets> {
    const { user } = await this.pending(token, origin);
    const policy = await checkPasswordPolicy(password, { previousHashes: [] });
    if (!policy.ok) throw new VaultError("VALIDATION_FAILED", { errors: policy.issues });
    const hash = await this.gate.run(() => hashPassword(password));
    const secret = generateTotpSecret();
    try {
      const sealed = await this.credentials.sealTotp(user.id, secret);
      const recovery = generateRecoveryCodes(await this.credentials.recoveryKey(), user.id);
      const now = this.clock.now();
      await this.db.transaction(async (tx) => {
        if (!(await setPendingEnrollment(tx, user.id, hash, sealed, now))) {
          throw new VaultError("AUTH_INVALID");
        }
        await clearPasswordHistory(tx, user.id);
        await addPasswordHistory(tx, user.id, hash, now, PASSWORD_HISTORY_KEEP);
        await replaceRecoveryCodes(tx, user.id, recovery.hashes);
        await this.audit.record(tx, {
          tenantId: user.tenant_id,
          actor: user.id,
          action: "admin_user.enroll",
          objectId: user.id,
          outcome: "success",
          details: { ip: origin.ip },
        });
      });
      return {
        otpauthUri: totpUri({ secret, account: user.username }),
        secret: secret.use(encodeBase32),
        recoveryCodes: recovery.codes,
      };
    } finally {
      secret.zeroize();
    }
  }

  /** Completes enrolment with a first TOTP code; spends the enrollment token. */
  async confirm(token: string, code: string, origin: RequestOrigin): Promise<void> {
    const { user, row } = await this.pending(token, origin);
    const now = this.clock.now();
    const locked = user.locked_until !== null && user.locked_until > now;
    const result =
      user.totp_secret === null
        ? ({ ok: false, reason: "NOT_ENROLLED" } as const)
        : await this.verify(user, user.totp_secret, code, now);
    if (!locked && result.ok && user.totp_secret !== null) {
      const verified = user.totp_secret;
      // Either both the token is spent and the enrolment confirmed, or neither (a lost race
      // rolls the transaction back, so the token is not spent for nothing).
      const confirmed = await this.db
        .transaction(async (tx) => {
          if (
            !(await consumeEnrollmentToken(tx, row.id, now)) ||
            !(await confirmEnrollment(tx, user.id, result.step, now, verified))
          )
            throw new LostConfirmationRace();
          await resetFailedAttempts(tx, user.id);
          await this.audit.record(tx, {
            tenantId: user.tenant_id,
            actor: user.id,
            action: "admin_user.enroll_confirm",
            objectId: user.id,
            outcome: "success",
            details: { ip: origin.ip },
          });
          return true;
        })
        .catch((err: unknown) => {
          if (err instanceof LostConfirmationRace) return false;
          throw err;
        });
      if (confirmed) return;
    }
    const reason = locked
      ? "locked"
      : result.ok
        ? "code_replayed"
        : `code_${result.reason.toLowerCase()}`;
    await this.attempts.failed(user, "admin_user.enroll_confirm", reason, origin);
    throw new VaultError("LOGIN_FAILED");
  }

  private async verify(user: AdminUserRow, sealed: Buffer, code: string, now: Date) {
    const secret = await this.credentials.openTotp(user.id, sealed);
    try {
      return verifyTotp(secret, code, { now, lastUsedStep: user.totp_last_step });
    } finally {
      secret.zeroize();
    }
  }

  /**
   * The user an unspent, unexpired enrollment token names, if they are neither disabled nor
   * enrolled yet. Anything else is one AUTH_INVALID, audited (the token itself never is).
   */
  private async pending(
    token: string,
    origin: RequestOrigin,
  ): Promise<{ user: AdminUserRow; row: EnrollmentTokenRow }> {
    const presented = parseSecret("enroll", token);
    const row =
      presented === undefined ? undefined : await findEnrollmentToken(this.db, presented.id);
    const matches =
      presented !== undefined &&
      (await this.credentials.matches("enroll", presented, row?.token_mac));
    const user =
      matches && row !== undefined ? await findAdminUser(this.db, row.user_id) : undefined;
    const now = this.clock.now();
    const reason =
      row === undefined || user === undefined
        ? "unknown_token"
        : row.used_at !== null
          ? "token_used"
          : row.expires_at <= now
            ? "token_expired"
            : user.disabled_at !== null
              ? "disabled"
              : user.enrolled_at !== null
                ? "already_enrolled"
                : undefined;
    if (reason === undefined && row !== undefined && user !== undefined) return { user, row };
    await this.audit.record(this.db, {
      tenantId: user?.tenant_id,
      actor: user?.id ?? "anonymous",
      action: "admin_user.enroll",
      objectId: user?.id,
      outcome: "failure",
      details: { ip: origin.ip, reason: reason ?? "unknown" },
    });
    throw new VaultError("AUTH_INVALID");
  }
}

/** Thrown inside the confirmation's transaction to roll it back when another request won. */
class LostConfirmationRace extends Error {}
