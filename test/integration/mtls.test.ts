import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import type { Config } from "../../src/config/config.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import type { Scope } from "../../src/domain/scopes.js";
import { clientCertFingerprint } from "../../src/http/tls.js";
import { createLogger } from "../../src/log/logger.js";
import type { RunningServer } from "../../src/server.js";
import { startServer } from "../../src/server.js";
import { runCli } from "../support/cli-runner.js";
import type { ClientCa, ClientCert } from "../support/client-pki.js";
import { ClientPki } from "../support/client-pki.js";
import { LogCapture } from "../support/vault-harness.js";

/**
 * Mutual TLS (issue 5 point 5; PCI DSS 8.3.1; RFC 8446 §4.3.2, §4.4.2) on a real HTTPS listener:
 * a client CA and client certificates made with openssl in a temporary directory, API keys bound
 * to a certificate's SHA-256, and the vault in `optional` and `required` modes.
 */

/** A route that answers 200 to a key holding its scope, so "authenticated" is unambiguous. */
const PROBE_URL = "/v1/tenant/jose-keys";
const PROBE_SCOPES: readonly Scope[] = ["keys:manage"];

interface Reply {
  readonly status: number;
  readonly body: string;
}

interface Vault {
  readonly core: Core;
  readonly server: RunningServer;
  readonly port: number;
  /** The vault's self-signed server certificate, which the clients trust. */
  readonly serverCert: string;
  readonly tenantId: string;
  key(clientCertSha256?: string): Promise<string>;
  stop(): Promise<void>;
}

function listenerConfig(dataDir: string, extra: Record<string, string>): Config {
  return loadConfig(
    {
      PAYVAULT_DATA_DIR: dataDir,
      PAYVAULT_PORT: "0",
      PAYVAULT_HOST: "127.0.0.1",
      // This suite fails on purpose from one address; the backoff is tested in its own suite.
      PAYVAULT_AUTH_BACKOFF: "off",
      ...extra,
    },
    dataDir,
  );
}

async function startVault(dataDir: string, extra: Record<string, string>): Promise<Vault> {
  const config = listenerConfig(dataDir, extra);
  const core = await openCore(config);
  const server = await startServer(core, config, createLogger("info", new LogCapture()));
  const tenant = await core.tenants.create("mtls", "test");
  return {
    core,
    server,
    port: (server.app.server.address() as AddressInfo).port,
    serverCert: await readFile(join(dataDir, "tls", "localhost.crt"), "utf8"),
    tenantId: tenant.id,
    async key(clientCertSha256) {
      const created = await core.apiKeys.create({
        tenantId: tenant.id,
        environment: "live",
        name: clientCertSha256 === undefined ? "unbound" : "bound",
        scopes: PROBE_SCOPES,
        actor: "test",
        ...(clientCertSha256 === undefined ? {} : { clientCertSha256 }),
      });
      return created.secret;
    },
    async stop() {
      await server.stop();
      await core.close();
    },
  };
}

/** One request on a fresh connection (no agent: no TLS session or socket reused across certs). */
function call(vault: Vault, apiKey: string, client?: ClientCert): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      `https://127.0.0.1:${vault.port}${PROBE_URL}`,
      {
        agent: false,
        ca: vault.serverCert,
        headers: { authorization: `Bearer ${apiKey}` },
        ...(client === undefined ? {} : { cert: client.cert, key: client.key }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    request.once("error", reject);
  });
}

interface Verdict {
  readonly accepted: boolean;
  /** The alert's error code, ECONNRESET, or "closed" when the server hung up without a word. */
  readonly detail: string;
}

/**
 * The server's verdict on a client certificate, read without sending a byte (a write racing the
 * server's refusal turns it into ECONNRESET). TLS 1.2 decides inside the handshake; TLS 1.3 only
 * after the client's Finished (RFC 8446 §4.4.2), so there acceptance shows as the first session
 * ticket, and refusal as an alert or the connection closing. Node's server sends an alert for a
 * missing certificate (OpenSSL's fail-if-no-peer-cert) but simply closes the connection when a
 * presented certificate fails verification.
 */
function handshake(
  vault: Vault,
  client: ClientCert | undefined,
  version: "TLSv1.2" | "TLSv1.3",
): Promise<Verdict> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: vault.port,
      ca: vault.serverCert,
      minVersion: version,
      maxVersion: version,
      ...(client === undefined ? {} : { cert: client.cert, key: client.key }),
    });
    const settle = (accepted: boolean, detail: string) => {
      socket.destroy();
      resolve({ accepted, detail });
    };
    const acceptedOn = version === "TLSv1.2" ? "secureConnect" : "session";
    socket.once(acceptedOn, () => settle(true, acceptedOn));
    socket.once("error", (err: NodeJS.ErrnoException) => settle(false, err.code ?? err.message));
    socket.once("close", () => settle(false, "closed"));
    socket.resume();
  });
}

function codeOf(reply: Reply): string | undefined {
  return (JSON.parse(reply.body) as { code?: string }).code;
}

let workDir: string;
let pki: ClientPki;
let clientCa: ClientCa;
let unknownCa: ClientCa;
/** Two clients of the configured CA. */
let alice: ClientCert;
let bob: ClientCert;
/** Alice's subject and key, issued by a CA the vault does not trust. */
let forgedAlice: ClientCert;
/** Issued by the configured CA, validity ended in 2020. */
let expired: ClientCert;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "payvault-mtls-"));
  await mkdir(join(workDir, "pki"));
  pki = new ClientPki(join(workDir, "pki"));
  clientCa = pki.ca("payvault-clients");
  unknownCa = pki.ca("someone-else");
  alice = pki.client(clientCa, "alice");
  bob = pki.client(clientCa, "bob");
  forgedAlice = pki.client(unknownCa, "alice", alice);
  expired = pki.expired(clientCa, "carol");
});
afterAll(async () => rm(workDir, { recursive: true, force: true }));

describe("mutual TLS, optional mode", () => {
  let vault: Vault;
  let unbound: string;
  let boundToAlice: string;

  beforeAll(async () => {
    vault = await startVault(join(workDir, "optional"), {
      PAYVAULT_TLS_CLIENT_CA: clientCa.certFile,
      PAYVAULT_TLS_CLIENT_AUTH: "optional",
    });
    unbound = await vault.key();
    boundToAlice = await vault.key(alice.sha256);
  });
  afterAll(async () => vault?.stop());

  it("lets a key without a binding work with no certificate, or with any", async () => {
    expect((await call(vault, unbound)).status).toBe(200);
    expect((await call(vault, unbound, alice)).status).toBe(200);
    // A certificate that does not verify does not end the handshake in optional mode; it is
    // simply not counted (and this key does not need one).
    expect((await call(vault, unbound, forgedAlice)).status).toBe(200);
  });

  it("refuses a bound key presented without a certificate: 401 CLIENT_CERT_REQUIRED", async () => {
    const reply = await call(vault, boundToAlice);
    expect(reply.status, reply.body).toBe(401);
    expect(codeOf(reply)).toBe("CLIENT_CERT_REQUIRED");
  });

  it("accepts a bound key with the certificate it is bound to", async () => {
    const reply = await call(vault, boundToAlice, alice);
    expect(reply.status, reply.body).toBe(200);
    expect(JSON.parse(reply.body)).toHaveProperty("keys");
  });

  it("refuses a bound key with another valid certificate of the same CA", async () => {
    const reply = await call(vault, boundToAlice, bob);
    expect(reply.status).toBe(401);
    expect(codeOf(reply)).toBe("CLIENT_CERT_REQUIRED");
    // Control: bob's certificate does verify; a key bound to it works with it.
    expect((await call(vault, await vault.key(bob.sha256), bob)).status).toBe(200);
  });

  it("never counts a certificate that does not verify, even when the fingerprint matches", async () => {
    // Same subject and key as alice, unknown issuer.
    const forged = await call(vault, boundToAlice, forgedAlice);
    expect(forged.status).toBe(401);
    expect(codeOf(forged)).toBe("CLIENT_CERT_REQUIRED");
    // Keys bound to exactly the unverifiable certificates: the fingerprint matches, the chain
    // does not (unknown CA; expired), so the certificate is not presented.
    for (const cert of [forgedAlice, expired]) {
      const reply = await call(vault, await vault.key(cert.sha256), cert);
      expect(reply.status).toBe(401);
      expect(codeOf(reply)).toBe("CLIENT_CERT_REQUIRED");
    }
  });

  it("binds by the same fingerprint the CLI computes (SHA-256 of the DER, lowercase hex)", () => {
    expect(clientCertFingerprint(alice.cert).sha256).toBe(alice.sha256);
    expect(clientCertFingerprint(`${alice.cert}\n${bob.cert}`).sha256).toBe(alice.sha256);
    expect(() => clientCertFingerprint("not a pem")).toThrow(/no PEM certificate/);
    return readFile(clientCa.certFile, "utf8").then((caPem) =>
      expect(() => clientCertFingerprint(caPem)).toThrow(/CA certificate/),
    );
  });
});

describe("mutual TLS, required mode", () => {
  let vault: Vault;
  let unbound: string;

  beforeAll(async () => {
    vault = await startVault(join(workDir, "required"), {
      PAYVAULT_TLS_CLIENT_CA: clientCa.certFile,
      PAYVAULT_TLS_CLIENT_AUTH: "required",
    });
    unbound = await vault.key();
  });
  afterAll(async () => vault?.stop());

  it("completes the handshake with a valid client certificate", async () => {
    expect((await call(vault, unbound, alice)).status).toBe(200);
    expect((await call(vault, await vault.key(bob.sha256), bob)).status).toBe(200);
  });

  it("accepts the handshake with a valid client certificate, over TLS 1.3 and 1.2", async () => {
    for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
      expect(await handshake(vault, alice, version), version).toMatchObject({ accepted: true });
    }
  });

  it("refuses the handshake without a client certificate", async () => {
    expect(await handshake(vault, undefined, "TLSv1.3")).toEqual({
      accepted: false,
      detail: "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
    });
    expect(await handshake(vault, undefined, "TLSv1.2")).toEqual({
      accepted: false,
      detail: "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE",
    });
  });

  it("refuses the handshake with a certificate of an unknown CA, or an expired one", async () => {
    for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
      for (const cert of [forgedAlice, expired]) {
        const verdict = await handshake(vault, cert, version);
        expect(verdict, version).toMatchObject({ accepted: false });
        expect(verdict.detail).toMatch(/^(closed|ECONNRESET|ERR_SSL_\w+_ALERT_\w+)$/);
      }
    }
    // And no request gets through on such a connection.
    await expect(call(vault, unbound, forgedAlice)).rejects.toMatchObject({
      code: expect.stringMatching(/^(ECONNRESET|ERR_SSL_\w+)$/),
    });
  });

  it("never lets an HTTP request through without one", async () => {
    await expect(call(vault, unbound)).rejects.toMatchObject({
      code: expect.stringMatching(/^(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET)$/),
    });
  });
});

describe("payvault apikeys create --client-cert", () => {
  it("binds the new key to the certificate's SHA-256, which the listener then requires", async () => {
    const dataDir = join(workDir, "cli");
    const cli = async (...args: string[]) => {
      const result = await runCli(args, { dataDir, timeoutMs: 60_000 });
      expect(result.code, result.stderr).toBe(0);
      return result;
    };
    const [tenant] = JSON.parse((await cli("tenants", "create", "--name", "m", "--json")).stdout);
    const alicePem = join(workDir, "alice-for-cli.crt");
    await writeFile(alicePem, alice.cert);
    const created = await cli(
      ...["apikeys", "create", "--tenant", tenant.id, "--scopes", PROBE_SCOPES.join(",")],
      ...["--client-cert", alicePem, "--json"],
    );
    const [row] = JSON.parse(created.stdout) as { client_cert_sha256: string; api_key: string }[];
    expect(row?.client_cert_sha256).toBe(alice.sha256);
    expect(created.stderr).toContain(alice.sha256);

    const refused = await runCli(
      ["apikeys", "create", "--tenant", tenant.id, "--scopes", "keys:manage"].concat([
        "--client-cert",
        clientCa.certFile,
      ]),
      { dataDir, timeoutMs: 60_000 },
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--client-cert: this is a CA certificate/);

    const vault = await startVault(dataDir, { PAYVAULT_TLS_CLIENT_CA: clientCa.certFile });
    try {
      const key = row?.api_key as string;
      expect((await call(vault, key, alice)).status).toBe(200);
      expect(codeOf(await call(vault, key))).toBe("CLIENT_CERT_REQUIRED");
      expect(codeOf(await call(vault, key, bob))).toBe("CLIENT_CERT_REQUIRED");
    } finally {
      await vault.stop();
    }
  });
});

describe("mutual TLS configuration", () => {
  const CWD = "/srv/payvault";

  function configError(env: Record<string, string>): string {
    try {
      loadConfig(env, CWD);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).message;
    }
    throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
  }

  it("reads PAYVAULT_TLS_CLIENT_CA (resolved) and defaults the mode to optional", () => {
    expect(loadConfig({}, CWD).clientCertAuth).toBeUndefined();
    expect(loadConfig({ PAYVAULT_TLS_CLIENT_CA: "tls/clients.pem" }, CWD).clientCertAuth).toEqual({
      mode: "optional",
      caFile: "/srv/payvault/tls/clients.pem",
    });
    expect(
      loadConfig(
        { PAYVAULT_TLS_CLIENT_CA: "/etc/ca.pem", PAYVAULT_TLS_CLIENT_AUTH: "required" },
        CWD,
      ).clientCertAuth,
    ).toEqual({ mode: "required", caFile: "/etc/ca.pem" });
  });

  it("refuses a mode without a CA, an unknown mode, and mTLS behind PAYVAULT_INSECURE_HTTP", () => {
    expect(configError({ PAYVAULT_TLS_CLIENT_AUTH: "required" })).toMatch(
      /PAYVAULT_TLS_CLIENT_AUTH needs PAYVAULT_TLS_CLIENT_CA/,
    );
    for (const mode of ["yes", "Required", "request"]) {
      expect(
        configError({ PAYVAULT_TLS_CLIENT_CA: "/etc/ca.pem", PAYVAULT_TLS_CLIENT_AUTH: mode }),
      ).toMatch(/must be optional or required/);
    }
    expect(
      configError({ PAYVAULT_TLS_CLIENT_CA: "/etc/ca.pem", PAYVAULT_INSECURE_HTTP: "1" }),
    ).toMatch(/terminate TLS/);
  });

  it("fails start-up, before writing anything, on an unreadable or unusable CA file", async () => {
    const notPem = join(workDir, "not-a-cert.pem");
    await writeFile(notPem, "hello\n");
    const leaf = join(workDir, "leaf-as-ca.pem");
    await writeFile(leaf, alice.cert);
    const cases: Array<[string, RegExp]> = [
      [join(workDir, "missing.pem"), /PAYVAULT_TLS_CLIENT_CA: cannot read/],
      [notPem, /holds no PEM certificate/],
      [leaf, /certificate 1 .* is not a CA certificate/],
    ];
    const dataDir = await mkdtemp(join(workDir, "bad-ca-"));
    const core = await openCore(listenerConfig(dataDir, {}));
    try {
      for (const [caFile, message] of cases) {
        const config = listenerConfig(dataDir, { PAYVAULT_TLS_CLIENT_CA: caFile });
        const start = startServer(core, config, createLogger("silent", new LogCapture()));
        await expect(start).rejects.toBeInstanceOf(ConfigError);
        await expect(start).rejects.toThrow(message);
      }
      // Refused before the first-start bootstrap: no admin key was made or written.
      await expect(stat(join(dataDir, "bootstrap-key"))).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await core.close();
    }
  });
});
