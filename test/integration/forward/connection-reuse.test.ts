import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileAllowlist } from "../../../src/outbound/destination.js";
import { createSafeFetch } from "../../../src/outbound/safe-fetch.js";
import {
  type LocalHttps,
  scriptedResolver,
  startHttps,
  type TestCertificate,
  testCertificate,
} from "../outbound/local-https.js";

/**
 * Keep-alive in the outbound client (docs/outbound.md, "Connection reuse"): a second request to
 * the same checked address reuses the TLS connection; a request whose fresh resolution gives
 * another address never gets that connection. Two real HTTPS servers on the same port, one on
 * 127.0.0.1 and one on 127.0.0.2, count the TCP connections they accept.
 */
let cert: TestCertificate;
let first: LocalHttps;
let second: LocalHttps;

beforeAll(async () => {
  cert = await testCertificate(["processor.test"]);
  const handler = (_req: unknown, res: { writeHead(s: number): { end(b: string): void } }) =>
    res.writeHead(200).end("ok");
  first = await startHttps(cert, handler as never, "127.0.0.1");
  second = await startHttps(cert, handler as never, "127.0.0.2", first.port);
});
afterAll(async () => {
  await first?.close();
  await second?.close();
});

const allowlist = () =>
  compileAllowlist([{ host: "processor.test", pathPrefix: "/", port: first.port }]);
const url = () => `https://processor.test:${first.port}/pay`;

describe("outbound connection reuse", () => {
  it("reuses the connection to the same checked address, resolving and checking each time", async () => {
    const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const before = first.connections();
    for (let i = 0; i < 3; i++) {
      const result = await fetch({ method: "POST", url: url(), body: "x" }, allowlist());
      expect(result.ok && result.response.status).toBe(200);
    }
    expect(first.connections() - before).toBe(1);
    expect(resolver.calls).toEqual(["processor.test", "processor.test", "processor.test"]);
  });

  it("a different resolved address gets its own connection, never the pooled one", async () => {
    const resolver = scriptedResolver({
      "processor.test": [["127.0.0.1"], ["127.0.0.2"], ["127.0.0.1"]],
    });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const [a, b] = [first.connections(), second.connections()];
    const n = first.requests.length;
    const m = second.requests.length;
    for (let i = 0; i < 3; i++) {
      expect((await fetch({ method: "GET", url: url() }, allowlist())).ok).toBe(true);
    }
    expect(first.connections() - a).toBe(1);
    expect(second.connections() - b).toBe(1);
    expect(first.requests.length - n).toBe(2);
    expect(second.requests.length - m).toBe(1);
  });

  it("a refused address on a later resolution is refused even while a pooled connection is open", async () => {
    const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"], ["169.254.169.254"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    expect((await fetch({ method: "GET", url: url() }, allowlist())).ok).toBe(true);
    const n = first.requests.length;
    const refused = await fetch({ method: "GET", url: url() }, allowlist());
    expect(refused.ok === false && refused.failure.reason).toBe("ADDRESS_REFUSED");
    expect(first.requests.length).toBe(n);
  });

  it("without keep-alive every request opens a connection", async () => {
    const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
      keepAlive: false,
    });
    const before = first.connections();
    await fetch({ method: "GET", url: url() }, allowlist());
    await fetch({ method: "GET", url: url() }, allowlist());
    expect(first.connections() - before).toBe(2);
  });
});

describe("late request parts", () => {
  it("are asked for only after the address check and a verified connection, and are what is sent", async () => {
    const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const calls: string[] = [];
    const result = await fetch(
      {
        method: "POST",
        url: url(),
        headers: { authorization: "-" },
        lateParts: async () => {
          calls.push("late");
          return { headers: { authorization: "Bearer late" }, body: "late-body" };
        },
      },
      allowlist(),
    );
    expect(result.ok).toBe(true);
    expect(calls).toEqual(["late"]);
    const got = first.requests.at(-1);
    expect(got?.headers.authorization).toBe("Bearer late");
    expect(got?.headers["content-length"]).toBe("9");
    expect(String(got?.body)).toBe("late-body");
  });

  it("are never asked for when the address is refused or the certificate does not verify", async () => {
    let called = 0;
    const lateParts = async () => {
      called++;
      return { headers: {}, body: "x" };
    };
    const refused = createSafeFetch({
      resolver: scriptedResolver({ "processor.test": [["10.0.0.1"]] }).resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const r1 = await refused({ method: "POST", url: url(), lateParts }, allowlist());
    expect(r1.ok === false && r1.failure.reason).toBe("ADDRESS_REFUSED");
    const other = await testCertificate(["processor.test"]);
    const untrusted = createSafeFetch({
      resolver: scriptedResolver({ "processor.test": [["127.0.0.1"]] }).resolve,
      ca: other.cert,
      allowLoopback: true,
    });
    const r2 = await untrusted({ method: "POST", url: url(), lateParts }, allowlist());
    expect(r2.ok === false && r2.failure.reason).toBe("TLS_FAILED");
    expect(called).toBe(0);
  });

  it("when they throw, nothing is sent and the call rejects with that error", async () => {
    const fetch = createSafeFetch({
      resolver: scriptedResolver({ "processor.test": [["127.0.0.1"]] }).resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const n = first.requests.length;
    const refusal = new Error("CVC missing");
    await expect(
      fetch(
        {
          method: "POST",
          url: url(),
          lateParts: async () => {
            throw refusal;
          },
        },
        allowlist(),
      ),
    ).rejects.toBe(refusal);
    // The pool still works afterwards, and the aborted request never reached the server.
    expect((await fetch({ method: "GET", url: url() }, allowlist())).ok).toBe(true);
    expect(first.requests.length).toBe(n + 1);
  });
});
