import { readFileSync } from "node:fs";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import type { Config } from "../config/config.js";
import { CvcStore } from "../ephemeral/cvc-store.js";
import type { EphemeralStore } from "../ephemeral/ephemeral-store.js";
import { openEphemeralStore } from "../ephemeral/open-ephemeral-store.js";
import { ReplayGuard } from "../ephemeral/replay-guard.js";
import type { KeyManager } from "../keys/key-manager.js";
import { DEFAULT_KEY_POLICY, KeyRing, SYSTEM_KEY_OWNER } from "../keys/key-ring.js";
import { LocalKeyManager } from "../keys/local-key-manager.js";
import type { SealStatus } from "../keys/seal.js";
import type { Logger } from "../log/logger.js";
import { VaultMetrics } from "../metrics/metrics.js";
import type { Resolver } from "../outbound/resolver.js";
import { createSafeFetch, type SafeFetch } from "../outbound/safe-fetch.js";
import { countByState, DEFAULT_RETRY_POLICY } from "../queue/queue-table.js";
import { QueueWorker } from "../queue/queue-worker.js";
import type { BackoffAuthThrottle } from "../ratelimit/auth-throttle.js";
import type { RateLimits } from "../ratelimit/open-rate-limits.js";
import { openRateLimits } from "../ratelimit/open-rate-limits.js";
import type { RouteRateLimiter } from "../ratelimit/route-rate-limiter.js";
import { AdminAuth } from "../services/admin-users/admin-auth.js";
import { ApiKeyService } from "../services/api-keys.js";
import { AuditSealer } from "../services/audit/audit-sealer.js";
import { AuditTrail } from "../services/audit/audit-trail.js";
import { capturePayloadOpener } from "../services/capture/capture-payload.js";
import { CaptureService } from "../services/capture/capture-service.js";
import { CaptureSessions } from "../services/capture/capture-sessions.js";
import { NestedJwt } from "../services/capture/nested-jwt.js";
import { PublicOrigin } from "../services/capture/public-origin.js";
import { TenantJoseKeys } from "../services/capture/tenant-jose-keys.js";
import {
  ACCESS_TOKEN_ALGS,
  DEFAULT_JOSE_OVERLAP_MS,
  VaultJoseKeys,
} from "../services/capture/vault-jose-keys.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import { ForwardService } from "../services/forward/forward-service.js";
import { IdempotencyService } from "../services/idempotency.js";
import { CeremonyService } from "../services/keys/ceremonies.js";
import { KeyLifecycle } from "../services/keys/key-lifecycle.js";
import { RetentionService } from "../services/retention.js";
import { TenantService } from "../services/tenants.js";
import { TokenService } from "../services/tokens/token-service.js";
import { EventDestinations } from "../services/webhooks/outbound/event-destinations.js";
import { WebhookService } from "../services/webhooks/webhook-service.js";
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
  readonly lifecycle: KeyLifecycle;
  readonly retention: RetentionService;
  readonly ceremonies: CeremonyService;
  /** The vault's origin as clients reach it (learnt from the listener unless configured). */
  readonly origin: PublicOrigin;
  /** The vault's capture encryption keys and session signing key. */
  readonly joseKeys: VaultJoseKeys;
  readonly captureSessions: CaptureSessions;
  /** The capture frame's tokenize: session, encrypted payload, replay check, tokenize. */
  readonly capture: CaptureService;
  /** Public keys tenants register for signed (nested JWT) requests and encrypted responses. */
  readonly tenantJoseKeys: TenantJoseKeys;
  readonly nestedJwt: NestedJwt;
  /** Admin users: management, enrolment, login, sessions, step-up (docs/admin-auth.md). */
  readonly adminAuth: AdminAuth;
  /** The vault's access-token signing key (EdDSA), apart from the capture keys. */
  readonly accessTokenKeys: VaultJoseKeys;
  /** Short-lived shared state: in memory, or Redis when REDIS_URL is set (several nodes). */
  readonly ephemeral: EphemeralStore;
  /** CVCs between capture and authorization (PCI DSS 3.3.1.2). */
  readonly cvcs: CvcStore;
  /** One use per `jti` of capture payloads and nested JWTs. */
  readonly replay: ReplayGuard;
  /** Route-class token buckets (undefined when PAYVAULT_RATE_LIMITS=off): Redis or memory. */
  readonly rateLimiter: RouteRateLimiter | undefined;
  /** Exponential backoff of failed authentications per address and credential. */
  readonly authThrottle: BackoffAuthThrottle | undefined;
  /** Prometheus metrics of this vault (src/metrics/metrics.ts). */
  readonly metrics: VaultMetrics;
  /** The SSRF-safe HTTPS client of the forward proxy and the event deliveries (docs/outbound.md). */
  readonly safeFetch: SafeFetch;
  /** The forward proxy: detokenize into a request to an allowlisted processor (docs/forwarding.md). */
  readonly forward: ForwardService;
  /** Webhook intake endpoints, received events and their processing (docs/webhooks.md). */
  readonly webhooks: WebhookService;
  /** Merchants' event destinations and the deliveries to them (docs/webhooks.md). */
  readonly events: EventDestinations;
  /**
   * Starts the background queues (event processing, deliveries, the token-event dispatcher);
   * `payvault serve` calls it, tests drive the passes themselves. Stopped by close().
   */
  startWorkers(logger: Logger): void;
  /** Sealed-mode status (always unsealed for KeyManagers without shares). */
  sealStatus(): SealStatus;
  /**
   * One custodian's unseal share (PCI DSS 3.6.1.2). When the threshold is reached the vault
   * unseals: its own keys are loaded and `vault.unseal` is audited.
   */
  submitUnsealShare(share: string): Promise<SealStatus>;
  close(): Promise<void>;
}

export interface CoreOverrides {
  readonly db?: Database;
  readonly keyManager?: KeyManager;
  readonly clock?: Clock;
  readonly keyCacheTtlMs?: number;
  /** The outbound client's DNS resolver (tests: a name that resolves to a refused address). */
  readonly resolver?: Resolver;
}

/** Opens the configured KeyManager (docs/key-management.md). The HSM and KMS clients load on demand. */
export async function openKeyManager(config: Config): Promise<KeyManager> {
  const km = config.keyManager;
  switch (km.kind) {
    case "local":
      return LocalKeyManager.open(config.kekFile, { create: true });
    case "pkcs11": {
      const { Pkcs11KeyManager } = await import("../keys/pkcs11-key-manager.js");
      return Pkcs11KeyManager.open({
        module: km.module,
        tokenLabel: km.tokenLabel,
        pin: km.pin,
        labelPrefix: km.keyLabel,
        create: true,
      });
    }
    case "aws-kms": {
      const { AwsKmsKeyManager } = await import("../keys/aws-kms-key-manager.js");
      return AwsKmsKeyManager.open({
        keyIds: km.keyIds,
        region: km.region,
        ...(km.endpoint === undefined ? {} : { endpoint: km.endpoint }),
      });
    }
  }
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
  let ephemeral: EphemeralStore | undefined;
  let rateLimits: RateLimits | undefined;
  try {
    await migrate(db);
    const keyManager = overrides.keyManager ?? (await openKeyManager(config));
    const sealable = keyManager instanceof LocalKeyManager ? keyManager : undefined;
    // The ring and the trail need each other: the ring audits each key it creates, the trail
    // MACs events with the ring's audit key.
    let audit: AuditTrail | undefined;
    keys = new KeyRing(db, keyManager, clock, {
      cacheTtlMs: overrides.keyCacheTtlMs ?? config.keyCacheTtlMs,
      policy: {
        ...DEFAULT_KEY_POLICY,
        cryptoperiodMs: {
          ...DEFAULT_KEY_POLICY.cryptoperiodMs,
          pan: config.dekCryptoperiodDays * 86_400_000,
        },
        maxUses: { pan: config.dekMaxUses, sad: config.dekMaxUses },
      },
      auditCreation: (key) => (audit as AuditTrail).keyCreated(key),
    });
    const trail = new AuditTrail(keys, clock);
    audit = trail;
    const ring = keys;
    // The vault's own keys are loaded before anything else runs (they stay resident); a sealed
    // vault loads them when it is unsealed.
    const loadSystemKeys = async () => {
      await ring.activeKey(SYSTEM_KEY_OWNER, "audit");
      await ring.activeKey(SYSTEM_KEY_OWNER, "apikey");
    };
    const status = (): SealStatus =>
      sealable?.sealStatus() ?? { sealed: false, threshold: 0, shares: 0, progress: 0 };
    let ready = !status().sealed;
    if (ready) await loadSystemKeys();
    let readying: Promise<void> | undefined;
    const becomeReady = (threshold: number): Promise<void> => {
      readying ??= (async () => {
        await loadSystemKeys();
        await trail.record(db, {
          tenantId: undefined,
          actor: "custodians",
          action: "vault.unseal",
          objectId: undefined,
          outcome: "success",
          details: { threshold },
        });
        ready = true;
      })().catch((err: unknown) => {
        readying = undefined;
        throw err;
      });
      return readying;
    };
    const sealer = new AuditSealer(db, keys, clock);
    const tenants = new TenantService(db, audit, clock);
    const lifecycle = new KeyLifecycle(db, keyManager, keys, audit, clock);
    const origin = new PublicOrigin(config.publicUrl);
    const joseKeys = new VaultJoseKeys(db, keys, audit, clock, {
      overlapMs: DEFAULT_JOSE_OVERLAP_MS,
      cryptoperiodMs: config.captureKeyDays * 86_400_000,
    });
    const shortLived = await openEphemeralStore({ redisUrl: config.redisUrl, clock });
    ephemeral = shortLived;
    const limits = await openRateLimits(config.rateLimits, clock);
    rateLimits = limits;
    const cvcs = new CvcStore(shortLived, keys);
    const tokens = new TokenService(db, keys, audit, clock, tenants, cvcs);

    const captureSessions = new CaptureSessions(db, joseKeys, audit, clock, () => origin.get());
    const tenantJoseKeys = new TenantJoseKeys(db, audit, clock);
    const accessTokenKeys = new VaultJoseKeys(db, keys, audit, clock, {
      overlapMs: DEFAULT_JOSE_OVERLAP_MS,
      cryptoperiodMs: config.captureKeyDays * 86_400_000,
      algs: ACCESS_TOKEN_ALGS,
    });
    const adminAuth = new AdminAuth({
      db,
      keys,
      audit,
      clock,
      accessTokenKeys,
      vaultOrigin: () => origin.get(),
    });
    const apiKeys = new ApiKeyService(db, keys, audit, clock, config.authCacheTtlMs);
    const replay = new ReplayGuard(shortLived, { clock });
    const metrics = new VaultMetrics();
    metrics.readQueuesWith(async () => ({
      intake: await countByState(db, "webhook_events"),
      delivery: await countByState(db, "event_deliveries"),
    }));
    // Made on first use: a private trust anchor (PAYVAULT_OUTBOUND_CA_FILE) may be written after
    // the vault starts (the sandbox processor makes its certificate when it first runs).
    let outbound: SafeFetch | undefined;
    const safeFetch: SafeFetch = (request, allowlist) => {
      outbound ??= createSafeFetch({
        connectTimeoutMs: config.outbound.connectTimeoutMs,
        timeoutMs: config.outbound.timeoutMs,
        maxResponseBytes: config.outbound.maxResponseBytes,
        allowLoopback: config.outbound.allowLoopback,
        ...(overrides.resolver === undefined ? {} : { resolver: overrides.resolver }),
        ...(config.outbound.caFile === undefined
          ? {}
          : // Added to the bundled roots, not replacing them: merchants' endpoints keep
            // public certificates while a private processor (or the sandbox) is trusted too.
            { ca: [...rootCertificates, readFileSync(config.outbound.caFile, "utf8")] }),
      });
      return outbound(request, allowlist);
    };
    const retry = { ...DEFAULT_RETRY_POLICY, maxAttempts: config.webhooks.maxAttempts };
    const events = new EventDestinations({
      db,
      keys,
      audit,
      clock,
      safeFetch,
      metrics,
      retry,
      allowLoopback: config.outbound.allowLoopback,
    });
    const webhooks = new WebhookService({
      db,
      keys,
      audit,
      clock,
      metrics,
      events,
      retry,
      maxBodyBytes: config.webhooks.maxBodyBytes,
      replay,
    });
    const workers: QueueWorker[] = [];
    return {
      db,
      keyManager,
      keys,
      clock,
      audit,
      sealer,
      tenants,
      apiKeys,
      tokens,
      idempotency: new IdempotencyService(db, keys, clock),
      lifecycle,
      retention: new RetentionService(db, lifecycle, audit, clock),
      ceremonies: new CeremonyService(db, keyManager, lifecycle, audit, clock),
      origin,
      joseKeys,
      captureSessions,
      capture: new CaptureService(
        captureSessions,
        capturePayloadOpener(joseKeys, clock),
        replay,
        shortLived,
        tokens,
        () => origin.get(),
        clock,
      ),
      ephemeral: shortLived,
      cvcs,
      replay,
      rateLimiter: limits.rateLimiter,
      authThrottle: limits.authThrottle,
      tenantJoseKeys,
      adminAuth,
      accessTokenKeys,
      nestedJwt: new NestedJwt(joseKeys, tenantJoseKeys, replay, clock, () => origin.get()),
      metrics,
      safeFetch,
      forward: new ForwardService({ db, keys, audit, clock, cvcs, safeFetch, metrics }),
      webhooks,
      events,
      startWorkers(logger) {
        if (workers.length > 0) return;
        const onError = (what: string) => (err: unknown) =>
          logger.error({ err_type: (err as Error).name }, `${what} failed`);
        workers.push(
          new QueueWorker(() => webhooks.processDue(), {
            idleMs: 1_000,
            onError: onError("webhook event processing"),
          }),
          new QueueWorker(() => events.deliverDue(), {
            idleMs: 1_000,
            onError: onError("event delivery"),
          }),
          new QueueWorker(() => events.dispatchTokenEvents(), {
            idleMs: 1_000,
            onError: onError("token event dispatch"),
          }),
        );
        const [processing] = workers;
        webhooks.onQueued(() => processing?.kick());
        for (const worker of workers) worker.start();
      },
      // Until its own keys are loaded and the unseal audited, the vault still reports sealed.
      sealStatus: () => (ready ? status() : { ...status(), sealed: true }),
      async submitUnsealShare(share) {
        if (sealable === undefined) return status();
        const after = sealable.submitShare(share);
        // The submission that unseals loads the keys and audits once; if that fails, the next
        // share posted (any custodian's, even one already counted) tries again.
        if (!after.sealed && !ready) await becomeReady(after.threshold);
        return ready ? after : { ...after, sealed: true };
      },
      async close() {
        await Promise.all(workers.map((worker) => worker.stop()));
        await sealer.stop();
        await apiKeys.close().catch(() => undefined);
        ring.close();
        await shortLived.close();
        await limits.close();
        await keyManager.close();
        if (overrides.db === undefined) await db.close();
        await store.release();
      },
    };
  } catch (err) {
    keys?.close();
    await ephemeral?.close().catch(() => undefined);
    await rateLimits?.close().catch(() => undefined);
    if (overrides.db === undefined) await db.close().catch(() => undefined);
    await store.release();
    throw err;
  }
}
