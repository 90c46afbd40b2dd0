import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auth, expectProblem } from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";

/**
 * The public intake has a rate class of its own (`webhook`, per client address only): a flood of
 * forged webhooks, each of which costs an HMAC before it is refused, is cut off by address.
 */
describe("webhook intake rate limit", () => {
  let vault: TestVault;
  let path: string;

  beforeAll(async () => {
    vault = await startTestVault(DRIVERS[0] as (typeof DRIVERS)[number], {
      env: { PAYVAULT_RATE_LIMITS: "on", PAYVAULT_RATE_LIMIT_WEBHOOK_IP: "3:0.001" },
    });
    const key = await vault.newKey(vault.tenantId, ["webhooks:manage"]);
    const res = await vault.app.inject({
      method: "POST",
      url: "/v1/webhook-endpoints",
      headers: auth(key),
      payload: { provider: "stripe", secret: "whsec_intakeRateLimitSecret01" },
    });
    path = (res.json() as { intake_path: string }).intake_path;
  });
  afterAll(async () => vault?.close());

  const forged = (remoteAddress: string) =>
    vault.app.inject({
      method: "POST",
      url: path,
      remoteAddress,
      headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" },
      payload: '{"id":"evt_x","type":"charge.succeeded"}',
    });

  it("answers 429 with Retry-After once an address used its bucket; other addresses go on", async () => {
    for (let i = 0; i < 3; i++) {
      expectProblem(await forged("203.0.113.7"), "WEBHOOK_SIGNATURE_INVALID");
    }
    const limited = await forged("203.0.113.7");
    expectProblem(limited, "RATE_LIMITED");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expectProblem(await forged("203.0.113.8"), "WEBHOOK_SIGNATURE_INVALID");
  });
});
