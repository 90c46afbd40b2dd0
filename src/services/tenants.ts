import { newId } from "../crypto/random.js";
import type { Database, SqlClient } from "../store/database.js";
import type { TenantRow } from "../store/tenants-repo.js";
import { findTenant, insertTenant, listTenants } from "../store/tenants-repo.js";
import type { AuditTrail } from "./audit/audit-trail.js";
import type { Clock } from "./clock.js";

export interface TenantView {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
}

const toView = (row: TenantRow): TenantView => ({
  id: row.id,
  name: row.name,
  createdAt: row.created_at,
});

/** Tenants own tokens, API keys and their own data keys (DEKs are per tenant and purpose). */
export class TenantService {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async create(name: string, actor: string, tx?: SqlClient): Promise<TenantView> {
    const row: TenantRow = { id: newId("ten"), name, created_at: this.clock.now() };
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

  async get(id: string): Promise<TenantView | undefined> {
    const row = await findTenant(this.db, id);
    return row === undefined ? undefined : toView(row);
  }
}
