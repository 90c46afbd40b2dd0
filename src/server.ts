import { createServer, type Server } from "node:http";
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
  if (config.outbound.allowLoopback) {
    logger.warn(
      "PAYVAULT_OUTBOUND_ALLOW_LOOPBACK=on: forwarded requests and event deliveries may reach this machine's loopback addresses. This switch is for tests and demos (the sandbox processor); never set it in production.",
    );
  }
  // Received webhooks are processed, and events delivered, in the background (docs/webhooks.md).
  core.startWorkers(logger);
  const metricsServer =
    config.metricsListen === undefined
      ? undefined
      : await listenMetrics(core, config.metricsListen, logger);
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
      await new Promise<void>((resolve) => {
        if (metricsServer === undefined) resolve();
        else metricsServer.close(() => resolve());
      });
      await stopMaintenance();
      await app.close();
      await core.sealer.sealPending().catch(() => undefined);
    },
  };
}

/**
 * Prometheus's scrape endpoint on a listener of its own (PAYVAULT_METRICS_LISTEN, e.g.
 * 127.0.0.1:9464): plain HTTP, GET /metrics only, no credentials, so it belongs on loopback or a
 * monitoring network, never the API's public address. Metrics carry counts and codes, never card
 * data, ids or request values (src/metrics/metrics.ts).
 */
async function listenMetrics(
  core: Core,
  at: { readonly host: string; readonly port: number },
  logger: Logger,
): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    core.metrics.render().then(
      ({ contentType, body }) => {
        response.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
        response.end(body);
      },
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const address = server.address();
  logger.info(
    {
      metrics: `http://${at.host}:${typeof address === "object" && address !== null ? address.port : at.port}/metrics`,
    },
    "metrics listening",
  );
  return server;
}
