import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/bench/server-process.js";
import { loadConfig } from "../../src/config/config.js";
import { DEFAULT_SANDBOX_PORT } from "../../src/sandbox/sandbox-processor.js";
import { CARDS, expectNoPan } from "../support/api-fixtures.js";
import type { RunningCli } from "../support/cli-runner.js";
import { REPO_ROOT, startCli } from "../support/cli-runner.js";

// Issue 6: "The README's demo runs the whole story: capture -> token -> forwarded charge to the
// sandbox -> webhook received and recorded." The demo script runs for real, as a person would run
// it, against `payvault serve` started with the README's two demo switches.

const SLOW = 120_000;
const SCRIPT = "examples/payment-demo.sh";
const SERVING = /payvault: serving (https:\/\/127\.0\.0\.1:\d+)/;

interface ScriptResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the demo with only its own settings: none of this process's PAYVAULT_* variables. */
function runDemo(env: Readonly<Record<string, string>>): Promise<ScriptResult> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith("PAYVAULT_") || name.startsWith("DATABASE_URL")) continue;
    if (name === "NODE_OPTIONS" || name.startsWith("VITEST") || name.startsWith("CARD_")) continue;
    clean[name] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [SCRIPT], { cwd: REPO_ROOT, env: { ...clean, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** GET over the vault's own TLS, trusting only its self-signed certificate. */
function getJson(url: string, key: string, ca: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { ca, headers: { authorization: `Bearer ${key}` } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    request.on("error", reject);
  });
}

/** Whether anything still accepts connections on the port (the sandbox must be gone). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function match(text: string, pattern: RegExp): string {
  const found = pattern.exec(text)?.[1];
  if (found === undefined) throw new Error(`the demo did not print ${pattern}:\n${text}`);
  return found;
}

describe("examples/payment-demo.sh: a payment, end to end", () => {
  let dataDir: string;
  let vault: RunningCli | undefined;
  let vaultUrl: string;
  let metricsPort: number;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-payment-demo-"));
    metricsPort = await freePort();
    // The README's start command: the two demo switches, the sandbox's certificate in the data
    // directory (it does not exist yet: the vault reads it at its first forward).
    vault = startCli(["serve"], {
      dataDir,
      env: {
        PAYVAULT_PORT: "0",
        PAYVAULT_HOST: "127.0.0.1",
        PAYVAULT_LOG_LEVEL: "info",
        PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: "on",
        PAYVAULT_OUTBOUND_CA_FILE: join(dataDir, "sandbox-processor", "tls", "localhost.crt"),
        // Prometheus's listener, checked at the end of the story.
        PAYVAULT_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      },
      timeoutMs: 5 * SLOW,
    });
    await vault.waitFor(SERVING, SLOW);
    vaultUrl = match(vault.stdout(), SERVING);
  }, SLOW);

  afterAll(async () => {
    if (vault !== undefined) {
      vault.child.kill("SIGTERM");
      await vault.exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it(
    "captures, tokenizes, forwards a charge, refuses the used CVC, and records the webhook",
    async () => {
      const sandboxPort = await freePort();
      const result = await runDemo({
        PAYVAULT_URL: vaultUrl,
        PAYVAULT_DATA_DIR: dataDir,
        SANDBOX_PORT: String(sandboxPort),
        // The CLI from source, as the other CLI tests run it (the default is dist/ after a build).
        PAYVAULT_CLI: `${process.execPath} --import tsx src/cli/main.ts`,
      });
      const output = `${result.stdout}\n${result.stderr}`;
      expect(result.code, output).toBe(0);

      // capture -> token
      const tokenId = match(result.stdout, /^token (tok_[0-9A-Za-z]{22}) /m);
      expect(result.stderr).toContain("captured visa ending in 4242");
      // -> forwarded charge, approved by the sandbox with the real card the vault put in
      const authorization = match(
        result.stdout,
        /^sandbox: 200 ch_[0-9A-Za-z]+ succeeded, authorization (auth_[0-9A-Za-z]+), card visa ending in 4242$/m,
      );
      // the CVC went with the first charge only (PCI DSS 3.3.1.2)
      expect(result.stdout).toMatch(/^refused: 422 CVC_NOT_AVAILABLE, nothing sent$/m);
      // -> webhook received and recorded
      const eventId = match(
        result.stdout,
        new RegExp(
          `^event (evt_[0-9A-Za-z]+): charge\\.succeeded evt_[0-9A-Za-z]+ for ${authorization}, 1000 usd, state (queued|processing|done)$`,
          "m",
        ),
      );
      expect(result.stdout).toMatch(/^==> Done: /m);

      // What the vault holds, read independently of the script.
      const key = (await readFile(join(dataDir, "bootstrap-key"), "utf8")).trim();
      const ca = await readFile(join(dataDir, "tls", "localhost.crt"), "utf8");
      const event = await getJson(`${vaultUrl}/v1/webhook-events/${eventId}`, key, ca);
      expect(event.status).toBe(200);
      expect(event.json).toMatchObject({
        id: eventId,
        provider: "stripe",
        type: "charge.succeeded",
        metadata: {
          "data.object.authorization_id": authorization,
          "data.object.status": "succeeded",
          "data.object.amount": 1000,
        },
      });
      const token = await getJson(`${vaultUrl}/v1/tokens/${tokenId}`, key, ca);
      expect(token.status).toBe(200);
      expect(token.json).toMatchObject({ id: tokenId, card: { last4: "4242" } });

      // The script stopped the sandbox it started, and kept its secret to itself.
      expect(await listening(sandboxPort)).toBe(false);
      expect(output).not.toMatch(/whsec_[0-9a-f]{16,}/);

      // No card number in the demo's output, the vault's log or the sandbox's log; the logs are
      // the real ones (the vault logged the forwards, the sandbox the charge).
      const sandboxLog = await readFile(join(dataDir, "sandbox-processor", "sandbox.log"), "utf8");
      expect(vault?.stdout()).toContain('"msg":"forward"');
      expect(sandboxLog).toMatch(/"last4":"4242"/);
      for (const text of [output, vault?.stdout() ?? "", vault?.stderr() ?? "", sandboxLog]) {
        expectNoPan(text, CARDS.visa);
      }

      // The story in the metrics (PAYVAULT_METRICS_LISTEN): the forwards by outcome, the
      // webhook queued, and nothing but counts and codes.
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(text).toMatch(/^payvault_forward_requests_total\{outcome="2xx"\} 1$/m);
      expect(text).toMatch(/^payvault_forward_requests_total\{outcome="CVC_NOT_AVAILABLE"\} 1$/m);
      expect(text).toMatch(
        /^payvault_webhook_intake_total\{provider="stripe",outcome="queued"\} [1-9]/m,
      );
      expect(text).toMatch(/^payvault_webhook_queue_rows\{queue="intake",state="dead"\} 0$/m);
      expectNoPan(text, CARDS.visa);
      expect(text).not.toContain(tokenId);
      // Only GET /metrics answers.
      expect((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status).toBe(404);
      expect(
        (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" })).status,
      ).toBe(404);
    },
    SLOW,
  );

  it("the README's section matches the script: settings, switches, routes and defaults", async () => {
    const readme = await readFile(join(REPO_ROOT, "README.md"), "utf8");
    const script = await readFile(join(REPO_ROOT, SCRIPT), "utf8");
    const start = readme.indexOf("\n## A payment, end to end\n");
    expect(start).toBeGreaterThan(0);
    const end = readme.indexOf("\n## ", start + 1);
    const section = readme.slice(start, end === -1 ? undefined : end);
    expect(readme).toContain("](#a-payment-end-to-end)");
    expect(section).toContain(`bash ${SCRIPT}`);

    // Every setting the README names is one the script reads (or the vault's own switch).
    const scriptSettings = new Set(
      [...script.matchAll(/\$\{([A-Z_]+):-/g)].map((m) => m[1] as string),
    );
    const vaultSwitches = ["PAYVAULT_OUTBOUND_ALLOW_LOOPBACK", "PAYVAULT_OUTBOUND_CA_FILE"];
    for (const name of new Set(section.match(/\b(?:PAYVAULT|SANDBOX)_[A-Z_]+/g))) {
      if (vaultSwitches.includes(name)) continue;
      expect(scriptSettings, name).toContain(name);
    }

    // The start command: values the vault accepts, and the certificate where the script's
    // sandbox writes it with the script's default data directory.
    const loopback = match(section, /PAYVAULT_OUTBOUND_ALLOW_LOOPBACK=(\S+)/);
    const caFile = match(section, /PAYVAULT_OUTBOUND_CA_FILE=(\S+)/);
    const config = loadConfig(
      { PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: loopback, PAYVAULT_OUTBOUND_CA_FILE: caFile },
      REPO_ROOT,
    );
    expect(config.outbound.allowLoopback).toBe(true);
    const dataDefault = match(script, /^DATA=\$\{PAYVAULT_DATA_DIR:-([^}]+)\}$/m);
    expect(match(script, /^SANDBOX_DIR=(\S+)$/m)).toBe("$DATA/sandbox-processor");
    expect(match(script, /^SANDBOX_CA=(\S+)/m)).toBe("$SANDBOX_DIR/tls/localhost.crt");
    expect(caFile).toBe(`${dataDefault}/sandbox-processor/tls/localhost.crt`);
    expect(config.outbound.caFile).toBe(
      join(config.dataDir, "sandbox-processor/tls/localhost.crt"),
    );
    expect(script).toContain(`PAYVAULT_OUTBOUND_ALLOW_LOOPBACK=${loopback}`);
    expect(script).toContain(`PAYVAULT_OUTBOUND_CA_FILE=${caFile}`);

    // Defaults: the vault's URL and the sandbox's port.
    expect(match(script, /^V=\$\{PAYVAULT_URL:-([^}]+)\}$/m)).toBe("https://localhost:8443");
    expect(match(script, /^SANDBOX_PORT=\$\{SANDBOX_PORT:-([^}]+)\}$/m)).toBe(
      String(DEFAULT_SANDBOX_PORT),
    );
    expect(section).toContain(`--port ${DEFAULT_SANDBOX_PORT}`);
    expect(section).toContain(`"host":"localhost:${DEFAULT_SANDBOX_PORT}"`);

    // The same routes, both ways, and the same sandbox options and capture client.
    const routes = (text: string) =>
      new Set([...text.matchAll(/\/v1\/[a-z-]+(?:\/[a-z-]+)*/g)].map((m) => m[0]));
    const scriptRoutes = new Set(
      [...script.matchAll(/api (?:GET|POST) "?(\/v1\/[a-z/-]+)/g)].map((m) => m[1] as string),
    );
    const readmeRoutes = [...routes(section)].filter((route) => route !== "/v1/charges");
    expect(new Set(readmeRoutes)).toEqual(scriptRoutes);
    for (const option of section.match(/--[a-z-]+/g) ?? []) expect(script).toContain(option);
    expect(section).toContain("examples/capture-client.mjs");
    expect(script).toContain("capture-client.mjs");
    for (const doc of section.match(/docs\/[a-z-]+\.md/g) ?? []) {
      await expect(readFile(join(REPO_ROOT, doc), "utf8")).resolves.toBeTruthy();
    }
  });
});
