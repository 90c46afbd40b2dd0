import {
  checkPasswordPolicy,
  hashPassword,
  PASSWORD_HISTORY_DEPTH,
  verifyPassword,
} from "../../auth/passwords.js";
import { VaultError } from "../../errors/registry.js";
import type { AdminUserRow } from "../../store/admin-users-repo.js";
import {
  addPasswordHistory,
  findAdminUser,
  recentPasswordHashes,
  resetFailedAttempts,
  revokeUserSessions,
  setPassword,
  setSessionMfa,
} from "../../store/admin-users-repo.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";
import type { AuthAttempts, RequestOrigin } from "./attempts.js";
import { accountBlock } from "./attempts.js";
import { PASSWORD_HISTORY_KEEP } from "./policy.js";
import type { ScryptGate } from "./scrypt-gate.js";
import type { SecondFactors } from "./second-factor.js";
import type { AdminSessions, TokenPair } from "./sessions.js";
import { userSession } from "./sessions.js";

export interface PasswordChange {
  readonly currentPassword: string;
  readonly newPassword: string;
  readonly code: string;
}

/**
 * What a logged-in person does with their own account: prove a fresh second factor (step-up,
 * for card reveals and key ceremonies: PCI DSS 8.4.1) and change their password (PCI DSS 8.3.6,
 * 8.3.7, 8.3.9). Wrong factors count towards the lockout like failed logins do (8.3.4).
 */
export class AdminAccount {
  constructor(
    private readonly db: Database,
    private readonly gate: ScryptGate,
    private readonly factors: SecondFactors,
    private readonly sessions: AdminSessions,
    private readonly attempts: AuthAttempts,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  /** Checks a TOTP code, marks the session's second factor fresh and returns a new access token. */
  async stepUp(principal: Principal, code: string, origin: RequestOrigin): Promise<TokenPair> {
    const sessionId = userSession(principal);
    const user = await this.user(principal);
    const factor = await this.factors.check(user, { code });
    const now = this.clock.now();
    let reason = accountBlock(user, now) ?? (factor.ok ? undefined : factor.reason);
    if (reason === undefined && factor.ok) {
      const done = await this.db.transaction(async (tx) => {
        if (!(await factor.consume(tx))) return "code_replayed";
        if (!(await setSessionMfa(tx, sessionId, now))) return "session_revoked";
        await resetFailedAttempts(tx, user.id);
        await this.audit.record(tx, {
          tenantId: user.tenant_id,
          actor: user.id,
          action: "auth.step_up",
          objectId: sessionId,
          outcome: "success",
          details: { ip: origin.ip },
        });
        return undefined;
      });
      if (done === undefined) {
        const access = await this.sessions.accessToken(user, sessionId);
        return {
          accessToken: access.token,
          tokenType: "Bearer",
          expiresIn: access.expiresIn,
          refreshToken: undefined,
        };
      }
      reason = done;
    }
    await this.attempts.failed(user, "auth.step_up", reason ?? "unknown", origin);
    throw new VaultError("LOGIN_FAILED");
  }

  /**
   * Changes the caller's password: the current one and a TOTP code prove it is them; the new one
   * must meet the policy and differ from the last four. Every other session of the user ends.
   */
  async changePassword(
    principal: Principal,
    change: PasswordChange,
    origin: RequestOrigin,
  ): Promise<void> {
    const sessionId = userSession(principal);
    const user = await this.user(principal);
    const current = await this.gate.run(() =>
      verifyPassword(change.currentPassword, user.password_hash ?? undefined),
    );
    const factor = await this.factors.check(user, { code: change.code });
    const now = this.clock.now();
    let reason =
      accountBlock(user, now) ??
      (!current.ok ? "bad_password" : factor.ok ? undefined : factor.reason);
    if (reason === undefined && factor.ok) {
      const history = await recentPasswordHashes(this.db, user.id, PASSWORD_HISTORY_DEPTH);
      const policy = await this.gate.run(() =>
        checkPasswordPolicy(change.newPassword, { previousHashes: history }),
      );
      if (!policy.ok) {
        throw new VaultError("VALIDATION_FAILED", {
          errors: policy.issues.map((issue) => ({ ...issue, field: "new_password" })),
        });
      }
      const hash = await this.gate.run(() => hashPassword(change.newPassword));
      reason = await this.db.transaction(async (tx) => {
        if (!(await factor.consume(tx))) return "code_replayed";
        await setPassword(tx, user.id, hash, now);
        await addPasswordHistory(tx, user.id, hash, now, PASSWORD_HISTORY_KEEP);
        const revoked = await revokeUserSessions(tx, user.id, now, "password_change", sessionId);
        await resetFailedAttempts(tx, user.id);
        await this.audit.record(tx, {
          tenantId: user.tenant_id,
          actor: user.id,
          action: "auth.password_change",
          objectId: user.id,
          outcome: "success",
          details: { ip: origin.ip, sessions_revoked: revoked.length },
        });
        return undefined;
      });
      if (reason === undefined) return;
    }
    await this.attempts.failed(user, "auth.password_change", reason ?? "unknown", origin);
    throw new VaultError("LOGIN_FAILED");
  }

  private async user(principal: Principal): Promise<AdminUserRow> {
    const user = await findAdminUser(this.db, principal.keyId);
    // The access token was checked against the session a moment ago: a missing user is a race
    // with nothing (users are never deleted), treated as a revoked credential.
    if (user === undefined) throw new VaultError("AUTH_REVOKED");
    return user;
  }
}
