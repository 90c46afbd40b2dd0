import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import type { Config } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/log/logger.js";
import type { RunningServer } from "../../src/server.js";
import { startServer } from "../../src/server.js";
import { LogCapture } from "../support/vault-harness.js";

interface Handshake {
  readonly protocol: string | null;
  readonly cipher: string;
  readonly authorized: boolean;
  readonly peerCert: Buffer;
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options }, () => {
      resolve({
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        authorized: socket.authorized,
        peerCert: socket.getPeerCertificate().raw,
      });
      socket.end();
    });
    socket.once("error", reject);
  });
}

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function get(url: string, options: https.RequestOptions = {}): Promise<Reply> {
  const client = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, { agent: false, ...options }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    request.once("error", reject);
  });
}

async function tempDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "payvault-listener-"));
}

function listenerConfig(dataDir: string, extra: Record<string, string> = {}): Config {
  return loadConfig(
    { PAYVAULT_DATA_DIR: dataDir, PAYVAULT_PORT: "0", PAYVAULT_HOST: "127.0.0.1", ...extra },
    dataDir,
  );
}

async function count(core: Core, table: "tenants" | "api_keys"): Promise<number> {
  const { rows } = await core.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? -1;
}

describe("HTTPS listener on the embedded default", () => {
  let dataDir: string;
  let config: Config;
  let core: Core;
  let server: RunningServer;
  let port: number;
  let cert: string;
  const logs = new LogCapture();

  async function start(): Promise<void> {
    core = await openCore(config);
    server = await startServer(core, config, createLogger("info", logs));
    port = (server.app.server.address() as AddressInfo).port;
  }
  async function stop(): Promise<void> {
    await server?.stop();
    await core?.close();
  }

  beforeAll(async () => {
    dataDir = await tempDataDir();
    config = listenerConfig(dataDir);
    await start();
    cert = await readFile(join(dataDir, "tls", "localhost.crt"), "utf8");
  });
  afterAll(async () => {
    await stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("generates a self-signed localhost certificate in <dataDir>/tls with a 0600 key", async () => {
    expect(server.url).toBe(`https://127.0.0.1:${port}`);
    expect(server.tls?.selfSigned).toBe(true);
    expect((await stat(join(dataDir, "tls", "localhost.key"))).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(cert);
    expect(x509.subjectAltName?.split(", ")).toEqual(
      expect.arrayContaining(["DNS:localhost", "IP Address:127.0.0.1"]),
    );
    expect(x509.checkHost("localhost")).toBe("localhost");
    expect(x509.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(new Date(x509.validTo).getTime()).toBeGreaterThan(Date.now() + 30 * 24 * 3600 * 1000);
  });

  it("serves that certificate and negotiates TLS 1.3 with a current client", async () => {
    for (const servername of ["localhost", undefined]) {
      const result = await handshake(port, {
        ca: cert,
        ...(servername === undefined ? {} : { servername }),
      });
      expect(result.authorized).toBe(true);
      expect(result.protocol).toBe("TLSv1.3");
      expect(result.peerCert.equals(new X509Certificate(cert).raw)).toBe(true);
    }
  });

  it("negotiates TLS 1.2 with an ECDHE AEAD suite for a TLS 1.2 client", async () => {
    const result = await handshake(port, {
      ca: cert,
      servername: "localhost",
      maxVersion: "TLSv1.2",
    });
    expect(result.protocol).toBe("TLSv1.2");
    expect(result.cipher).toMatch(
      /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/,
    );
  });

  it("refuses a client that offers at most TLS 1.1", async () => {
    // SECLEVEL=0 lets this Node's OpenSSL actually offer TLS 1.0/1.1.
    const legacy: tls.ConnectionOptions = {
      rejectUnauthorized: false,
      minVersion: "TLSv1",
      maxVersion: "TLSv1.1",
      ciphers: "DEFAULT@SECLEVEL=0",
    };
    await expect(handshake(port, legacy)).rejects.toMatchObject({
      code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION",
    });
    // Control: the same client does reach a server that still allows TLS 1.1, so the refusal
    // above is the vault's.
    const key = await readFile(join(dataDir, "tls", "localhost.key"), "utf8");
    const oldServer = tls.createServer(
      { key, cert, minVersion: "TLSv1", ciphers: "DEFAULT@SECLEVEL=0" },
      (socket) => socket.end(),
    );
    await new Promise<void>((resolve) => oldServer.listen(0, "127.0.0.1", resolve));
    try {
      const result = await handshake((oldServer.address() as AddressInfo).port, legacy);
      expect(result.protocol).toBe("TLSv1.1");
    } finally {
      await new Promise((resolve) => oldServer.close(resolve));
    }
  });

  it("sends HSTS and the security headers over HTTPS", async () => {
    const reply = await get(`https://localhost:${port}/healthz`, {
      ca: cert,
      lookup: (_host, _opts, callback) => callback(null, [{ address: "127.0.0.1", family: 4 }]),
    });
    expect(reply.status).toBe(200);
    const hsts = String(reply.headers["strict-transport-security"]);
    const maxAge = Number(/max-age=(\d+)/.exec(hsts)?.[1]);
    expect(maxAge).toBeGreaterThanOrEqual(31_536_000);
    expect(reply.headers["x-content-type-options"]).toBe("nosniff");
    expect(reply.headers["cache-control"]).toBe("no-store");
  });

  it("writes the bootstrap admin key to <dataDir>/bootstrap-key (0600) and it works", async () => {
    const path = join(dataDir, "bootstrap-key");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const key = (await readFile(path, "utf8")).trim();
    expect(key).toMatch(/^pv_live_[0-9A-Za-z]{22}_[0-9A-Za-z]{43}$/);
    const url = `https://127.0.0.1:${port}/v1/tokens/tok_doesnotexist`;
    const found = await get(url, { ca: cert, headers: { authorization: `Bearer ${key}` } });
    expect(found.status, found.body).toBe(404);
    expect(JSON.parse(found.body)).toMatchObject({ code: "TOKEN_NOT_FOUND" });
    const forged = `${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`;
    const denied = await get(url, { ca: cert, headers: { authorization: `Bearer ${forged}` } });
    expect(denied.status).toBe(401);
    // The key went to the console and the file, never to the logger.
    expect(logs.text).not.toContain(key.split("_")[3]);
  });

  it("does not bootstrap again, nor regenerate the certificate, on a second start", async () => {
    const keyBefore = await readFile(join(dataDir, "bootstrap-key"), "utf8");
    expect(await count(core, "tenants")).toBe(1);
    expect(await count(core, "api_keys")).toBe(1);
    await stop();
    await start();
    expect(await count(core, "tenants")).toBe(1);
    expect(await count(core, "api_keys")).toBe(1);
    expect(await readFile(join(dataDir, "bootstrap-key"), "utf8")).toBe(keyBefore);
    expect(await readFile(join(dataDir, "tls", "localhost.crt"), "utf8")).toBe(cert);
    const reply = await get(`https://127.0.0.1:${port}/v1/tokens/tok_doesnotexist`, {
      ca: cert,
      headers: { authorization: `Bearer ${keyBefore.trim()}` },
    });
    expect(reply.status).toBe(404);
  });
});

describe("plain HTTP when PAYVAULT_INSECURE_HTTP=1", () => {
  let dataDir: string;
  let core: Core;
  let server: RunningServer;
  const logs = new LogCapture();

  beforeAll(async () => {
    dataDir = await tempDataDir();
    const config = listenerConfig(dataDir, { PAYVAULT_INSECURE_HTTP: "1" });
    core = await openCore(config);
    server = await startServer(core, config, createLogger("info", logs));
  });
  afterAll(async () => {
    await server?.stop();
    await core?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("serves plain HTTP, still with HSTS for the proxy's HTTPS, and logs a loud warning", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.tls).toBeUndefined();
    const reply = await get(`${server.url}/healthz`);
    expect(reply.status).toBe(200);
    // Ignored by browsers over plain HTTP (RFC 6797 §8.1); behind the TLS-terminating proxy it
    // reaches them over HTTPS and pins the host (docs/http-headers.md).
    expect(reply.headers["strict-transport-security"]).toBe("max-age=63072000; includeSubDomains");
    const warnings = logs.lines
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 40 && l.msg.includes("PLAIN HTTP"));
    expect(warnings).toHaveLength(1);
    await expect(stat(join(dataDir, "tls"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
