import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  EXP_YEAR,
  expectNoPan,
  expectProblem,
  keyIdOf,
  tokenize,
} from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";
import { scriptedResolver } from "../outbound/local-https.js";
import { startProcessor, type TestProcessor } from "./processor.js";

const CVC = "737";

for (const driver of DRIVERS) {
  describe(`forward proxy on ${driver.name}`, () => {
    let dir: string;
    let processor: TestProcessor;
    let vault: TestVault;
    let key: string;
    let origin: string;
    const received = () => processor.https.requests.length;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "payvault-forward-"));
      processor = await startProcessor(dir);
      const resolver = scriptedResolver({
        "processor.test": [["127.0.0.1"]],
        "internal.test": [["10.1.2.3"]],
      });
      vault = await startTestVault(driver, {
        resolver: resolver.resolve,
        env: {
          PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: "true",
          PAYVAULT_OUTBOUND_CA_FILE: processor.caFile,
          PAYVAULT_OUTBOUND_MAX_RESPONSE_BYTES: "2048",
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

    const forward = (payload: Record<string, unknown>, apiKey = key) =>
      vault.app.inject({ method: "POST", url: "/v1/forward", headers: auth(apiKey), payload });

    const charge = (tokenId: string, extra: Record<string, unknown> = {}) => ({
      url: `${origin}/v1/charges?expand=card`,
      headers: { "Idempotency-Key": "idem-1" },
      body: {
        amount: 1000,
        card: {
          number: `{{ ${tokenId}.number }}`,
          exp_month: `{{ ${tokenId}.exp_month }}`,
          exp_year: `{{${tokenId}.exp_year}}`,
          cvc: `{{ ${tokenId}.cvc }}`,
        },
      },
      ...extra,
    });

    it("sends the real card and CVC, relays status, allowlisted headers and a scrubbed body", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa, { cvc: CVC }) });
      const before = received();
      const auditsBefore = (await auditRows(vault, "token.forward")).length;
      const res = await forward(charge(token.id));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers["cache-control"]).toBe("no-store");
      expect(received()).toBe(before + 1);
      const got = processor.https.requests.at(-1);
      expect(got?.method).toBe("POST");
      expect(got?.url).toBe("/v1/charges?expand=card");
      expect(got?.headers["content-type"]).toBe("application/json");
      expect(got?.headers["idempotency-key"]).toBe("idem-1");
      expect(JSON.parse(String(got?.body))).toEqual({
        amount: 1000,
        card: { number: CARDS.visa, exp_month: 12, exp_year: EXP_YEAR, cvc: CVC },
      });
      const out = res.json() as { status: number; headers: Record<string, string>; body: string };
      expect(out.status).toBe(201);
      expect(Object.keys(out.headers).sort()).toEqual(["content-type", "date", "request-id"]);
      expect(JSON.parse(out.body)).toEqual({
        id: "ch_1",
        status: "succeeded",
        echoed_number: "424242******4242",
      });
      expectNoPan(res.body, CARDS.visa);

      const audits = await auditRows(vault, "token.forward");
      expect(audits).toHaveLength(auditsBefore + 1);
      const event = audits.at(-1);
      expect(event?.object_id).toBe(token.id);
      expect(event?.actor).toBe(keyIdOf(key));
      expect(event?.details).toEqual({
        host: "processor.test",
        port: processor.https.port,
        path: "/v1/charges",
        method: "POST",
        tokens: token.id,
        fields: "number,exp_month,exp_year,cvc",
      });
      expectNoPan(JSON.stringify(audits), CARDS.visa);
      expect(
        await vault.core.metrics.valueOf("forwardRequests", { outcome: "2xx" }),
      ).toBeGreaterThan(0);
    });

    it("the CVC is gone after one forward: a second forward with .cvc is 422 and sends nothing", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.mastercard, { cvc: "123" }) });
      expect((await forward(charge(token.id))).statusCode).toBe(200);
      const before = received();
      const audits = (await auditRows(vault, "token.forward")).length;
      const again = await forward(charge(token.id));
      expectProblem(again, "CVC_NOT_AVAILABLE");
      expect(received()).toBe(before);
      // The card was read (and recorded) before the CVC was found missing: one event.
      expect(await auditRows(vault, "token.forward")).toHaveLength(audits + 1);
      // Without .cvc the same token still forwards.
      const { cvc: _cvc, ...card } = charge(token.id).body.card;
      expect((await forward({ ...charge(token.id), body: { card } })).statusCode).toBe(200);
    });

    it("fills a form body and header values", async () => {
      const token = await tokenize(vault, key, {
        card: cardOf(CARDS.amex, { name: "Ada Lovelace" }),
      });
      const res = await forward({
        url: `${origin}/v1/charges`,
        content_type: "application/x-www-form-urlencoded",
        headers: { authorization: `Bearer sk_test_{{ ${token.id}.exp_year }}` },
        body: {
          "card[number]": `{{ ${token.id}.number }}`,
          "card[name]": `{{ ${token.id}.name }}`,
          "card[exp]": `{{ ${token.id}.exp_month }}/{{ ${token.id}.exp_year }}`,
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const got = processor.https.requests.at(-1);
      expect(got?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
      expect(got?.headers.authorization).toBe(`Bearer sk_test_${EXP_YEAR}`);
      expect(Object.fromEntries(new URLSearchParams(String(got?.body)))).toEqual({
        "card[number]": CARDS.amex,
        "card[name]": "Ada Lovelace",
        "card[exp]": `12/${EXP_YEAR}`,
      });
      expectNoPan(res.body, CARDS.amex);
    });

    it("another tenant's token is a 404, nothing is sent and nothing recorded", async () => {
      const other = await vault.newTenant(["tokens:write", "proxy:forward"]);
      const theirs = await tokenize(vault, other.key, {
        card: cardOf(CARDS.discover, { cvc: "999" }),
      });
      const mine = await tokenize(vault, key, { card: cardOf(CARDS.visa2) });
      const before = received();
      const audits = (await auditRows(vault, "token.forward")).length;
      const res = await forward({
        url: `${origin}/v1/charges`,
        body: { a: `{{ ${mine.id}.number }}`, b: `{{ ${theirs.id}.number }}` },
      });
      expectProblem(res, "TOKEN_NOT_FOUND");
      expect(received()).toBe(before);
      expect(await auditRows(vault, "token.forward")).toHaveLength(audits);
      // The other tenant's CVC is untouched.
      const scope = { tenantId: other.tenantId, environment: "live" as const };
      expect((await vault.core.cvcs.take(scope, theirs.id))?.revealDigits()).toBe("999");
    });

    it("a destination off the allowlist is 403 before any card data is read", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa3, { cvc: CVC }) });
      const before = received();
      const audits = (await auditRows(vault, "token.forward")).length;
      for (const url of [
        `${origin}/v2/charges`,
        `https://other.test:${processor.https.port}/v1/charges`,
        `http://processor.test:${processor.https.port}/v1/charges`,
        `${origin}/v1/../admin`.replace("/v1/../", "/v1/%2e%2e/"),
        `https://processor.test/v1/charges`,
      ]) {
        const res = await forward({ ...charge(token.id), url });
        expectProblem(res, "FORWARD_DESTINATION_NOT_ALLOWED");
      }
      expect(received()).toBe(before);
      expect(await auditRows(vault, "token.forward")).toHaveLength(audits);
      const scope = { tenantId: vault.tenantId, environment: "live" as const };
      expect((await vault.core.cvcs.take(scope, token.id))?.revealDigits()).toBe(CVC);
    });

    it("a template error is a 400 naming the field, before anything else", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa4) });
      const res = await forward({
        url: "https://not-allowlisted.test/x",
        body: { card: { number: `{{ ${token.id}.pan }}`, raw: CARDS.visa4 } },
      });
      const problem = expectProblem(res, "FORWARD_TEMPLATE_INVALID");
      expect(problem.errors).toEqual([
        expect.objectContaining({ field: "body.card.number", code: "PLACEHOLDER_FIELD_UNKNOWN" }),
      ]);
      expectNoPan(res.body, CARDS.visa4);
    });

    it("a redirect is relayed as the status and never followed", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa) });
      const before = received();
      const res = await forward({
        url: `${origin}/v1/redirect`,
        body: { n: `{{ ${token.id}.number }}` },
      });
      expect(res.statusCode, res.body).toBe(200);
      const out = res.json() as { status: number; headers: Record<string, string> };
      expect(out.status).toBe(302);
      expect(out.headers.location).toBe("http://169.254.169.254/latest/meta-data/");
      expect(received()).toBe(before + 1);
    });

    it("a processor that never answers is a 504 within timeout_ms; a body over the cap a 502", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa) });
      const started = Date.now();
      const slow = await forward({
        url: `${origin}/v1/hang`,
        timeout_ms: 300,
        body: { n: `{{ ${token.id}.number }}` },
      });
      expect(expectProblem(slow, "FORWARD_UPSTREAM_TIMEOUT").detail).toBe("TIMEOUT");
      expect(Date.now() - started).toBeLessThan(5_000);
      const big = await forward({
        url: `${origin}/v1/big`,
        body: { n: `{{ ${token.id}.number }}` },
      });
      expect(expectProblem(big, "FORWARD_UPSTREAM_FAILED").detail).toBe("RESPONSE_TOO_LARGE");
      expect(
        await vault.core.metrics.valueOf("forwardRequests", {
          outcome: "FORWARD_UPSTREAM_TIMEOUT",
        }),
      ).toBe(1);
    });

    it("refuses 10.0.0.0/8 and 169.254.169.254 even with the loopback test switch on; the CVC survives", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.jcb, { cvc: CVC }) });
      for (const host of ["169.254.169.254", "10.0.0.1", "internal.test"]) {
        const add = await vault.app.inject({
          method: "POST",
          url: "/v1/forward/destinations",
          headers: auth(vault.adminKey),
          payload: { host, path_prefix: "/" },
        });
        expect(add.statusCode, add.body).toBe(201);
        const res = await forward(charge(token.id, { url: `https://${host}/charge` }));
        expectProblem(res, "FORWARD_ADDRESS_REFUSED");
      }
      const scope = { tenantId: vault.tenantId, environment: "live" as const };
      expect((await vault.core.cvcs.take(scope, token.id))?.revealDigits()).toBe(CVC);
    });

    it("logs one line per forward with no card number, body or header", async () => {
      const text = vault.logs.text;
      expectNoPan(text, CARDS.visa, CARDS.mastercard, CARDS.amex, CARDS.visa3, CARDS.jcb);
      expect(text).not.toContain("sk_test_");
      const lines = vault.logs.lines.filter((line) => line.includes('"msg":"forward"'));
      expect(lines.length).toBeGreaterThan(5);
      expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
        tenant_id: vault.tenantId,
        key_id: keyIdOf(key),
        destination_host: "processor.test",
        outcome: "2xx",
      });
    });
  });
}
