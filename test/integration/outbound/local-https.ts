import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { generate } from "selfsigned";

/** A self-signed certificate for the names and addresses the outbound suites connect to. */
export interface TestCertificate {
  readonly cert: string;
  readonly key: string;
}

export async function testCertificate(dnsNames: readonly string[]): Promise<TestCertificate> {
  const now = new Date();
  const pems = await generate([{ name: "commonName", value: dnsNames[0] ?? "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + 24 * 3600 * 1000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          ...dnsNames.map((value) => ({ type: 2 as const, value })),
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real HTTPS listener that records what reached it. */
export interface LocalHttps {
  readonly port: number;
  /** TCP connections accepted. */
  readonly connections: () => number;
  readonly requests: readonly {
    method: string;
    url: string;
    headers: IncomingMessage["headers"];
    body: Buffer;
  }[];
  readonly close: () => Promise<void>;
}

export async function startHttps(
  certificate: TestCertificate,
  handler: Handler,
  host = "127.0.0.1",
  port = 0,
): Promise<LocalHttps> {
  const requests: {
    method: string;
    url: string;
    headers: IncomingMessage["headers"];
    body: Buffer;
  }[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer(
    { cert: certificate.cert, key: certificate.key },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        handler(req, res, body);
      });
    },
  );
  server.on("connection", (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A resolver for tests: answers from a table (or a per-call script) and counts its calls. */
export interface ScriptedResolver {
  readonly resolve: (hostName: string) => Promise<readonly { address: string; family: 4 | 6 }[]>;
  readonly calls: string[];
}

export function scriptedResolver(
  answers: Readonly<Record<string, readonly (readonly string[])[]>>,
): ScriptedResolver {
  const calls: string[] = [];
  const resolve = async (hostName: string) => {
    const script = answers[hostName];
    const round = calls.filter((name) => name === hostName).length;
    calls.push(hostName);
    const addresses = script?.[Math.min(round, script.length - 1)];
    if (addresses === undefined) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return addresses.map(
      (address) => ({ address, family: address.includes(":") ? 6 : 4 }) as const,
    );
  };
  return { resolve, calls };
}
