import type { KeyRing } from "../../keys/key-ring.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { VaultJoseKeys } from "../capture/vault-jose-keys.js";
import type { Clock } from "../clock.js";
import type { AuthResult, PresentationContext, Principal } from "../principal.js";
import { AccessTokens } from "./access-tokens.js";
import { AdminAccount } from "./account.js";
import { AdminUsers } from "./admin-users.js";
import { AuthAttempts } from "./attempts.js";
import { CredentialKeys } from "./credentials.js";
import { AdminEnrollment } from "./enrollment.js";
import { AdminLogin } from "./login.js";
import { needsStepUp } from "./policy.js";
import { ScryptGate } from "./scrypt-gate.js";
import { SecondFactors } from "./second-factor.js";
import { AdminSessions } from "./sessions.js";

export interface AdminAuthDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  /** The vault's access-token signing keys: a `VaultJoseKeys` with `algs: ACCESS_TOKEN_ALGS`. */
  readonly accessTokenKeys: VaultJoseKeys;
  /** The vault's origin: issuer of access tokens (and, with `/admin`, their audience). */
  readonly vaultOrigin: () => string;
  /** Concurrent scrypt runs allowed (default 4). */
  readonly maxConcurrentScrypt?: number;
}

/**
 * Admin users and their authentication (issue 5 point 3; docs/admin-auth.md), wired from its
 * parts: management, enrolment, login, sessions (refresh, logout, access-token checks) and the
 * person's own account (step-up, password change). One scrypt gate bounds every password hash.
 */
export class AdminAuth {
  readonly users: AdminUsers;
  readonly enrollment: AdminEnrollment;
  readonly sessions: AdminSessions;
  readonly account: AdminAccount;
  private readonly loginFlow: AdminLogin;
  private readonly clock: Clock;

  constructor(deps: AdminAuthDeps) {
    const { db, audit, clock } = deps;
    this.clock = clock;
    const gate = new ScryptGate(deps.maxConcurrentScrypt);
    const credentials = new CredentialKeys(deps.keys);
    const attempts = new AuthAttempts(db, audit, clock);
    const factors = new SecondFactors(db, credentials, clock);
    const tokens = new AccessTokens(deps.accessTokenKeys, clock, deps.vaultOrigin);
    this.users = new AdminUsers(db, credentials, audit, clock);
    this.enrollment = new AdminEnrollment(db, gate, credentials, attempts, audit, clock);
    this.sessions = new AdminSessions(db, credentials, tokens, audit, clock);
    this.account = new AdminAccount(db, gate, factors, this.sessions, attempts, audit, clock);
    this.loginFlow = new AdminLogin(db, gate, factors, this.sessions, attempts, audit, clock);
  }

  login(...args: Parameters<AdminLogin["login"]>) {
    return this.loginFlow.login(...args);
  }

  /**
   * For the auth hook: `Authorization: Bearer <access token>` of an admin user. The presentation
   * context is not used: a person's session is not bound to an address or a certificate.
   */
  authenticateAccessToken(jwt: string, _context?: PresentationContext): Promise<AuthResult> {
    return this.sessions.authenticate(jwt);
  }

  /** For the auth hook, on routes marked `stepUp`: see {@link needsStepUp}. */
  needsStepUp(principal: Principal): boolean {
    return needsStepUp(principal, this.clock.now());
  }
}
