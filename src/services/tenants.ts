import { newId } from "../crypto/random.js";
import type { Database, SqlClient } from "../store/database.js";
import type { TenantRow } from "../store/tenants-repo.js";
import {
  findTenant,
  insertTenant,
  listTenants,
  updateTenantRetention,
} from "../store/tenants-repo.js";
import type { AuditTrail } from "./audit/audit-trail.js";
import type { Clock } from "./clock.js";

export interface TenantView {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly retentionDays: number;
}

/** The source documents' retention: 30 days unless the tenant or the token says otherwise. */
export const DEFAULT_RETENTION_DAYS = 30;
export const MAX_RETENTION_DAYS = 3660;
/** How long a node trusts its copy of a tenant's retention policy. */
const RETENTION_CACHE_MS = 5_000;

const toView = (row: TenantRow): TenantView => ({
  id: row.id,
  name: row.name,
  createdAt: row.created_at,
  retentionDays: row.retention_days,
});

/** Tenants own tokens, API keys and their own data keys (DEKs are per tenant and purpose). */
export class TenantService {
  private readonly retention = new Map<string, { days: number; until: number }>();

  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async create(name: string, actor: string, tx?: SqlClient): Promise<TenantView> {
    const row: TenantRow = {
      id: newId("ten"),
      name,
      created_at: this.clock.now(),
      retention_days: DEFAULT_RETENTION_DAYS,
    };
    const write = async (client: SqlClient) => {
      await insertTenant(client, row);
      await this.audit.record(client, {
        tenantId: row.id,
        actor,
        action: "tenant.create",
        objectId: row.id,
        outcome: "success",
        details: { name },
      });
    };
    await (tx === undefined ? this.db.transaction(write) : write(tx));
    return toView(row);
  }

  async list(): Promise<TenantView[]> {
    return (await listTenants(this.db)).map(toView);
  }

  /** The tenant's retention policy in days, cached briefly (it is read on every tokenize). */
  async retentionDays(id: string): Promise<number> {
    const cached = this.retention.get(id);
    if (cached !== undefined && cached.until > Date.now()) return cached.days;
    const days = (await findTenant(this.db, id))?.retention_days ?? DEFAULT_RETENTION_DAYS;
    this.retention.set(id, { days, until: Date.now() + RETENTION_CACHE_MS });
    return days;
  }

  /** Changes the retention policy for tokens created from now on (PCI DSS 3.2.1). */
  async setRetention(id: string, days: number, actor: string): Promise<TenantView> {
    if (!Number.isInteger(days) || days < 1 || days > MAX_RETENTION_DAYS) {
      throw new RangeError(
        `retention must be a whole number of days from 1 to ${MAX_RETENTION_DAYS}`,
      );
    }
    const row = await this.db.transaction(async (tx) => {
      if (!(await updateTenantRetention(tx, id, days))) return undefined;
      await this.audit.record(tx, {
        tenantId: id,
        actor,
        action: "tenant.update",
        objectId: id,
        outcome: "success",
        details: { retention_days: days },
      });
      return findTenant(tx, id);
    });
    if (row === undefined) throw new RangeError(`no tenant ${id}`);
    this.retention.delete(id);
    return toView(row);
  }

  async get(id: string): Promise<TenantView | undefined> {
    const row = await findTenant(this.db, id);
    return row === undefined ? undefined : toView(row);
  }
}
