import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { selfSignedLocalhost, TLS_SERVER_OPTIONS } from "../http/tls.js";
import { createLogger } from "../log/logger.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import { CHARGES_PATH, createChargeHandler } from "./charge-handler.js";
import {
  DEFAULT_WEBHOOK_RETRY,
  type VaultWebhookTarget,
  type WebhookDelivery,
  type WebhookRetry,
  WebhookSender,
} from "./webhook-sender.js";

/**
 * The sandbox processor (docs/sandbox-processor.md): a fake card processor for demos and tests,
 * over HTTPS with its own self-signed localhost certificate (the vault's generator, so the same
 * TLS 1.2+ settings, PCI DSS 4.2.1). NOT a processor: nothing is authorized, nothing is kept.
 */
export interface SandboxProcessorOptions {
  /** Default 8444; 0 picks a free port. */
  readonly port?: number;
  /** Default `localhost`, served on both 127.0.0.1 and ::1 (whichever one a client resolves). */
  readonly host?: string;
  /** Where the certificate is written: `<certDir>/tls/localhost.crt` (and `.key`, mode 0600). */
  readonly certDir: string;
  /** Where payment events go; absent: no webhooks are sent. */
  readonly vault?: VaultWebhookTarget;
  readonly webhookRetry?: Partial<WebhookRetry>;
  readonly clock?: Clock;
  /** Default: the vault's JSON logger (with its PAN scrubber) on stdout. */
  readonly logger?: Logger;
}

export interface SandboxProcessor {
  /** `https://<host>:<port>` */
  readonly url: string;
  readonly port: number;
  /** `<url>/v1/charges`: the forward destination to allow on the vault. */
  readonly chargesUrl: string;
  /** The certificate to trust (PAYVAULT_OUTBOUND_CA_FILE on the vault). */
  readonly certFile: string;
  readonly caPem: string;
  /** The vault intake URL events are posted to, when webhooks are on. */
  readonly webhookUrl: string | undefined;
  /** What became of each event sent so far. */
  deliveries(): readonly WebhookDelivery[];
  /** Resolves once every webhook sent so far is delivered or given up on. */
  idle(): Promise<void>;
  /** Stops listening, cancels pending retries and waits for attempts in flight. */
  close(): Promise<void>;
}

export const DEFAULT_SANDBOX_PORT = 8444;

type Handler = Parameters<typeof createServer>[1];

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * `localhost` is bound on 127.0.0.1 and then on ::1 with the same port, since clients (the
 * vault's pinned resolver among them) may pick either; a host without IPv6 keeps IPv4 only.
 */
async function listenAll(
  make: () => Server,
  port: number,
  host: string,
  logger: Logger,
): Promise<{ servers: Server[]; port: number }> {
  if (host !== "localhost") {
    const server = make();
    return { servers: [server], port: await listen(server, port, host) };
  }
  const v4 = make();
  const bound = await listen(v4, port, "127.0.0.1");
  const v6 = make();
  try {
    await listen(v6, bound, "::1");
    return { servers: [v4, v6], port: bound };
  } catch (err) {
    logger.warn({ code: (err as NodeJS.ErrnoException).code }, "sandbox: not listening on ::1");
    return { servers: [v4], port: bound };
  }
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export async function startSandboxProcessor(
  options: SandboxProcessorOptions,
): Promise<SandboxProcessor> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger("info");
  const host = options.host ?? "localhost";
  const retry = { ...DEFAULT_WEBHOOK_RETRY, ...options.webhookRetry };
  const webhooks =
    options.vault === undefined
      ? undefined
      : new WebhookSender(options.vault, { retry, clock, logger });
  const tls = await selfSignedLocalhost(options.certDir, clock.now());
  const handleCharge = createChargeHandler({
    clock,
    logger,
    ...(webhooks === undefined ? {} : { onEvent: (event) => webhooks.send(event) }),
  });
  const handler: Handler = (req, res) => {
    handleCharge(req, res).catch((err: unknown) => {
      logger.error(
        { err_name: err instanceof Error ? err.name : "unknown" },
        "sandbox: handler failed",
      );
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: { type: "api_error", code: "internal_error", message: "Internal error." },
        }),
      );
    });
  };
  const make = () => createServer({ ...TLS_SERVER_OPTIONS, cert: tls.cert, key: tls.key }, handler);
  const { servers, port } = await listenAll(
    make,
    options.port ?? DEFAULT_SANDBOX_PORT,
    host,
    logger,
  );
  const url = `https://${urlHost(host)}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    chargesUrl: `${url}${CHARGES_PATH}`,
    certFile: join(options.certDir, "tls", "localhost.crt"),
    caPem: tls.cert,
    webhookUrl: webhooks?.url,
    deliveries: () => webhooks?.deliveries ?? [],
    idle: async () => webhooks?.idle(),
    close() {
      closing ??= Promise.all([...servers.map(closeServer), webhooks?.close()]).then(
        () => undefined,
      );
      return closing;
    },
  };
}
