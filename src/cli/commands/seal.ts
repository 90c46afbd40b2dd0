import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { LocalKeyManager } from "../../keys/local-key-manager.js";
import { isValidShareSplit } from "../../keys/seal.js";
import { CliError } from "../output.js";

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
