#!/usr/bin/env node
import type { Config } from "../config/config.js";
import { ConfigError, loadConfig } from "../config/config.js";
import { runApiKeys } from "./commands/apikeys.js";
import { runAudit } from "./commands/audit.js";
import { runCapture } from "./commands/capture.js";
import { runCeremonies } from "./commands/ceremonies.js";
import { runKeys } from "./commands/keys.js";
import { runMigrate } from "./commands/migrate.js";
import { runPurge, runRetention } from "./commands/retention.js";
import { runSandboxProcessor } from "./commands/sandbox-processor.js";
import { runInit, runRekey, runUnseal } from "./commands/seal.js";
import { runServe } from "./commands/serve.js";
import { runTenants } from "./commands/tenants.js";
import { runUsers } from "./commands/users.js";
import { runWebhooks } from "./commands/webhooks.js";
import { CliError } from "./output.js";

const USAGE = `payvault — self-hosted payment card data vault

Usage: payvault <command> [options]

Commands:
  serve                          start the vault (HTTPS on PAYVAULT_PORT, default 8443)
  migrate                        apply the database migrations and exit
  tenants create --name <name>   create a tenant
  tenants list                   list tenants
  apikeys create --tenant <id> --scopes <a,b> | --roles <r,...> [--env live|test] [--name <name>]
                 [--expires-at <RFC 3339>] [--allowed-ips <cidr,...>] [--client-cert <pem>]
  apikeys rotate <key id> [--overlap-seconds <s>]   new secret; the old one works for the overlap (1 day)
  apikeys list [--tenant <id>]   list API keys (never their secrets)
  apikeys revoke <key id>        revoke an API key at once
  users create --tenant <id> --username <name> --role <r,...>   create an admin user (prints a one-time enrollment token)
  users list [--tenant <id>] | users disable <usr id> | users unlock <usr id>
  users signing-keys | users rotate-signing-key   the admin access-token signing key (EdDSA)
  tenants set-retention <id> --days N   tokens expire N days after creation unless persistent
  audit verify                   walk the audit hash chain; exit 1 at the first broken link
  init --shares N --threshold T  create a sealed KEK split into N Shamir shares (T unseal)
  unseal [--url URL]             submit one custodian's share (read from stdin) to the vault
  rekey status [--json] | verify | cancel   confirm (new shares on stdin) or cancel a staged custodian rekey
  keys status                    the key inventory: every KEK and DEK, versions, cryptoperiods
  keys rotate --kek [--env E]    propose a KEK rotation (dual control: another principal approves)
  keys rotate --dek --purpose P [--tenant ID]   rotate DEKs and re-encrypt (resumable job)
  keys rewrap | keys jobs | keys destroy <id> --reason R
  ceremonies list | approve <id> | reject <id>   dual-control key ceremonies
  purge                          delete tokens past retention; crypto-shred empty epoch keys
  retention report               what is due, purged and destroyed (PCI DSS 3.2.1)
  capture keys | rotate-keys     the capture encryption and session keys; replace them (overlap)
  webhooks dlq list [--tenant <id>] [--kind intake|delivery]   dead-lettered events and deliveries
  webhooks dlq replay <id> | purge <id> | purge --all [--tenant <id>]   queue again, or delete
  sandbox-processor [--port P] [--host H] [--cert-dir DIR] [--vault-url URL] [--webhook-endpoint ID]
                    [--webhook-secret-file F] [--vault-ca F]   a FAKE card processor for demos and tests (docs/sandbox-processor.md)

Options: --json (machine-readable output), --help
Configuration comes from PAYVAULT_* environment variables: see README.md.`;

type Runner = (config: Config, args: string[]) => Promise<number>;

const COMMANDS: Record<string, Runner> = {
  serve: runServe,
  migrate: runMigrate,
  tenants: runTenants,
  apikeys: runApiKeys,
  users: runUsers,
  audit: runAudit,
  init: runInit,
  unseal: runUnseal,
  rekey: runRekey,
  keys: runKeys,
  ceremonies: runCeremonies,
  purge: runPurge,
  retention: runRetention,
  capture: runCapture,
  webhooks: runWebhooks,
  "sandbox-processor": runSandboxProcessor,
};

async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  if (command === undefined || command === "--help" || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    process.stderr.write(`payvault: unknown command "${command}"\n\n${USAGE}\n`);
    return 2;
  }
  return run(loadConfig(), argv.slice(1));
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof CliError) {
      process.stderr.write(`payvault: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `payvault: ${err instanceof Error ? `${err.name}: ${err.message}` : "failed"}\n`,
    );
    process.exitCode = 1;
  },
);
