import { SCOPES } from "../domain/scopes.js";
import type { Database } from "../store/database.js";
import { countTenants } from "../store/tenants-repo.js";
import type { ApiKeyService } from "./api-keys.js";
import type { TenantService } from "./tenants.js";

export interface BootstrapResult {
  readonly tenantId: string;
  readonly keyId: string;
  /** The admin API key, in full. Shown once; only its MAC is stored. */
  readonly apiKey: string;
}

/**
 * First start with an empty store: create the default tenant and an admin API key. Several
 * nodes starting together on one PostgreSQL serialise on an advisory lock, so only one creates
 * them. Returns undefined when the store already has tenants.
 */
export async function bootstrapIfEmpty(
  db: Database,
  tenants: TenantService,
  apiKeys: ApiKeyService,
): Promise<BootstrapResult | undefined> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(7302185533)");
    if ((await countTenants(tx)) > 0) return undefined;
    const tenant = await tenants.create("default", "system:bootstrap", tx);
    const { key, secret } = await apiKeys.create(
      {
        tenantId: tenant.id,
        environment: "live",
        name: "bootstrap admin",
        scopes: [...SCOPES],
        actor: "system:bootstrap",
      },
      tx,
    );
    return { tenantId: tenant.id, keyId: key.id, apiKey: secret };
  });
}
