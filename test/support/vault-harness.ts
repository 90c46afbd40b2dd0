import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import type { Scope } from "../../src/domain/scopes.js";
import { buildApp } from "../../src/http/app.js";
import type { Environment, KeyManager } from "../../src/keys/key-manager.js";
import { createLogger } from "../../src/log/logger.js";
import type { Resolver } from "../../src/outbound/resolver.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { Clock } from "../../src/services/clock.js";
import type { Driver } from "./databases.js";

/** Every line the vault logged during a test, for log-scanning assertions. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(
      ...chunk
        .toString("utf8")
        .split("\n")
        .filter((l) => l !== ""),
    );
    done();
  }
  get text(): string {
    return this.lines.join("\n");
  }
}

export interface TestVault {
  readonly core: Core;
  readonly app: FastifyInstance;
  readonly logs: LogCapture;
  readonly dataDir: string;
  readonly tenantId: string;
  readonly adminKey: string;
  /** A new tenant with a key holding `scopes`. */
  newTenant(scopes: readonly Scope[]): Promise<{ tenantId: string; key: string }>;
  /** A new key for an existing tenant (a `pv_live_` key unless `environment` says test). */
  newKey(tenantId: string, scopes: readonly Scope[], environment?: Environment): Promise<string>;
  close(): Promise<void>;
}

/** A vault on the given driver with a temporary KEK, served through app.inject() (no listener). */
let tenantCount = 0;

export async function startTestVault(
  driver: Driver,
  options: {
    clock?: Clock;
    keyManager?: KeyManager;
    keyCacheTtlMs?: number;
    /** The outbound client's DNS resolver (forward proxy, event deliveries). */
    resolver?: Resolver;
    /** Extra PAYVAULT_* settings. */
    env?: Readonly<Record<string, string>>;
  } = {},
): Promise<TestVault> {
  const dataDir = await mkdtemp(join(tmpdir(), "payvault-test-"));
  const config = loadConfig(
    {
      PAYVAULT_DATA_DIR: dataDir,
      PAYVAULT_LOG_LEVEL: "info",
      // Suites fail authentications on purpose, all from 127.0.0.1: the limits and the backoff
      // are off unless a test turns them on (test/integration/rate-limit-http.test.ts does).
      PAYVAULT_RATE_LIMITS: "off",
      PAYVAULT_AUTH_BACKOFF: "off",
      ...options.env,
    },
    dataDir,
  );
  const database = await driver.open();
  const core = await openCore(config, {
    db: database.db,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.keyManager ? { keyManager: options.keyManager } : {}),
    ...(options.keyCacheTtlMs ? { keyCacheTtlMs: options.keyCacheTtlMs } : {}),
    ...(options.resolver ? { resolver: options.resolver } : {}),
  });
  // Inject-based tests reach the vault at this origin (capture sessions' issuer and audience).
  core.origin.learn("https://vault.test");
  const logs = new LogCapture();
  const app = buildApp(
    { ...core, logger: createLogger("info", logs) },
    { tls: undefined, corsOrigins: config.corsOrigins, trustedProxies: config.trustedProxies },
  );
  await app.ready();
  const boot = await bootstrapIfEmpty(core.db, core.tenants, core.apiKeys);
  if (boot === undefined) throw new Error("expected an empty store");
  const newKey = async (
    tenantId: string,
    scopes: readonly Scope[],
    environment: Environment = "live",
  ) =>
    (
      await core.apiKeys.create({
        tenantId,
        environment,
        name: "test",
        scopes,
        actor: "test",
      })
    ).secret;
  return {
    core,
    app,
    logs,
    dataDir,
    tenantId: boot.tenantId,
    adminKey: boot.apiKey,
    newKey,
    async newTenant(scopes) {
      const tenant = await core.tenants.create(`tenant-${++tenantCount}`, "test");
      return { tenantId: tenant.id, key: await newKey(tenant.id, scopes) };
    },
    async close() {
      await app.close();
      await core.close();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
