import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import type { Core } from "../../app/core.js";
import type { Config } from "../../config/config.js";
import { VaultSealedError } from "../../keys/key-manager.js";
import type { RekeyStatus } from "../../keys/local-key-manager.js";
import { LocalKeyManager } from "../../keys/local-key-manager.js";
import { isValidShareSplit, UnsealError } from "../../keys/seal.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

/**
 * `payvault init --shares N --threshold T`: creates a sealed KEK file and prints the N unseal
 * shares, one per custodian (PCI DSS 3.6.1.2 split knowledge). The shares are printed once and
 * stored nowhere; the server starts sealed until T of them are submitted.
 */
export async function runInit(config: Config, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { shares: { type: "string" }, threshold: { type: "string" } },
  });
  const shares = Number(values.shares);
  const threshold = Number(values.threshold);
  if (!isValidShareSplit(shares, threshold)) {
    throw new CliError("init needs --shares N --threshold T with 2 <= T <= N <= 255");
  }
  if (config.keyManager.kind !== "local") {
    throw new CliError(
      "sealed mode (Shamir shares) is for the local KeyManager; an HSM or KMS holds its own key",
    );
  }
  const set = await LocalKeyManager.initSealed(config.kekFile, { shares, threshold });
  process.stdout.write(
    `Sealed KEK created at ${config.kekFile} (share set ${set.setId}).\n` +
      `Give each share to a different custodian. They are shown once and stored nowhere;\n` +
      `any ${threshold} of them unseal the vault, fewer reveal nothing about the key.\n\n`,
  );
  set.shares.forEach((share, i) => {
    process.stdout.write(`custodian ${i + 1}: ${share}\n`);
  });
  return 0;
}

/**
 * `payvault unseal [--url URL]`: reads one share from standard input (never from the command
 * line, where other users could see it in the process list) and submits it to the running vault.
 */
export async function runUnseal(config: Config, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: "string" }, ca: { type: "string" } },
  });
  const base = values.url ?? `${config.insecureHttp ? "http" : "https"}://localhost:${config.port}`;
  const url = new URL("/v1/sys/unseal", base);
  if (process.stdin.isTTY) process.stderr.write("Unseal share: ");
  const share = await readLine();
  if (share === "") throw new CliError("no share on standard input");
  const ca = await readFile(values.ca ?? join(config.dataDir, "tls", "localhost.crt")).catch(
    () => undefined,
  );
  const { status, body } = await post(url, JSON.stringify({ share }), ca);
  const parsed = JSON.parse(body) as Record<string, unknown>;
  if (status !== 200) {
    process.stderr.write(
      `payvault: unseal refused (${String(parsed.code)}): ${String(parsed.detail ?? parsed.title)}\n`,
    );
    return 1;
  }
  process.stdout.write(
    parsed.sealed === true
      ? `Share accepted: ${String(parsed.progress)} of ${String(parsed.threshold)} needed.\n`
      : "The vault is unsealed.\n",
  );
  return 0;
}

/**
 * `payvault rekey status [--json] | verify | cancel`: the second step of a custodian change
 * (PCI DSS 3.6.1.2, 3.7.6). After a `custodians.rekey` ceremony is approved, the current shares
 * keep unsealing until a threshold of the NEW shares is entered here (or posted to
 * `/v1/sys/rekey/verify`). `verify` reads the new shares from standard input, one per line, each
 * typed by its own custodian, never from the command line; the switch happens when a threshold of
 * them opens the staged seal. `cancel` drops the staged rekey. This runs in its own process, so
 * the KEK file must be one it can open: on a sealed vault, use the running vault's HTTP routes.
 */
export async function runRekey(
  config: Config,
  args: string[],
  input: NodeJS.ReadableStream = process.stdin,
): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false } },
  });
  const [action] = positionals;
  if (action !== "status" && action !== "verify" && action !== "cancel") {
    throw new CliError("usage: payvault rekey status [--json] | verify | cancel");
  }
  const actor = cliActor();
  return withCore(config, async (core) => {
    try {
      if (action === "status") {
        printRekey(await core.ceremonies.rekeyStatus(), values.json);
        return 0;
      }
      if (action === "cancel") {
        const { cancelled } = await core.ceremonies.cancelRekey(actor);
        process.stdout.write(
          `The pending rekey (share set ${cancelled}) is cancelled; the current shares stay in use.\n`,
        );
        return 0;
      }
      return await verifyNewShares(core, actor, input);
    } catch (err) {
      if (err instanceof VaultSealedError) {
        throw new CliError(
          "the KEK file is sealed, so this process cannot re-seal it: confirm the rekey through the running vault (GET /v1/sys/rekey, POST /v1/sys/rekey/verify)",
        );
      }
      if (!(err instanceof UnsealError)) throw err;
      process.stderr.write(`payvault: rekey refused (${err.code}): ${err.message}\n`);
      return 1;
    }
  });
}

async function verifyNewShares(
  core: Core,
  actor: string,
  input: NodeJS.ReadableStream,
): Promise<number> {
  const status = await core.ceremonies.rekeyStatus();
  if (!status.pending) {
    process.stderr.write("payvault: no custodian rekey is waiting for confirmation\n");
    return 1;
  }
  const prompt = () => {
    if (process.stdin.isTTY) process.stderr.write("New share: ");
  };
  process.stdout.write(
    `Share set ${status.setId}: enter ${status.threshold} of its ${status.shares} new shares, one per line.\n`,
  );
  prompt();
  const rl = createInterface({ input, terminal: false });
  try {
    for await (const raw of rl) {
      const share = raw.trim();
      if (share === "") {
        prompt();
        continue;
      }
      try {
        const result = await core.ceremonies.verifyRekeyShare(share, actor);
        if (result.confirmed) {
          process.stdout.write(
            `Confirmed: share set ${result.setId} (any ${result.threshold} of ${result.shares}) now seals the KEK file; the old shares no longer unseal it.\n`,
          );
          return 0;
        }
        process.stdout.write(`Share accepted: ${result.progress} of ${result.threshold} needed.\n`);
      } catch (err) {
        if (!(err instanceof UnsealError)) throw err;
        process.stderr.write(`payvault: share refused (${err.code}): ${err.message}\n`);
        if (err.code === "UNSEAL_LOCKED" || err.code === "REKEY_NOT_PENDING") return 1;
      }
      prompt();
    }
  } finally {
    rl.close();
  }
  process.stderr.write(
    "payvault: the input ended before a threshold of new shares was entered; the current shares stay in use.\n",
  );
  return 1;
}

function printRekey(status: RekeyStatus, json: boolean): void {
  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          pending: status.pending,
          share_set: status.setId ?? null,
          threshold: status.threshold,
          shares: status.shares,
          staged_at: status.stagedAt ?? null,
          ceremony_id: status.ceremonyId ?? null,
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  if (!status.pending) {
    process.stdout.write("No custodian rekey is waiting for confirmation.\n");
    return;
  }
  printRows(
    [
      {
        share_set: status.setId ?? "",
        threshold: String(status.threshold),
        shares: String(status.shares),
        staged_at: status.stagedAt ?? "",
        ceremony_id: status.ceremonyId ?? "",
      },
    ],
    false,
  );
}

async function readLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line.trim();
  }
  return "";
}

function post(
  url: URL,
  body: string,
  ca: Buffer | undefined,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      ...(ca === undefined ? {} : { ca }),
    };
    const req = (url.protocol === "https:" ? request : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
    });
    req.on("error", (err) =>
      reject(new CliError(`cannot reach the vault at ${url.origin}: ${err.message}`)),
    );
    req.end(body);
  });
}
