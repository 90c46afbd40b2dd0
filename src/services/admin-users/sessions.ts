import { newId } from "../../crypto/random.js";
import { isScope } from "../../domain/scopes.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment } from "../../keys/key-manager.js";
import type { SessionRevokeReason, SessionWithUser } from "../../store/admin-users-repo.js";
import {
  consumeRefreshToken,
  findRefreshToken,
  findSessionWithUser,
  insertRefreshToken,
  insertSession,
  revokeSession,
  touchSession,
} from "../../store/admin-users-repo.js";
import type { Database, SqlClient } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { AuthResult, Principal } from "../principal.js";
import type { AccessTokens } from "./access-tokens.js";
import type { RequestOrigin } from "./attempts.js";
import type { CredentialKeys } from "./credentials.js";
import { parseSecret } from "./credentials.js";
import { SESSION_IDLE_MS, SESSION_MAX_MS, SESSION_TOUCH_INTERVAL_MS } from "./policy.js";

/** What login, refresh and step-up answer (RFC 6749 §5.1 member names in the HTTP layer). */
export interface TokenPair {
  readonly accessToken: string;
  readonly tokenType: "Bearer";
  /** Seconds; at most 900. */
  readonly expiresIn: number;
  /** Undefined after a step-up: the session's refresh token is unchanged. */
  readonly refreshToken: string | undefined;
}

export interface SessionOwner {
  readonly id: string;
  readonly tenant_id: string;
  readonly scopes: readonly string[];
}

type RefreshOutcome =
  | { readonly kind: "ok"; readonly refreshToken: string }
  | { readonly kind: "reused" };

/**
 * Sessions of admin users: one per login, the family of its rotating refresh tokens (each used
 * once; one presented again revokes the whole family, as a stolen token would be: RFC 9700
 * §4.14.2), idle for more than 15 minutes ends it (PCI DSS 8.2.8), and it never outlives 12 hours.
 */
export class AdminSessions {
  constructor(
    private readonly db: Database,
    private readonly credentials: CredentialKeys,
    private readonly tokens: AccessTokens,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  /** Opens a session in `tx` (the login's transaction) and returns its first refresh token. */
  async open(
    tx: SqlClient,
    user: SessionOwner,
    environment: Environment,
    origin: RequestOrigin,
  ): Promise<{ sessionId: string; refreshToken: string }> {
    const now = this.clock.now();
    const sessionId = newId("ses");
    await insertSession(tx, {
      id: sessionId,
      user_id: user.id,
      environment,
      ip: origin.ip,
      created_at: now,
      last_seen_at: now,
      mfa_at: now,
      revoked_at: null,
      revoke_reason: null,
    });
    const refreshToken = await this.newRefreshToken(tx, sessionId, now);
    return { sessionId, refreshToken };
  }

  async accessToken(
    user: SessionOwner,
    sessionId: string,
  ): Promise<{ token: string; expiresIn: number }> {
    return this.tokens.issue({
      userId: user.id,
      tenantId: user.tenant_id,
      sessionId,
      scopes: user.scopes,
    });
  }

  /**
   * Exchanges a refresh token for a new pair. The token is spent atomically; presenting a spent
   * one revokes its session (every token of the family) and is audited.
   */
  async refresh(token: string, origin: RequestOrigin): Promise<TokenPair> {
    const presented = parseSecret("refresh", token);
    const row = presented === undefined ? undefined : await findRefreshToken(this.db, presented.id);
    const matches =
      presented !== undefined &&
      (await this.credentials.matches("refresh", presented, row?.token_mac));
    const session =
      matches && row !== undefined ? await findSessionWithUser(this.db, row.session_id) : undefined;
    if (row === undefined || session === undefined) {
      return this.refuse(undefined, "unknown_token", origin, "REFRESH_TOKEN_INVALID");
    }
    const now = this.clock.now();
    if (row.used_at !== null) return this.reused(session, origin);
    const refusal =
      sessionRefusal(session, now) ?? (row.expires_at <= now ? "token_expired" : undefined);
    if (refusal !== undefined) {
      if (refusal === "idle") await this.revoke(session.id, "idle");
      const code = EXPIRED.has(refusal) ? "SESSION_EXPIRED" : "REFRESH_TOKEN_INVALID";
      return this.refuse(session, refusal, origin, code);
    }
    const outcome = await this.db.transaction(async (tx): Promise<RefreshOutcome> => {
      if (!(await consumeRefreshToken(tx, row.id, now))) return { kind: "reused" };
      const refreshToken = await this.newRefreshToken(tx, session.id, now, session.created_at);
      await touchSession(tx, session.id, now, now);
      await this.audit.record(tx, {
        tenantId: session.tenant_id,
        actor: session.user_id,
        action: "auth.refresh",
        objectId: session.id,
        outcome: "success",
        details: { ip: origin.ip },
      });
      return { kind: "ok", refreshToken };
    });
    // Two requests raced with one token: the loser is a reuse, as a replayed token would be.
    if (outcome.kind === "reused") return this.reused(session, origin);
    const access = await this.accessToken(
      { id: session.user_id, tenant_id: session.tenant_id, scopes: session.scopes },
      session.id,
    );
    return {
      accessToken: access.token,
      tokenType: "Bearer",
      expiresIn: access.expiresIn,
      refreshToken: outcome.refreshToken,
    };
  }

  /** Ends the caller's session: its access and refresh tokens stop working at once. */
  async logout(principal: Principal, origin: RequestOrigin): Promise<void> {
    const sessionId = userSession(principal);
    await this.db.transaction(async (tx) => {
      await revokeSession(tx, sessionId, this.clock.now(), "logout");
      await this.audit.record(tx, {
        tenantId: principal.tenantId,
        actor: principal.keyId,
        action: "auth.logout",
        objectId: sessionId,
        outcome: "success",
        details: { ip: origin.ip },
      });
    });
  }

  /**
   * Authenticates an access token: signature, type, issuer, audience and expiry first, then the
   * session it names, read on every request so revocation, disabling and idleness take effect at
   * once. `last_seen_at` is written at most once a minute.
   */
  async authenticate(jwt: string): Promise<AuthResult> {
    const check = await this.tokens.verify(jwt);
    if (!check.ok) return { ok: false, reason: check.reason, keyId: undefined };
    const session = await findSessionWithUser(this.db, check.sessionId);
    if (session === undefined || session.user_id !== check.userId) {
      return { ok: false, reason: "invalid", keyId: undefined };
    }
    const failure = { keyId: session.user_id, tenantId: session.tenant_id } as const;
    const now = this.clock.now();
    const refusal = sessionRefusal(session, now);
    if (refusal === "idle") {
      await this.revoke(session.id, "idle");
      return { ok: false, reason: "session_expired", ...failure };
    }
    if (refusal !== undefined && EXPIRED.has(refusal)) {
      return { ok: false, reason: "session_expired", ...failure };
    }
    if (refusal !== undefined) return { ok: false, reason: "revoked", ...failure };
    if (now.getTime() - session.last_seen_at.getTime() >= SESSION_TOUCH_INTERVAL_MS) {
      await touchSession(
        this.db,
        session.id,
        now,
        new Date(now.getTime() - SESSION_TOUCH_INTERVAL_MS),
      );
    }
    return {
      ok: true,
      principal: {
        kind: "user",
        tenantId: session.tenant_id,
        keyId: session.user_id,
        environment: session.environment,
        scopes: new Set(session.scopes.filter(isScope)),
        sessionId: session.id,
        mfaAt: session.mfa_at,
      },
    };
  }

  private async newRefreshToken(
    tx: SqlClient,
    sessionId: string,
    now: Date,
    sessionStart: Date = now,
  ): Promise<string> {
    const issued = await this.credentials.issue("refresh");
    await insertRefreshToken(tx, {
      id: issued.id,
      session_id: sessionId,
      token_mac: issued.mac,
      issued_at: now,
      expires_at: new Date(sessionStart.getTime() + SESSION_MAX_MS),
      used_at: null,
    });
    return issued.token;
  }

  private async revoke(sessionId: string, reason: SessionRevokeReason): Promise<void> {
    await revokeSession(this.db, sessionId, this.clock.now(), reason);
  }

  private async reused(session: SessionWithUser, origin: RequestOrigin): Promise<never> {
    await this.db.transaction(async (tx) => {
      const revoked = await revokeSession(tx, session.id, this.clock.now(), "refresh_reuse");
      await this.audit.record(tx, {
        tenantId: session.tenant_id,
        actor: session.user_id,
        action: "auth.refresh_reuse",
        objectId: session.id,
        outcome: "denied",
        details: { ip: origin.ip, family_revoked: revoked },
      });
    });
    throw new VaultError("REFRESH_TOKEN_INVALID");
  }

  private async refuse(
    session: SessionWithUser | undefined,
    reason: string,
    origin: RequestOrigin,
    code: "REFRESH_TOKEN_INVALID" | "SESSION_EXPIRED",
  ): Promise<never> {
    await this.audit.record(this.db, {
      tenantId: session?.tenant_id,
      actor: session?.user_id ?? "anonymous",
      action: "auth.refresh",
      objectId: session?.id,
      outcome: "failure",
      details: { ip: origin.ip, reason },
    });
    throw new VaultError(code);
  }
}

/** Refusals that mean the session ran out (SESSION_EXPIRED) rather than was revoked. */
const EXPIRED = new Set(["idle", "idle_revoked", "too_old"]);

/** Why a session can no longer be used, or undefined when it can. */
function sessionRefusal(session: SessionWithUser, now: Date): string | undefined {
  if (session.revoked_at !== null) {
    return session.revoke_reason === "idle" ? "idle_revoked" : "session_revoked";
  }
  if (session.disabled_at !== null) return "user_disabled";
  if (now.getTime() - session.created_at.getTime() > SESSION_MAX_MS) return "too_old";
  if (now.getTime() - session.last_seen_at.getTime() > SESSION_IDLE_MS) return "idle";
  return undefined;
}

/** The caller's session: only people have one (an API key is refused). */
export function userSession(principal: Principal): string {
  if (principal.kind !== "user" || principal.sessionId === undefined) {
    throw new VaultError("INSUFFICIENT_SCOPE");
  }
  return principal.sessionId;
}
