#!/usr/bin/env node
import type { Config } from "../config/config.js";
import { ConfigError, loadConfig } from "../config/config.js";
import { runApiKeys } from "./commands/apikeys.js";
import { runAudit } from "./commands/audit.js";
import { runMigrate } from "./commands/migrate.js";
import { runServe } from "./commands/serve.js";
import { runTenants } from "./commands/tenants.js";
import { CliError } from "./output.js";

const USAGE = `payvault — self-hosted payment card data vault

Usage: payvault <command> [options]

Commands:
  serve                          start the vault (HTTPS on PAYVAULT_PORT, default 8443)
  migrate                        apply the database migrations and exit
  tenants create --name <name>   create a tenant
  tenants list                   list tenants
  apikeys create --tenant <id> --scopes <a,b> [--env live|test] [--name <name>]
  apikeys list [--tenant <id>]   list API keys (never their secrets)
  apikeys revoke <key id>        revoke an API key at once
  audit verify                   walk the audit hash chain; exit 1 at the first broken link

Options: --json (machine-readable output), --help
Configuration comes from PAYVAULT_* environment variables: see README.md.`;

type Runner = (config: Config, args: string[]) => Promise<number>;

const COMMANDS: Record<string, Runner> = {
  serve: runServe,
  migrate: runMigrate,
  tenants: runTenants,
  apikeys: runApiKeys,
  audit: runAudit,
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
