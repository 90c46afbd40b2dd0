import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileAllowlist } from "../../../src/outbound/destination.js";
import { pinnedLookup } from "../../../src/outbound/resolver.js";
import { createSafeFetch } from "../../../src/outbound/safe-fetch.js";
import {
  type LocalHttps,
  scriptedResolver,
  startHttps,
  type TestCertificate,
  testCertificate,
} from "./local-https.js";

let cert: TestCertificate;
let server: LocalHttps;
let decoy: LocalHttps;
let pinnedServer: LocalHttps;

beforeAll(async () => {
  cert = await testCertificate(["processor.test", "evil.test", "rebind.test", "localhost"]);
  server = await startHttps(cert, (req, res) => {
    if (req.url === "/redirect") {
      res.writeHead(302, { location: "https://169.254.169.254/latest/meta-data/iam/" }).end();
    } else {
      res.writeHead(200, { "content-type": "text/plain" }).end("processor");
    }
  });
  // Rebinding: the checked address is 127.0.0.2; a second lookup would answer 127.0.0.1.
  pinnedServer = await startHttps(cert, (_req, res) => res.end("pinned"), "127.0.0.2");
  decoy = await startHttps(cert, (_req, res) => res.end("decoy"), "127.0.0.1", pinnedServer.port);
});

afterAll(async () => {
  await Promise.all([server.close(), decoy.close(), pinnedServer.close()]);
});

const allowlistFor = (port: number) =>
  compileAllowlist(
    ["processor.test", "evil.test", "rebind.test", "localhost", "metadata.google.internal"]
      .concat(["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "[::ffff:127.0.0.1]"])
      .map((host) => ({ host, pathPrefix: "/", port })),
  );

describe("safe fetch refuses internal destinations (SSRF)", () => {
  it.each([
    ["127.0.0.1", "loopback", "127.0.0.1"],
    ["[::1]", "loopback", "::1"],
    ["10.0.0.1", "private", "10.0.0.1"],
    ["169.254.169.254", "link-local", "169.254.169.254"],
    ["[::ffff:127.0.0.1]", "loopback", "::ffff:7f00:1"],
  ])("refuses https://%s without connecting", async (host, category, address) => {
    const resolver = scriptedResolver({});
    const fetch = createSafeFetch({ resolver: resolver.resolve, ca: cert.cert });
    const before = server.connections();
    const result = await fetch(
      { method: "GET", url: `https://${host}:${server.port}/` },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: expect.objectContaining({ reason: "ADDRESS_REFUSED", category, address }),
    });
    expect(resolver.calls).toEqual([]);
    expect(server.connections()).toBe(before);
  });

  it("refuses a non-canonical IPv4 spelling of loopback before anything else", async () => {
    const fetch = createSafeFetch({ ca: cert.cert, allowLoopback: true });
    const result = await fetch(
      { method: "GET", url: `https://0x7f.1:${server.port}/` },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: { reason: "DESTINATION_NOT_ALLOWED", refusal: "NON_CANONICAL_HOST" },
    });
  });

  it("refuses a metadata service by name, without a lookup", async () => {
    const resolver = scriptedResolver({ "metadata.google.internal": [["8.8.8.8"]] });
    const fetch = createSafeFetch({ resolver: resolver.resolve });
    const result = await fetch(
      { method: "GET", url: `https://metadata.google.internal:${server.port}/computeMetadata/v1/` },
      allowlistFor(server.port),
    );
    expect(result).toEqual({
      ok: false,
      failure: {
        reason: "ADDRESS_REFUSED",
        host: "metadata.google.internal",
        category: "metadata-name",
      },
    });
    expect(resolver.calls).toEqual([]);
  });

  it.each([
    ["127.0.0.1", ["127.0.0.1"], "loopback"],
    ["::1", ["::1"], "loopback"],
    ["169.254.169.254", ["169.254.169.254"], "link-local"],
    ["a public and a private answer", ["8.8.8.8", "10.0.0.1"], "private"],
    ["a NAT64 spelling of the metadata address", ["64:ff9b::a9fe:a9fe"], "link-local"],
  ])("refuses a name that resolves to %s", async (_label, addresses, category) => {
    const resolver = scriptedResolver({ "evil.test": [addresses] });
    const fetch = createSafeFetch({ resolver: resolver.resolve, ca: cert.cert });
    const before = server.connections();
    const result = await fetch(
      { method: "GET", url: `https://evil.test:${server.port}/` },
      allowlistFor(server.port),
    );
    expect(result).toMatchObject({
      ok: false,
      failure: { reason: "ADDRESS_REFUSED", host: "evil.test", category },
    });
    expect(resolver.calls).toEqual(["evil.test"]);
    expect(server.connections()).toBe(before);
  });

  it("allowLoopback admits loopback only, never the metadata address", async () => {
    const resolver = scriptedResolver({ "evil.test": [["169.254.169.254"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const result = await fetch(
      { method: "GET", url: `https://evil.test:${server.port}/` },
      allowlistFor(server.port),
    );
    expect(result).toMatchObject({
      ok: false,
      failure: { reason: "ADDRESS_REFUSED", category: "link-local" },
    });
  });

  it("connects to the checked address only: no second lookup (DNS rebinding)", async () => {
    const resolver = scriptedResolver({ "rebind.test": [["127.0.0.2"], ["127.0.0.1"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const result = await fetch(
      { method: "GET", url: `https://rebind.test:${pinnedServer.port}/` },
      allowlistFor(pinnedServer.port),
    );
    expect(result.ok && result.response.body.toString()).toBe("pinned");
    expect(resolver.calls).toEqual(["rebind.test"]);
    expect(decoy.connections()).toBe(0);
    expect(pinnedServer.requests.at(-1)?.headers.host).toBe(`rebind.test:${pinnedServer.port}`);
  });

  it("refuses when the first answer is private and a later one public", async () => {
    const resolver = scriptedResolver({ "rebind.test": [["10.0.0.1", "8.8.8.8"]] });
    const fetch = createSafeFetch({ resolver: resolver.resolve, ca: cert.cert });
    const result = await fetch(
      { method: "GET", url: `https://rebind.test:${server.port}/` },
      allowlistFor(server.port),
    );
    expect(result).toMatchObject({
      ok: false,
      failure: { reason: "ADDRESS_REFUSED", address: "10.0.0.1" },
    });
  });

  it("returns a redirect to the metadata service as a 3xx and does not follow it", async () => {
    const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
    const fetch = createSafeFetch({
      resolver: resolver.resolve,
      ca: cert.cert,
      allowLoopback: true,
    });
    const before = server.requests.length;
    const result = await fetch(
      { method: "GET", url: `https://processor.test:${server.port}/redirect` },
      allowlistFor(server.port),
    );
    expect(result.ok && result.response.status).toBe(302);
    expect(result.ok && result.response.headers.location).toBe(
      "https://169.254.169.254/latest/meta-data/iam/",
    );
    expect(server.requests.length).toBe(before + 1);
    expect(resolver.calls).toEqual(["processor.test"]);
  });
});

describe("pinnedLookup", () => {
  it("answers any name with the pinned address, in both calling conventions", () => {
    const lookup = pinnedLookup({ address: "203.0.113.9", family: 4 });
    const single: unknown[] = [];
    lookup("elsewhere.test", { family: 0 }, (...args) => single.push(...args));
    expect(single).toEqual([null, "203.0.113.9", 4]);
    const all: unknown[] = [];
    lookup("elsewhere.test", { all: true }, (...args) => all.push(...args));
    expect(all).toEqual([null, [{ address: "203.0.113.9", family: 4 }]]);
  });
});
