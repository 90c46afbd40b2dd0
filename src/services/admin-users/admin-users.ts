import { newId } from "../../crypto/random.js";
import type { Role, Scope } from "../../domain/scopes.js";
import { expandScopes, isRole, isScope } from "../../domain/scopes.js";
import { VaultError } from "../../errors/registry.js";
import type { AdminUserRow } from "../../store/admin-users-repo.js";
import {
  disableAdminUser,
  findAdminUser,
  insertAdminUser,
  insertEnrollmentToken,
  listAdminUsers,
  revokeUserSessions,
  unlockAdminUser,
} from "../../store/admin-users-repo.js";
import type { Database, SqlClient } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { CredentialKeys } from "./credentials.js";
import { ENROLLMENT_TTL_MS } from "./policy.js";
import { normalizeUsername } from "./username.js";

/** Who acts on admin users: a tenant administrator (API key or user), or the operator's CLI. */
export interface AdminActor {
  /** The audit actor: a key id, a user id, or `cli:<account>`. */
  readonly actor: string;
  readonly ip: string;
  /** The scopes the actor may hand on (PCI DSS 7.2.2); "any" for the local CLI. */
  readonly grantable: ReadonlySet<Scope> | "any";
}

export type AdminUserStatus = "pending" | "active" | "locked" | "disabled";

export interface AdminUserView {
  readonly id: string;
  readonly tenantId: string;
  readonly username: string;
  readonly roles: readonly Role[];
  readonly scopes: readonly Scope[];
  readonly status: AdminUserStatus;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly enrolledAt: Date | null;
  readonly lockedUntil: Date | null;
  readonly disabledAt: Date | null;
}

export function statusOf(row: AdminUserRow, now: Date): AdminUserStatus {
  if (row.disabled_at !== null) return "disabled";
  if (row.enrolled_at === null) return "pending";
  if (row.locked_until !== null && row.locked_until > now) return "locked";
  return "active";
}

function toView(row: AdminUserRow, now: Date): AdminUserView {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    username: row.username,
    roles: row.roles.filter(isRole),
    scopes: row.scopes.filter(isScope),
    status: statusOf(row, now),
    createdAt: row.created_at,
    createdBy: row.created_by,
    enrolledAt: row.enrolled_at,
    lockedUntil: row.locked_until !== null && row.locked_until > now ? row.locked_until : null,
    disabledAt: row.disabled_at,
  };
}

function invalid(field: string, code: string, message: string): VaultError {
  return new VaultError("VALIDATION_FAILED", { errors: [{ field, code, message }] });
}

/**
 * Admin users as a tenant administrator sees them: create (roles expanded to scopes once, and
 * only scopes the creator holds: PCI DSS 7.2.2), list, disable (ends every session at once) and
 * unlock. Users belong to the creator's tenant; another tenant's user is a 404.
 */
export class AdminUsers {
  constructor(
    private readonly db: Database,
    private readonly credentials: CredentialKeys,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  /** Creates a user and returns the one-time enrollment token (24 h) that lets them enroll. */
  async create(
    by: AdminActor,
    input: { tenantId: string; username: string; roles: readonly string[] },
  ): Promise<{ user: AdminUserView; enrollmentToken: string; enrollmentExpiresAt: Date }> {
    const username = normalizeUsername(input.username);
    if (username === undefined) {
      throw invalid(
        "username",
        "INVALID_FORMAT",
        "Use 3 to 64 letters, digits and . _ @ + - (starting with a letter or digit).",
      );
    }
    const roles = [...new Set(input.roles)];
    if (roles.length === 0 || !roles.every(isRole)) {
      throw invalid("roles", "INVALID_VALUE", "Give one or more known roles.");
    }
    const scopes = expandScopes(roles);
    if (by.grantable !== "any") {
      const held = by.grantable;
      if (!scopes.every((scope) => held.has(scope))) throw new VaultError("SCOPE_NOT_GRANTABLE");
    }
    const now = this.clock.now();
    const row: AdminUserRow = {
      id: newId("usr"),
      tenant_id: input.tenantId,
      username,
      roles,
      scopes,
      password_hash: null,
      password_changed_at: null,
      totp_secret: null,
      totp_last_step: null,
      failed_attempts: 0,
      locked_until: null,
      enrolled_at: null,
      disabled_at: null,
      created_at: now,
      created_by: by.actor,
    };
    const enrollment = await this.credentials.issue("enroll");
    const expiresAt = new Date(now.getTime() + ENROLLMENT_TTL_MS);
    await this.db.transaction(async (tx) => {
      if (!(await insertAdminUser(tx, row))) throw new VaultError("ADMIN_USER_EXISTS");
      await insertEnrollmentToken(tx, {
        id: enrollment.id,
        user_id: row.id,
        token_mac: enrollment.mac,
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
      });
      await this.audit.record(tx, {
        tenantId: row.tenant_id,
        actor: by.actor,
        action: "admin_user.create",
        objectId: row.id,
        outcome: "success",
        details: { ip: by.ip, roles: roles.join(" "), scopes: scopes.join(" ") },
      });
    });
    return {
      user: toView(row, now),
      enrollmentToken: enrollment.token,
      enrollmentExpiresAt: expiresAt,
    };
  }

  async list(tenantId?: string): Promise<AdminUserView[]> {
    const now = this.clock.now();
    return (await listAdminUsers(this.db, tenantId)).map((row) => toView(row, now));
  }

  /** A user of the tenant (`undefined`: of any tenant, for the CLI); else ADMIN_USER_NOT_FOUND. */
  async get(tenantId: string | undefined, id: string): Promise<AdminUserView> {
    return toView(await this.find(this.db, tenantId, id), this.clock.now());
  }

  /** Disables a user and revokes every session at once (PCI DSS 8.2.6, 8.2.5). */
  async disable(by: AdminActor, tenantId: string | undefined, id: string): Promise<void> {
    const now = this.clock.now();
    await this.db.transaction(async (tx) => {
      const row = await this.find(tx, tenantId, id);
      checkOutranks(by, row, "system");
      if (!(await disableAdminUser(tx, row.tenant_id, id, now))) return;
      const sessions = await revokeUserSessions(tx, id, now, "disabled");
      await this.audit.record(tx, {
        tenantId: row.tenant_id,
        actor: by.actor,
        action: "admin_user.disable",
        objectId: id,
        outcome: "success",
        details: { ip: by.ip, sessions_revoked: sessions.length },
      });
    });
  }

  /** Lifts a lockout (PCI DSS 8.3.4: "or until the user's identity is confirmed"). */
  async unlock(by: AdminActor, tenantId: string | undefined, id: string): Promise<string> {
    return this.db.transaction(async (tx) => {
      const row = await this.find(tx, tenantId, id);
      checkOutranks(by, row, "all");
      await unlockAdminUser(tx, row.tenant_id, id);
      await this.audit.record(tx, {
        tenantId: row.tenant_id,
        actor: by.actor,
        action: "admin_user.unlock",
        objectId: id,
        outcome: "success",
        details: { ip: by.ip },
      });
      return row.username;
    });
  }

  private async find(
    db: SqlClient,
    tenantId: string | undefined,
    id: string,
  ): Promise<AdminUserRow> {
    const row = await findAdminUser(db, id);
    // Another tenant's user is the same 404 as a missing one.
    if (row === undefined || (tenantId !== undefined && row.tenant_id !== tenantId)) {
      throw new VaultError("ADMIN_USER_NOT_FOUND");
    }
    return row;
  }
}

/**
 * PCI DSS 7.2.2 for acting on another user. Unlocking needs every scope the user holds (`all`):
 * lifting a lockout lets guessing go on, so a tenant administrator cannot do it for a more
 * privileged user. Disabling is the safe direction: any tenant user can be disabled by its
 * tenant's administrator, but a user holding a system scope only by a holder of it (`system`).
 */
function checkOutranks(by: AdminActor, target: AdminUserRow, needs: "all" | "system"): void {
  if (by.grantable === "any") return;
  const held = by.grantable;
  const needed = target.scopes.filter((scope) => needs === "all" || scope === "sys:admin");
  if (!needed.every((scope) => held.has(scope as Scope)))
    throw new VaultError("SCOPE_NOT_GRANTABLE");
}
