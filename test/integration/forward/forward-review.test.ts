import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileAllowlist } from "../../../src/outbound/destination.js";
import { createSafeFetch } from "../../../src/outbound/safe-fetch.js";
import { auth, CARDS, cardOf, expectProblem, tokenize } from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";
import { scriptedResolver } from "../outbound/local-https.js";
import { startProcessor, type TestProcessor } from "./processor.js";

/**
 * Findings of the security review of the forward proxy and the outbound client: header values
 * Node would refuse, requests queued behind a full connection pool, and the CVC never sent over
 * a pooled connection.
 */
for (const driver of DRIVERS) {
  describe(`forward proxy edge cases on ${driver.name}`, () => {
    let dir: string;
    let processor: TestProcessor;
    let vault: TestVault;
    let key: string;
    let origin: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "payvault-forward-review-"));
      processor = await startProcessor(dir);
      const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
      vault = await startTestVault(driver, {
        resolver: resolver.resolve,
        env: {
          PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: "on",
          PAYVAULT_OUTBOUND_CA_FILE: processor.caFile,
        },
      });
      key = await vault.newKey(vault.tenantId, ["tokens:write", "proxy:forward"]);
      origin = `https://processor.test:${processor.https.port}`;
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/forward/destinations",
        headers: auth(vault.adminKey),
        payload: { host: `processor.test:${processor.https.port}`, path_prefix: "/v1" },
      });
      expect(res.statusCode, res.body).toBe(201);
    });
    afterAll(async () => {
      await vault?.close();
      await processor?.https.close();
      await rm(dir, { recursive: true, force: true });
    });

    const forward = (payload: Record<string, unknown>) =>
      vault.app.inject({ method: "POST", url: "/v1/forward", headers: auth(key), payload });

    const numberOnly = (tokenId: string, extra: Record<string, unknown> = {}) => ({
      url: `${origin}/v1/charges`,
      body: { card: { number: `{{ ${tokenId}.number }}` } },
      ...extra,
    });

    it("a header value outside visible ASCII is a 400, never a crash, and nothing is sent", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa), dedupe: false });
      const before = processor.https.requests.length;
      const literal = await forward(numberOnly(token.id, { headers: { "Idempotency-Key": "李" } }));
      expectProblem(literal, "FORWARD_TEMPLATE_INVALID");
      // A cardholder name in another script, rendered into a header after the connection opened.
      const named = await tokenize(vault, key, {
        card: cardOf(CARDS.mastercard, { name: "Antonín Dvořák" }),
        dedupe: false,
      });
      const late = await forward(
        numberOnly(named.id, { headers: { "Idempotency-Key": `{{ ${named.id}.name }}` } }),
      );
      expectProblem(late, "FORWARD_TEMPLATE_INVALID");
      expect(processor.https.requests.length).toBe(before);
      // The vault is still up and forwarding.
      const ok = await forward(numberOnly(token.id));
      expect(ok.statusCode, ok.body).toBe(200);
      expect(processor.https.requests.length).toBe(before + 1);
    });

    it("a forward carrying a CVC opens a connection of its own; others reuse the pool", async () => {
      const token = await tokenize(vault, key, {
        card: cardOf(CARDS.visa, { cvc: "737" }),
        dedupe: false,
      });
      expect((await forward(numberOnly(token.id))).statusCode).toBe(200);
      const pooled = processor.https.connections();
      expect((await forward(numberOnly(token.id))).statusCode).toBe(200);
      expect(processor.https.connections()).toBe(pooled);
      const withCvc = await forward({
        url: `${origin}/v1/charges`,
        body: { card: { number: `{{ ${token.id}.number }}`, cvc: `{{ ${token.id}.cvc }}` } },
      });
      expect(withCvc.statusCode, withCvc.body).toBe(200);
      expect(processor.https.connections()).toBe(pooled + 1);
    });
  });
}

describe("the outbound pool when every connection is busy", () => {
  let dir: string;
  let processor: TestProcessor;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-pool-"));
    processor = await startProcessor(dir);
  });
  afterAll(async () => {
    await processor?.https.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("a request queued for a freed connection is sent, late parts included", async () => {
    const { readFile } = await import("node:fs/promises");
    const fetch = createSafeFetch({
      allowLoopback: true,
      ca: await readFile(processor.caFile, "utf8"),
      resolver: scriptedResolver({ "processor.test": [["127.0.0.1"]] }).resolve,
      connectTimeoutMs: 2_000,
      keepAlive: {
        maxAgents: 4,
        maxSocketsPerAgent: 1,
        maxFreeSocketsPerAgent: 1,
        idleTimeoutMs: 4_000,
      },
    });
    const allow = compileAllowlist([
      { host: "processor.test", port: processor.https.port, pathPrefix: "/v1" },
    ]);
    let lateCalls = 0;
    const results = await Promise.all(
      [1, 2, 3].map(() =>
        fetch(
          {
            method: "POST",
            url: `https://processor.test:${processor.https.port}/v1/charges`,
            headers: { "content-type": "application/json" },
            lateParts: async () => {
              lateCalls += 1;
              return { headers: { "content-type": "application/json" }, body: '{"n":1}' };
            },
          },
          allow,
        ),
      ),
    );
    expect(results.map((r) => (r.ok ? r.response.status : r.failure.reason))).toEqual([
      201, 201, 201,
    ]);
    expect(lateCalls).toBe(3);
  });
});
