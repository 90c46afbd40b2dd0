import type { AddressInfo } from "node:net";
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileAllowlist } from "../../../src/outbound/destination.js";
import { systemResolver } from "../../../src/outbound/resolver.js";
import { createSafeFetch, type SafeFetchOptions } from "../../../src/outbound/safe-fetch.js";
import {
  type LocalHttps,
  scriptedResolver,
  startHttps,
  type TestCertificate,
  testCertificate,
} from "./local-https.js";

const PAN = "4242424242424242";
let cert: TestCertificate;
let otherCert: TestCertificate;
let server: LocalHttps;
let silentTcp: TcpServer;
let silentPort: number;
const silentSockets = new Set<Socket>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  [cert, otherCert] = await Promise.all([
    testCertificate(["processor.test"]),
    testCertificate(["processor.test"]),
  ]);
  server = await startHttps(cert, (req, res, body) => {
    switch (req.url?.split("?")[0]) {
      case "/echo":
        res
          .writeHead(201, { "content-type": "application/json", "set-cookie": ["a=1", "b=2"] })
          .end(body);
        return;
      case "/hang":
        return; // never answers
      case "/trickle": {
        res.writeHead(200, { "content-type": "text/plain" });
        const timer = setInterval(() => res.write("."), 50);
        timers.add(timer);
        res.on("close", () => clearInterval(timer));
        return;
      }
      case "/big":
        res
          .writeHead(200, { "content-length": String(2 * 1024 * 1024) })
          .end(Buffer.alloc(2 * 1024 * 1024));
        return;
      case "/big-chunked":
        res.writeHead(200);
        for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024));
        res.end();
        return;
      default:
        res.writeHead(200).end("x".repeat(1024));
    }
  });
  // Accepts TCP, never speaks TLS: the handshake never completes.
  silentTcp = createTcpServer((socket) => {
    silentSockets.add(socket);
    socket.on("close", () => silentSockets.delete(socket));
  });
  await new Promise<void>((resolve) => silentTcp.listen(0, "127.0.0.1", resolve));
  silentPort = (silentTcp.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const timer of timers) clearInterval(timer);
  for (const socket of silentSockets) socket.destroy();
  await Promise.all([
    server.close(),
    new Promise<void>((resolve) => silentTcp.close(() => resolve())),
  ]);
});

const processorResolver = () =>
  scriptedResolver({ "processor.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]] });
const allowlistFor = (port: number) =>
  compileAllowlist(
    ["processor.test", "other.test", "127.0.0.1"].map((host) => ({ host, pathPrefix: "/", port })),
  );
const testFetch = (options: SafeFetchOptions = {}) =>
  createSafeFetch({
    resolver: processorResolver().resolve,
    ca: cert.cert,
    allowLoopback: true,
    ...options,
  });
const url = (path: string, host = "processor.test", port = server.port) =>
  `https://${host}:${port}${path}`;

describe("safe fetch over a real TLS connection", () => {
  it("sends the request and returns status, headers and body (test switch on)", async () => {
    const resolver = processorResolver();
    const fetch = testFetch({ resolver: resolver.resolve });
    const body = JSON.stringify({ amount: 1000 });
    const result = await fetch(
      {
        method: "POST",
        url: url("/echo?x=1"),
        headers: { "Content-Type": "application/json" },
        body,
      },
      allowlistFor(server.port),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.response.status).toBe(201);
    expect(result.response.body.toString()).toBe(body);
    expect(result.response.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    const seen = server.requests.at(-1);
    expect(seen?.url).toBe("/echo?x=1");
    expect(seen?.headers).toMatchObject({
      host: `processor.test:${server.port}`,
      "content-type": "application/json",
      "content-length": String(body.length),
      "accept-encoding": "identity",
    });
    expect(resolver.calls).toEqual(["processor.test"]);
  });

  it("reaches a loopback IP literal whose certificate names the address", async () => {
    const result = await testFetch()(
      { method: "GET", url: url("/", "127.0.0.1") },
      allowlistFor(server.port),
    );
    expect(result.ok && result.response.status).toBe(200);
  });

  it("refuses a header outside the allowlist before connecting", async () => {
    const before = server.connections();
    const result = await testFetch()(
      { method: "GET", url: url("/"), headers: { "X-Forwarded-For": "10.0.0.1" } },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: { reason: "HEADER_NOT_ALLOWED", header: "x-forwarded-for" },
    });
    expect(server.connections()).toBe(before);
  });
});

describe("timeouts", () => {
  it("gives up on a server that never answers (total timeout)", async () => {
    const started = Date.now();
    const result = await testFetch({ timeoutMs: 300 })(
      { method: "GET", url: url("/hang") },
      allowlistFor(server.port),
    );
    expect(result).toEqual({ ok: false, failure: { reason: "TIMEOUT", timeoutMs: 300 } });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("gives up on a server that trickles bytes: the deadline is total, not idle", async () => {
    const result = await testFetch({ timeoutMs: 400 })(
      { method: "GET", url: url("/trickle") },
      allowlistFor(server.port),
    );
    expect(result).toEqual({ ok: false, failure: { reason: "TIMEOUT", timeoutMs: 400 } });
  });

  it("reports a connect timeout when the TLS handshake never completes", async () => {
    const result = await testFetch({ connectTimeoutMs: 200, timeoutMs: 5_000 })(
      { method: "GET", url: url("/", "processor.test", silentPort) },
      allowlistFor(silentPort),
    );
    expect(result).toEqual({ ok: false, failure: { reason: "CONNECT_TIMEOUT", timeoutMs: 200 } });
  });

  it("counts a hanging DNS lookup against the total timeout", async () => {
    const fetch = createSafeFetch({ resolver: () => new Promise(() => {}), timeoutMs: 200 });
    const result = await fetch({ method: "GET", url: url("/") }, allowlistFor(server.port));
    expect(result).toEqual({ ok: false, failure: { reason: "TIMEOUT", timeoutMs: 200 } });
  });
});

describe("response size limit", () => {
  it.each(["/big", "/big-chunked"])("aborts %s beyond the limit", async (path) => {
    const result = await testFetch({ maxResponseBytes: 1024 })(
      { method: "GET", url: url(path) },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: { reason: "RESPONSE_TOO_LARGE", limitBytes: 1024 },
    });
  });

  it("accepts a body of exactly the limit", async () => {
    const result = await testFetch({ maxResponseBytes: 1024 })(
      { method: "GET", url: url("/") },
      allowlistFor(server.port),
    );
    expect(result.ok && result.response.body.length).toBe(1024);
  });
});

describe("TLS verification", () => {
  it("fails when the certificate does not name the host", async () => {
    const result = await testFetch()(
      { method: "GET", url: url("/", "other.test") },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: { reason: "TLS_FAILED", code: "ERR_TLS_CERT_ALTNAME_INVALID" },
    });
  });

  it.each([
    ["Node's bundled roots", undefined],
    ["another CA", "other"],
  ])("fails against %s", async (_label, ca) => {
    const fetch = createSafeFetch({
      resolver: processorResolver().resolve,
      allowLoopback: true,
      ...(ca === undefined ? {} : { ca: otherCert.cert }),
    });
    const result = await fetch({ method: "GET", url: url("/") }, allowlistFor(server.port));
    expect(result).toMatchObject({ ok: false, failure: { reason: "TLS_FAILED" } });
  });

  it("ignores NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment", async () => {
    const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    try {
      const fetch = createSafeFetch({ resolver: processorResolver().resolve, allowLoopback: true });
      const result = await fetch({ method: "GET", url: url("/") }, allowlistFor(server.port));
      expect(result).toMatchObject({ ok: false, failure: { reason: "TLS_FAILED" } });
    } finally {
      if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
    }
  });
});

describe("failures are typed and carry no request data", () => {
  it("DNS failure and empty answers", async () => {
    const thrown = createSafeFetch({
      resolver: async () => Promise.reject(Object.assign(new Error(PAN), { code: "ENOTFOUND" })),
    });
    expect(await thrown({ method: "GET", url: url("/") }, allowlistFor(server.port))).toEqual({
      ok: false,
      failure: { reason: "DNS_FAILED", host: "processor.test", code: "ENOTFOUND" },
    });
    const empty = createSafeFetch({ resolver: async () => [] });
    expect(await empty({ method: "GET", url: url("/") }, allowlistFor(server.port))).toMatchObject({
      failure: { reason: "DNS_FAILED", code: "NO_ADDRESSES" },
    });
  });

  it("connection refused", async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createTcpServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const result = await testFetch()(
      { method: "GET", url: url("/", "processor.test", closed) },
      allowlistFor(closed),
    );
    expect(result).toEqual({
      ok: false,
      failure: { reason: "CONNECT_FAILED", code: "ECONNREFUSED" },
    });
  });

  it.each([
    ["a timeout", { timeoutMs: 200 }, "/hang", "processor.test"],
    ["a TLS failure", {}, "/hang", "other.test"],
    ["a size refusal", { maxResponseBytes: 10 }, "/echo", "processor.test"],
  ])("never echoes the request body or headers in %s", async (_label, options, path, host) => {
    const result = await testFetch(options)(
      {
        method: "POST",
        url: url(path, host),
        headers: { Authorization: `Bearer ${PAN}` },
        body: `{"number":"${PAN}"}`,
      },
      allowlistFor(server.port),
    );
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).not.toContain("4242");
  });

  it("the system resolver answers localhost with loopback addresses only", async () => {
    const answers = await systemResolver("localhost");
    expect(answers.length).toBeGreaterThan(0);
    for (const { address } of answers) expect(["127.0.0.1", "::1"]).toContain(address);
  });

  it("refuses localhost by name unless the test switch is on", async () => {
    const allowlist = compileAllowlist([{ host: "localhost", pathPrefix: "/", port: server.port }]);
    const result = await createSafeFetch()(
      { method: "GET", url: `https://localhost:${server.port}/` },
      allowlist,
    );
    expect(result).toMatchObject({
      ok: false,
      failure: { reason: "ADDRESS_REFUSED", category: "special-use-name" },
    });
  });
});
