import { existsSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Browser } from "playwright-core";
import { chromium } from "playwright-core";
import type { TlsMaterial } from "../../src/http/tls.js";
import { selfSignedLocalhost } from "../../src/http/tls.js";
import type { TestVault } from "./vault-harness.js";

/**
 * Real Chromium for the capture frame's browser suite (issue 4 point 7): Debian's `chromium`
 * driven by playwright-core. CI installs it (.ci/run) and the suite fails there without it;
 * elsewhere it is skipped, with a message, only when the binary is missing.
 */
export const CHROMIUM_PATH = "/usr/bin/chromium";

export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `${CHROMIUM_PATH} is missing (apt-get install chromium)`;
  if (process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false") {
    throw new Error(`browser suite: ${reason}; CI must run it`);
  }
  process.stdout.write(`\n[payvault tests] browser suite SKIPPED: ${reason}\n\n`);
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox"] });
}

export function listen(server: http.Server | https.Server, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export function closeServer(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Forwards a request to a plain-HTTP listener on 127.0.0.1, as a TLS-terminating proxy does. */
function forward(port: number, request: http.IncomingMessage, response: http.ServerResponse) {
  const upstream = http.request(
    {
      host: "127.0.0.1",
      port,
      method: request.method,
      path: request.url,
      headers: request.headers,
    },
    (reply) => {
      response.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(response);
    },
  );
  upstream.on("error", () => response.destroy());
  request.pipe(upstream);
}

export interface ServedVault {
  /** `https://localhost:<port>`: the vault's public origin for this run. */
  readonly origin: string;
  readonly tls: TlsMaterial;
  close(): Promise<void>;
}

/**
 * Serves a test vault to a browser over HTTPS. The harness builds the app without TLS, so it
 * listens on plain HTTP on 127.0.0.1 behind a TLS-terminating front (the vault's self-signed
 * localhost certificate), the way PAYVAULT_INSECURE_HTTP deployments run behind a proxy. The
 * vault learns the front's origin, so sessions and frame URLs name it.
 */
export async function serveVault(vault: TestVault): Promise<ServedVault> {
  const vaultPort = await listenApp(vault.app);
  const tls = await selfSignedLocalhost(vault.dataDir);
  const front = https.createServer({ key: tls.key, cert: tls.cert }, (request, response) =>
    forward(vaultPort, request, response),
  );
  const origin = `https://localhost:${await listen(front)}`;
  vault.core.origin.learn(origin);
  return {
    origin,
    tls,
    async close() {
      await closeServer(front);
    },
  };
}

async function listenApp(app: FastifyInstance): Promise<number> {
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as AddressInfo).port;
}

/** POST to the vault over its TLS front, trusting its self-signed certificate. */
export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  ca: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      { method: "POST", ca, headers: { "content-type": "application/json", ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: response.statusCode ?? 0,
            json: text === "" ? null : JSON.parse(text),
          });
        });
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify(body));
  });
}
