import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServedVault } from "../support/browser.js";
import { serveVault } from "../support/browser.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const run = promisify(execFile);

// docs/capture.md's runnable example, run as a user would, against a vault over HTTPS.
describe("examples/nested-jwt-client.mjs", () => {
  let vault: TestVault;
  let served: ServedVault;

  beforeAll(async () => {
    vault = await startTestVault(DRIVERS[0] as (typeof DRIVERS)[number]);
    served = await serveVault(vault);
  });
  afterAll(async () => {
    await served?.close();
    await vault?.close();
  });

  it("registers keys, tokenizes with a signed and encrypted request, and reads the encrypted reply", async () => {
    const ca = join(vault.dataDir, "example-ca.pem");
    await writeFile(ca, served.tls.cert);
    const key = await vault.newKey(vault.tenantId, ["keys:manage", "tokens:write"]);
    const { stdout } = await run(process.execPath, ["examples/nested-jwt-client.mjs"], {
      env: {
        ...process.env,
        PAYVAULT_URL: served.origin,
        PAYVAULT_CA: ca,
        PAYVAULT_API_KEY: key,
        PAYVAULT_TENANT_ID: vault.tenantId,
      },
      timeout: 30_000,
    });
    const result = JSON.parse(stdout.trim()) as {
      status: number;
      content_type: string;
      token: string;
      card: { last4: string };
    };
    expect(result.status).toBe(201);
    expect(result.content_type).toMatch(/^application\/jose/);
    expect(result.token).toMatch(/^tok_/);
    expect(result.card.last4).toBe("4242");
    expect(stdout).not.toContain("4242424242424242");
  });
});
