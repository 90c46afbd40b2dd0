import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { createLogger } from "../../log/logger.js";
import { DEFAULT_SANDBOX_PORT, startSandboxProcessor } from "../../sandbox/sandbox-processor.js";
import type { VaultWebhookTarget } from "../../sandbox/webhook-sender.js";
import { stripeSigningSecret } from "../../webhooks/signatures/stripe.js";

const USAGE = `Usage: payvault sandbox-processor [options]

A FAKE card processor for demos and tests (docs/sandbox-processor.md). Not a real processor.

Options:
  --port P                    HTTPS port (default ${DEFAULT_SANDBOX_PORT}; 0 picks a free one)
  --host H                    listen address (default localhost: 127.0.0.1 and ::1)
  --cert-dir DIR              where its self-signed certificate is kept
                              (default <PAYVAULT_DATA_DIR>/sandbox-processor)
  --vault-url URL             the vault's https:// URL; without it no webhooks are sent
  --webhook-endpoint ID       the vault's Stripe webhook endpoint (whe_…)
  --webhook-secret-file F     a file holding that endpoint's whsec_… secret
  --vault-ca F                PEM to trust for the vault (<vault data dir>/tls/localhost.crt)`;

class UsageError extends Error {}

const OPTIONS = {
  port: { type: "string" },
  host: { type: "string" },
  "cert-dir": { type: "string" },
  "vault-url": { type: "string" },
  "webhook-endpoint": { type: "string" },
  "webhook-secret-file": { type: "string" },
  "vault-ca": { type: "string" },
  help: { type: "boolean" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; args: string[] }>>["values"];

function portOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SANDBOX_PORT;
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 0 && port <= 65_535)) throw new UsageError("--port must be 0 to 65535");
  return port;
}

async function readOption(path: string, option: string): Promise<string> {
  try {
    return await readFile(resolve(path), "utf8");
  } catch {
    throw new UsageError(`${option}: cannot read ${path}`);
  }
}

/** The webhook target, when --vault-url is given; the three webhook options come together. */
async function vaultTarget(values: Values): Promise<VaultWebhookTarget | undefined> {
  const url = values["vault-url"];
  const endpointId = values["webhook-endpoint"];
  const secretFile = values["webhook-secret-file"];
  if (url === undefined) {
    if (endpointId !== undefined || secretFile !== undefined || values["vault-ca"] !== undefined) {
      throw new UsageError(
        "--webhook-endpoint, --webhook-secret-file and --vault-ca need --vault-url",
      );
    }
    return undefined;
  }
  if (endpointId === undefined || secretFile === undefined) {
    throw new UsageError("--vault-url needs --webhook-endpoint and --webhook-secret-file");
  }
  const secret = (await readOption(secretFile, "--webhook-secret-file")).trim();
  try {
    stripeSigningSecret(secret);
  } catch {
    // The message never repeats the file's contents.
    throw new UsageError(
      "--webhook-secret-file must hold a whsec_… secret of at least 16 characters",
    );
  }
  const caFile = values["vault-ca"];
  const ca = caFile === undefined ? undefined : await readOption(caFile, "--vault-ca");
  return { url, endpointId, secret, ...(ca === undefined ? {} : { ca }) };
}

function usageError(message: string): number {
  process.stderr.write(`payvault sandbox-processor: ${message}\n\n${USAGE}\n`);
  return 2;
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    process.once("SIGINT", () => done("SIGINT"));
    process.once("SIGTERM", () => done("SIGTERM"));
  });
}

/** `payvault sandbox-processor`: runs until SIGINT or SIGTERM; exit 2 on a bad option. */
export async function runSandboxProcessor(config: Config, args: string[]): Promise<number> {
  let values: Values;
  let vault: VaultWebhookTarget | undefined;
  let port: number;
  try {
    values = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    port = portOf(values.port);
    if (values.host === "") throw new UsageError("--host must not be empty");
    vault = await vaultTarget(values);
  } catch (err) {
    const known =
      err instanceof UsageError ||
      (err as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS");
    if (!known) throw err;
    return usageError((err as Error).message);
  }
  const logger = createLogger(config.logLevel);
  let sandbox: Awaited<ReturnType<typeof startSandboxProcessor>>;
  try {
    sandbox = await startSandboxProcessor({
      port,
      host: values.host ?? "localhost",
      certDir: resolve(values["cert-dir"] ?? join(config.dataDir, "sandbox-processor")),
      ...(vault === undefined ? {} : { vault }),
      logger,
    });
  } catch (err) {
    if (err instanceof TypeError) return usageError(err.message);
    throw err;
  }
  process.stdout.write(
    [
      "payvault sandbox-processor: a FAKE card processor for demos and tests",
      `listening on ${sandbox.url} (charges: POST ${sandbox.chargesUrl})`,
      `certificate: ${sandbox.certFile} (give it to the vault as PAYVAULT_OUTBOUND_CA_FILE)`,
      `webhooks: ${sandbox.webhookUrl ?? "off (no --vault-url)"}`,
      "",
    ].join("\n"),
  );
  const signal = await waitForSignal();
  logger.info({ signal }, "sandbox-processor stopping");
  await sandbox.close();
  logger.flush();
  return 0;
}
