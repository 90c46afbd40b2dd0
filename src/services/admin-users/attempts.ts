import type { AuditAction } from "../../audit/audit-event.js";
import type { AdminUserRow } from "../../store/admin-users-repo.js";
import { recordFailedAttempt } from "../../store/admin-users-repo.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import { LOCKOUT_MS, LOCKOUT_THRESHOLD } from "./policy.js";

/** Where a request came from: recorded with every event (PCI DSS 10.2.2). */
export interface RequestOrigin {
  readonly ip: string;
}

/**
 * Failed authentications of admin users: each is audited with its reason (for the audit trail
 * only; PCI DSS 10.2.1.4), and counted against the user, whose 10th consecutive failure locks
 * the account for 30 minutes (PCI DSS 8.3.4), which is audited too. An unknown username is
 * audited as `anonymous` and never recorded: it is text of the caller's choosing.
 */
export class AuthAttempts {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async failed(
    user: AdminUserRow | undefined,
    action: AuditAction,
    reason: string,
    origin: RequestOrigin,
  ): Promise<void> {
    const now = this.clock.now();
    await this.db.transaction(async (tx) => {
      const counted =
        user === undefined
          ? { attempts: 0, locked: false }
          : await recordFailedAttempt(
              tx,
              user.id,
              now,
              LOCKOUT_THRESHOLD,
              new Date(now.getTime() + LOCKOUT_MS),
            );
      await this.audit.record(tx, {
        tenantId: user?.tenant_id,
        actor: user?.id ?? "anonymous",
        action,
        objectId: user?.id,
        outcome: "failure",
        details: { ip: origin.ip, reason, failed_attempts: counted.attempts },
      });
      if (counted.locked && user !== undefined) {
        await this.audit.record(tx, {
          tenantId: user.tenant_id,
          actor: user.id,
          action: "auth.lockout",
          objectId: user.id,
          outcome: "denied",
          details: {
            ip: origin.ip,
            failed_attempts: LOCKOUT_THRESHOLD,
            locked_until: new Date(now.getTime() + LOCKOUT_MS).toISOString(),
          },
        });
      }
    });
  }
}

/** Why a known user may not authenticate at all right now, or undefined. */
export function accountBlock(user: AdminUserRow, now: Date): string | undefined {
  if (user.disabled_at !== null) return "disabled";
  if (user.enrolled_at === null) return "not_enrolled";
  if (user.locked_until !== null && user.locked_until > now) return "locked";
  return undefined;
}
