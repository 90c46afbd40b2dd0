import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auth, CARDS, cardOf, expectProblem, tokenize } from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";
import { scriptedResolver } from "../outbound/local-https.js";
import { startProcessor, type TestProcessor } from "./processor.js";

/**
 * Server-side request forgery through the forward proxy, with the loopback test switch OFF (as
 * in production): a real HTTPS processor listens on 127.0.0.1, allowlisted under its address
 * and under names resolving to it, and must never be reached.
 */
for (const driver of DRIVERS) {
  describe(`forward proxy SSRF refusals on ${driver.name}`, () => {
    let dir: string;
    let processor: TestProcessor;
    let vault: TestVault;
    let key: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "payvault-forward-ssrf-"));
      processor = await startProcessor(dir);
      const resolver = scriptedResolver({
        "rebind.test": [["127.0.0.1"]],
        "mixed.test": [["93.184.216.34", "127.0.0.1"]],
        "metadata-alias.test": [["169.254.169.254"]],
        "private.test": [["10.20.30.40"]],
        "v6.test": [["::1"]],
      });
      vault = await startTestVault(driver, {
        resolver: resolver.resolve,
        env: { PAYVAULT_OUTBOUND_CA_FILE: processor.caFile },
      });
      key = await vault.newKey(vault.tenantId, ["tokens:write", "proxy:forward"]);
    });
    afterAll(async () => {
      await vault?.close();
      await processor?.https.close();
      await rm(dir, { recursive: true, force: true });
    });

    const hosts = (port: number) => [
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      `10.0.0.1:${port}`,
      "169.254.169.254",
      `rebind.test:${port}`,
      `mixed.test:${port}`,
      "metadata-alias.test",
      "private.test",
      "v6.test",
      `localhost:${port}`,
    ];

    it("refuses loopback, private, link-local and metadata addresses after resolution; nothing is reached and the CVC survives", async () => {
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa, { cvc: "737" }) });
      for (const host of hosts(processor.https.port)) {
        const add = await vault.app.inject({
          method: "POST",
          url: "/v1/forward/destinations",
          headers: auth(vault.adminKey),
          payload: { host, path_prefix: "/" },
        });
        expect(add.statusCode, `${host}: ${add.body}`).toBe(201);
        const res = await vault.app.inject({
          method: "POST",
          url: "/v1/forward",
          headers: auth(key),
          payload: {
            url: `https://${host}/v1/charges`,
            body: { n: `{{ ${token.id}.number }}`, c: `{{ ${token.id}.cvc }}` },
          },
        });
        expectProblem(res, "FORWARD_ADDRESS_REFUSED");
      }
      expect(processor.https.requests).toHaveLength(0);
      expect(processor.https.connections()).toBe(0);
      const scope = { tenantId: vault.tenantId, environment: "live" as const };
      expect((await vault.core.cvcs.take(scope, token.id))?.revealDigits()).toBe("737");
    });
  });
}
