import type { AuditEventRow } from "../audit/audit-event.js";
import { newId } from "../crypto/random.js";
import { epochEnd } from "../keys/epoch.js";
import { insertAuditEvent } from "../store/audit-repo.js";
import { listDataKeys } from "../store/data-keys-repo.js";
import type { Database } from "../store/database.js";
import type { RetentionDueRow } from "../store/key-lifecycle-repo.js";
import {
  deleteExpiredTokens,
  findEmptyEpochKeys,
  findExpiredTokens,
  insertPurgeRun,
  persistentCounts,
  purgeRunsSince,
  retentionDue,
} from "../store/key-lifecycle-repo.js";
import type { AuditTrail } from "./audit/audit-trail.js";
import type { Clock } from "./clock.js";
import type { KeyLifecycle } from "./keys/key-lifecycle.js";
import { turnEventLoop } from "./turn-event-loop.js";

export interface PurgeResult {
  readonly tokensPurged: number;
  readonly keysDestroyed: readonly string[];
}

export interface RetentionReport {
  readonly generated_at: string;
  readonly since: string;
  readonly horizon: string;
  /** Tokens whose retention ends before the horizon (including any already overdue). */
  readonly due: readonly (Omit<RetentionDueRow, "first_expiry" | "last_expiry"> & {
    readonly first_expiry: string;
    readonly last_expiry: string;
    readonly overdue: boolean;
  })[];
  readonly purged: readonly {
    id: string;
    actor: string;
    ran_at: string;
    tokens_purged: number;
    keys_destroyed: number;
  }[];
  readonly destroyed_keys: readonly {
    id: string;
    owner: string;
    environment: string;
    epoch: string;
    destroyed_at: string;
  }[];
  readonly persistent: readonly { tenant_id: string; environment: string; tokens: number }[];
}

const PURGE_BATCH = 1000;
const DAY_MS = 86_400_000;

/**
 * Retention and secure deletion (PCI DSS 3.2.1): deletes tokens past their retention, then
 * destroys each month epoch's PAN key once the epoch is over and no token is left under it, so
 * every remnant of those tokens (dead tuples, WAL, backups) becomes undecryptable
 * (crypto-shredding, 3.7.5). The report is the quarterly review 3.2.1 asks for.
 */
export class RetentionService {
  constructor(
    private readonly db: Database,
    private readonly lifecycle: KeyLifecycle,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async purge(actor: string): Promise<PurgeResult> {
    const now = this.clock.now();
    let tokensPurged = 0;
    for (;;) {
      const batch = await findExpiredTokens(this.db, now, PURGE_BATCH);
      if (batch.length === 0) break;
      const perTenant = new Map<string, number>();
      for (const row of batch)
        perTenant.set(row.tenant_id, (perTenant.get(row.tenant_id) ?? 0) + 1);
      const events: AuditEventRow[] = [];
      for (const [tenantId, count] of perTenant) {
        events.push(
          await this.audit.build({
            tenantId,
            actor,
            action: "token.purge",
            objectId: undefined,
            outcome: "success",
            details: { reason: "retention", count, through: now.toISOString() },
          }),
        );
      }
      // The rows and their purge events go together, or not at all.
      tokensPurged += await this.db.transaction(async (tx) => {
        const deleted = await deleteExpiredTokens(tx, batch, now);
        for (const event of events) await insertAuditEvent(tx, event);
        return deleted;
      });
      await turnEventLoop();
    }
    const keysDestroyed: string[] = [];
    for (const key of await findEmptyEpochKeys(this.db)) {
      const end = epochEnd(key.epoch);
      if (end === null || end.getTime() > now.getTime()) continue;
      // Found empty a moment ago; destroyKey checks again with the key row locked, so a token
      // written (or moved) under it since keeps it (PCI DSS 3.7.5: never shredded under data).
      const { destroyed } = await this.lifecycle.destroyKey(
        key.id,
        actor,
        "retention: epoch over and empty (crypto-shredding)",
        { retention: true },
      );
      if (destroyed) keysDestroyed.push(key.id);
    }
    await insertPurgeRun(this.db, {
      id: newId("purge"),
      actor,
      ranAt: now,
      tokensPurged,
      keysDestroyed: keysDestroyed.length,
    });
    return { tokensPurged, keysDestroyed };
  }

  /** What is due (before `horizonDays` from now), purged and destroyed since `sinceDays` ago. */
  async report(
    options: { sinceDays?: number; horizonDays?: number } = {},
  ): Promise<RetentionReport> {
    const now = this.clock.now();
    const since = new Date(now.getTime() - (options.sinceDays ?? 92) * DAY_MS);
    const horizon = new Date(now.getTime() + (options.horizonDays ?? 92) * DAY_MS);
    const keys = await listDataKeys(this.db);
    return {
      generated_at: now.toISOString(),
      since: since.toISOString(),
      horizon: horizon.toISOString(),
      due: (await retentionDue(this.db, horizon)).map((row) => ({
        ...row,
        first_expiry: row.first_expiry.toISOString(),
        last_expiry: row.last_expiry.toISOString(),
        overdue: row.first_expiry.getTime() <= now.getTime(),
      })),
      purged: (await purgeRunsSince(this.db, since)).map((run) => ({
        ...run,
        ran_at: run.ran_at.toISOString(),
      })),
      destroyed_keys: keys
        .filter((k) => k.destroyed_at !== null && k.destroyed_at.getTime() >= since.getTime())
        .map((k) => ({
          id: k.id,
          owner: k.owner,
          environment: k.environment,
          epoch: k.epoch,
          destroyed_at: (k.destroyed_at as Date).toISOString(),
        })),
      persistent: await persistentCounts(this.db),
    };
  }
}
