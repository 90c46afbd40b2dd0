import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedLocalhost } from "../../../src/http/tls.js";
import { runCli, startCli } from "../../support/cli-runner.js";
import { startHttps } from "../outbound/local-https.js";
import { postCharge } from "./sandbox-client.js";

const SLOW = 120_000;
const SECRET = "whsec_sandbox_cli_test_8f2d6b0c4a";
const LISTENING = /listening on (https:\/\/localhost:\d+)/;
const CERTIFICATE = /certificate: (\S+localhost\.crt)/;

describe("payvault sandbox-processor", () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-sandbox-cli-"));
  });
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it(
    "starts, prints its URL and certificate, charges over HTTPS, and stops on SIGTERM",
    async () => {
      const cli = startCli(["sandbox-processor", "--port", "0"], { dataDir, timeoutMs: SLOW });
      try {
        await cli.waitFor(CERTIFICATE);
        const url = LISTENING.exec(cli.stdout())?.[1] ?? "";
        const certFile = CERTIFICATE.exec(cli.stdout())?.[1] ?? "";
        expect(certFile).toBe(join(dataDir, "sandbox-processor", "tls", "localhost.crt"));
        expect(cli.stdout()).toMatch(/PAYVAULT_OUTBOUND_CA_FILE/);
        expect(cli.stdout()).toMatch(/webhooks: off/);
        const ca = await readFile(certFile, "utf8");
        const answer = await postCharge(
          url,
          ca,
          { number: "4000000000000002", cvc: "987" },
          "form",
        );
        expect(answer.status).toBe(402);
        expect(answer.json).toMatchObject({ error: { code: "card_declined" } });
      } finally {
        cli.child.kill("SIGTERM");
      }
      const result = await cli.exited;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).not.toContain("4000000000000002");
      expect(result.stdout).toMatch(/"last4":"0002"/);
    },
    SLOW,
  );

  it(
    "sends signed webhooks to --vault-url, trusting --vault-ca",
    async () => {
      const vaultCert = await selfSignedLocalhost(join(dataDir, "vault"));
      const caFile = join(dataDir, "vault", "tls", "localhost.crt");
      const secretFile = join(dataDir, "webhook-secret");
      await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
      const vault = await startHttps(vaultCert, (_req, res) => res.end("{}"));
      const cli = startCli(
        [
          "sandbox-processor",
          "--port=0",
          `--cert-dir=${join(dataDir, "own-certs")}`,
          `--vault-url=https://127.0.0.1:${vault.port}`,
          "--webhook-endpoint=whe_cliTest",
          `--webhook-secret-file=${secretFile}`,
          `--vault-ca=${caFile}`,
        ],
        { dataDir, timeoutMs: SLOW },
      );
      try {
        await cli.waitFor(CERTIFICATE);
        expect(cli.stdout()).toContain(
          `webhooks: https://127.0.0.1:${vault.port}/v1/webhooks/stripe/whe_cliTest`,
        );
        const url = LISTENING.exec(cli.stdout())?.[1] ?? "";
        const ca = await readFile(join(dataDir, "own-certs", "tls", "localhost.crt"), "utf8");
        expect((await postCharge(url, ca, { number: "4242424242424242" }, "json")).status).toBe(
          200,
        );
        await cli.waitFor(/sandbox webhook delivered/);
        const [delivery] = vault.requests;
        if (delivery === undefined) throw new Error("no webhook");
        const event = new Stripe("sk_test_x").webhooks.constructEvent(
          delivery.body,
          String(delivery.headers["stripe-signature"]),
          SECRET,
        );
        expect(event.type).toBe("charge.succeeded");
      } finally {
        cli.child.kill("SIGTERM");
        await cli.exited;
        await vault.close();
      }
    },
    SLOW,
  );

  it(
    "exits 2 with the usage on a bad option, and never prints the secret file's contents",
    async () => {
      const unknown = await runCli(["sandbox-processor", "--frobnicate"], { dataDir });
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/Usage: payvault sandbox-processor/);
      const badPort = await runCli(["sandbox-processor", "--port", "http"], { dataDir });
      expect(badPort.code).toBe(2);
      expect(badPort.stderr).toMatch(/--port/);
      const half = await runCli(["sandbox-processor", "--vault-url", "https://localhost:8443"], {
        dataDir,
      });
      expect(half.code).toBe(2);
      expect(half.stderr).toMatch(/--webhook-endpoint/);
      const wrongSecret = join(dataDir, "not-a-secret");
      await writeFile(wrongSecret, "sk_live_do_not_print_me_12345");
      const secret = await runCli(
        [
          "sandbox-processor",
          "--vault-url=https://localhost:8443",
          "--webhook-endpoint=whe_x",
          `--webhook-secret-file=${wrongSecret}`,
        ],
        { dataDir },
      );
      expect(secret.code).toBe(2);
      expect(secret.stderr).toMatch(/whsec_/);
      expect(secret.stderr + secret.stdout).not.toContain("do_not_print_me");
      const http = await runCli(
        [
          "sandbox-processor",
          "--vault-url=http://localhost:8443",
          "--webhook-endpoint=whe_x",
          `--webhook-secret-file=${join(dataDir, "webhook-secret")}`,
        ],
        { dataDir },
      );
      expect(http.code).toBe(2);
      expect(http.stderr).toMatch(/https/);
    },
    SLOW,
  );
});
