import { join } from "node:path";
import type { Config } from "../config/config.js";
import type { KeyManager } from "../keys/key-manager.js";
import { KeyRing, SYSTEM_KEY_OWNER } from "../keys/key-ring.js";
import { LocalKeyManager } from "../keys/local-key-manager.js";
import { ApiKeyService } from "../services/api-keys.js";
import { AuditSealer } from "../services/audit/audit-sealer.js";
import { AuditTrail } from "../services/audit/audit-trail.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import { IdempotencyService } from "../services/idempotency.js";
import { TenantService } from "../services/tenants.js";
import { TokenService } from "../services/tokens/token-service.js";
import { lockDataDir } from "../store/data-dir-lock.js";
import type { Database } from "../store/database.js";
import { migrate } from "../store/migrate.js";
import { openPgliteDatabase } from "../store/pglite-database.js";
import { openPostgresDatabase } from "../store/postgres-database.js";

/** Everything below the HTTP layer, wired: the composition root shared by the server and the CLI. */
export interface Core {
  readonly db: Database;
  readonly keyManager: KeyManager;
  readonly keys: KeyRing;
  readonly clock: Clock;
  readonly audit: AuditTrail;
  readonly sealer: AuditSealer;
  readonly tenants: TenantService;
  readonly apiKeys: ApiKeyService;
  readonly tokens: TokenService;
  readonly idempotency: IdempotencyService;
  close(): Promise<void>;
}

export interface CoreOverrides {
  readonly db?: Database;
  readonly keyManager?: KeyManager;
  readonly clock?: Clock;
}

/** Opens the configured store: PostgreSQL when DATABASE_URL is set, else PGlite in the data directory. */
export async function openStore(
  config: Config,
): Promise<{ db: Database; release: () => Promise<void> }> {
  if (config.databaseUrl !== undefined) {
    const db = await openPostgresDatabase({
      connectionString: config.databaseUrl,
      poolSize: config.dbPoolSize,
    });
    return { db, release: async () => undefined };
  }
  const unlock = await lockDataDir(config.dataDir);
  try {
    const db = await openPgliteDatabase(join(config.dataDir, "pgdata"));
    return { db, release: unlock };
  } catch (err) {
    await unlock();
    throw err;
  }
}

export async function openCore(config: Config, overrides: CoreOverrides = {}): Promise<Core> {
  const store =
    overrides.db === undefined
      ? await openStore(config)
      : { db: overrides.db, release: async () => undefined };
  const { db } = store;
  const clock = overrides.clock ?? systemClock;
  let keys: KeyRing | undefined;
  try {
    await migrate(db);
    const keyManager =
      overrides.keyManager ?? (await LocalKeyManager.open(config.kekFile, { create: true }));
    const kek = keyManager.describe();
    // The ring and the trail need each other: the ring audits each key it creates, the trail
    // MACs events with the ring's audit key.
    let audit: AuditTrail | undefined;
    keys = new KeyRing(db, keyManager, clock, {
      cacheTtlMs: 5 * 60_000,
      auditCreation: (key) => (audit as AuditTrail).keyCreated(key, kek),
    });
    audit = new AuditTrail(keys, clock);
    // The vault's own keys are loaded before anything else runs (they stay resident).
    await keys.activeKey(SYSTEM_KEY_OWNER, "audit");
    await keys.activeKey(SYSTEM_KEY_OWNER, "apikey");
    const sealer = new AuditSealer(db, keys, clock);
    const ring = keys;
    return {
      db,
      keyManager,
      keys,
      clock,
      audit,
      sealer,
      tenants: new TenantService(db, audit, clock),
      apiKeys: new ApiKeyService(db, keys, audit, clock, config.authCacheTtlMs),
      tokens: new TokenService(db, keys, audit, clock),
      idempotency: new IdempotencyService(db, keys, clock),
      async close() {
        await sealer.stop();
        ring.close();
        await keyManager.close();
        if (overrides.db === undefined) await db.close();
        await store.release();
      },
    };
  } catch (err) {
    keys?.close();
    if (overrides.db === undefined) await db.close().catch(() => undefined);
    await store.release();
    throw err;
  }
}
