import type { FastifyInstance } from "fastify";
import type { Core } from "./app/core.js";
import { writeBootstrapKey } from "./cli/bootstrap-key.js";
import type { Config } from "./config/config.js";
import { buildApp } from "./http/app.js";
import type { TlsMaterial } from "./http/tls.js";
import { clientCertAuthFromFile, selfSignedLocalhost, tlsFromFiles } from "./http/tls.js";
import type { Logger } from "./log/logger.js";
import { bootstrapIfEmpty } from "./services/bootstrap.js";
import { scheduleMaintenance } from "./services/maintenance.js";

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly tls: TlsMaterial | undefined;
  stop(): Promise<void>;
}

async function tlsFor(config: Config): Promise<TlsMaterial | undefined> {
  if (config.insecureHttp) return undefined;
  const material =
    config.tls !== undefined
      ? await tlsFromFiles(config.tls.certFile, config.tls.keyFile)
      : await selfSignedLocalhost(config.dataDir);
  if (config.clientCertAuth === undefined) return material;
  return { ...material, clientAuth: await clientCertAuthFromFile(config.clientCertAuth) };
}

/**
 * Starts serving: bootstrap on an empty store, then TLS, the app, the audit sealer and the
 * idempotency sweeper. The listener only listens; everything else was wired in openCore.
 */
export async function startServer(
  core: Core,
  config: Config,
  logger: Logger,
): Promise<RunningServer> {
  // A sealed vault bootstraps after it is unsealed (the first start of `payvault init`).
  const bootstrapOnce = async () => {
    const bootstrap = await bootstrapIfEmpty(core.db, core.tenants, core.apiKeys);
    if (bootstrap !== undefined) await writeBootstrapKey(config.dataDir, bootstrap);
  };
  // TLS first: a bad certificate or client CA stops the start before anything is written.
  const tls = await tlsFor(config);
  if (!core.sealStatus().sealed) await bootstrapOnce();
  if (tls === undefined) {
    logger.warn(
      "PLAIN HTTP: PAYVAULT_INSECURE_HTTP=1 is set. Card data will cross the network unencrypted unless a TLS-terminating proxy sits in front of this vault (PCI DSS 4.2.1).",
    );
  }
  if (config.databaseUrl !== undefined && config.redisUrl === undefined) {
    logger.warn(
      "REDIS_URL is not set: CVCs and jti replay checks live in this process only. With several nodes behind one PostgreSQL, set REDIS_URL so every node shares them (docs/ephemeral-store.md).",
    );
  }
  core.apiKeys.startUsageFlush((err) =>
    logger.warn({ err_type: (err as Error).name }, "could not record API-key usage"),
  );
  const startSealer = () =>
    core.sealer.start(config.auditSealIntervalMs, (err) =>
      logger.error({ err_type: (err as Error).name }, "audit sealing failed"),
    );
  let serving = !core.sealStatus().sealed;
  let starting: Promise<void> | undefined;
  const app = buildApp(
    {
      ...core,
      logger,
      async submitUnsealShare(share) {
        const status = await core.submitUnsealShare(share);
        // Once per process; a failed bootstrap is tried again by the next share posted.
        if (!status.sealed && !serving) {
          // Shares completing at once share one start; a failed one is tried again by the next.
          starting ??= (async () => {
            await bootstrapOnce();
            startSealer();
            serving = true;
            logger.info("vault unsealed");
          })().finally(() => {
            starting = undefined;
          });
          await starting;
        }
        return status;
      },
    },
    { tls, corsOrigins: config.corsOrigins, trustedProxies: config.trustedProxies },
  );
  if (core.sealStatus().sealed) {
    logger.warn("the vault is SEALED: submit unseal shares (payvault unseal) to start serving");
  } else {
    startSealer();
  }
  const stopMaintenance = scheduleMaintenance(core, {
    intervalMs: config.maintenanceIntervalMs,
    autoReencrypt: config.autoReencrypt,
    onError: (err) =>
      logger.error({ err_type: (err as Error).name }, "scheduled key maintenance failed"),
  });
  const sweeper = setInterval(() => {
    core.idempotency.purgeExpired().catch(() => undefined);
  }, 60 * 60_000);
  sweeper.unref();
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  const url = `${tls === undefined ? "http" : "https"}://${config.host === "::" || config.host === "0.0.0.0" ? "localhost" : config.host}:${port}`;
  core.origin.learn(url);
  return {
    app,
    url,
    tls,
    async stop() {
      clearInterval(sweeper);
      await stopMaintenance();
      await app.close();
      await core.sealer.sealPending().catch(() => undefined);
    },
  };
}
