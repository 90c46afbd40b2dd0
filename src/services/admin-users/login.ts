import { verifyPassword } from "../../auth/passwords.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment } from "../../keys/key-manager.js";
import { findAdminUserByUsername, resetFailedAttempts } from "../../store/admin-users-repo.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { AuthAttempts, RequestOrigin } from "./attempts.js";
import { accountBlock } from "./attempts.js";
import type { ScryptGate } from "./scrypt-gate.js";
import type { SecondFactors } from "./second-factor.js";
import type { AdminSessions, TokenPair } from "./sessions.js";
import { normalizeUsername } from "./username.js";

export interface LoginInput {
  readonly username: string;
  readonly password: string;
  readonly code?: string | undefined;
  readonly recoveryCode?: string | undefined;
  readonly environment?: Environment | undefined;
}

/**
 * Login with a password and a second factor (PCI DSS 8.3.1, 8.4.2). Every failure, whatever its
 * cause (unknown user, wrong password, wrong or replayed code, used recovery code, locked,
 * disabled or not enrolled), is one LOGIN_FAILED after the same work: one scrypt (against a
 * dummy hash for unknown users) and one second-factor check (against a dummy secret), so neither
 * the answer nor its timing says which (issue 5, "Bad input"; OWASP Authentication Cheat Sheet).
 */
export class AdminLogin {
  constructor(
    private readonly db: Database,
    private readonly gate: ScryptGate,
    private readonly factors: SecondFactors,
    private readonly sessions: AdminSessions,
    private readonly attempts: AuthAttempts,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async login(input: LoginInput, origin: RequestOrigin): Promise<TokenPair> {
    const username = normalizeUsername(input.username);
    const user =
      username === undefined ? undefined : await findAdminUserByUsername(this.db, username);
    const password = await this.gate.run(() =>
      verifyPassword(input.password, user?.password_hash ?? undefined),
    );
    const factor = await this.factors.check(user, input);
    const now = this.clock.now();
    let reason =
      user === undefined
        ? "unknown_user"
        : (accountBlock(user, now) ??
          (!password.ok ? "bad_password" : factor.ok ? undefined : factor.reason));
    if (user !== undefined && reason === undefined && factor.ok) {
      const environment = input.environment ?? "live";
      const opened = await this.db.transaction(async (tx) => {
        // Spent atomically: a code (or recovery code) used by a concurrent login fails here.
        if (!(await factor.consume(tx))) return undefined;
        await resetFailedAttempts(tx, user.id);
        const session = await this.sessions.open(tx, user, environment, origin);
        await this.audit.record(tx, {
          tenantId: user.tenant_id,
          actor: user.id,
          action: "auth.login",
          objectId: session.sessionId,
          outcome: "success",
          details: { ip: origin.ip, method: factor.method, environment },
        });
        return session;
      });
      if (opened !== undefined) {
        const access = await this.sessions.accessToken(user, opened.sessionId);
        return {
          accessToken: access.token,
          tokenType: "Bearer",
          expiresIn: access.expiresIn,
          refreshToken: opened.refreshToken,
        };
      }
      reason = factor.method === "totp" ? "code_replayed" : "recovery_code_used";
    }
    await this.attempts.failed(user, "auth.login", reason ?? "unknown", origin);
    throw new VaultError("LOGIN_FAILED");
  }
}
