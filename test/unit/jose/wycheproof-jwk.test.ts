import { describe, expect, it } from "vitest";
import { JWS_ALGS } from "../../../src/jose/algorithms.js";
import { validateTenantJwk } from "../../../src/jose/tenant-jwk.js";
import { verifyJws } from "../../../src/jose/verify-jws.js";
import { outcome } from "./expect-rejected.js";
import { loadJoseVectors, type WycheproofJwkFile } from "./jose-vectors.js";
import { verificationKeyLookup } from "./key-lookup.js";

/**
 * Every case of Wycheproof's json_web_key_test.json: a key set, registered as a tenant's
 * signing keys (each key through `validateTenantJwk`, the set through the kid lookup, which
 * refuses duplicate kids), then the JWS verified against it. Its "valid" cases all use HS* or
 * RS256, so the vault must refuse them, for the allowlist (symmetric key, or an alg it does not
 * accept); "invalid" cases must be refused.
 */
const file = loadJoseVectors<WycheproofJwkFile>("wycheproof-jwk.json");
const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));

async function register(group: WycheproofJwkFile["testGroups"][number]) {
  const keys = (group.public ?? group.private).keys;
  return verificationKeyLookup(await Promise.all(keys.map((key) => validateTenantJwk(key, "sig"))));
}

describe("Wycheproof JSON Web Key", () => {
  it("runs every test case in the file", () => {
    expect(cases).toHaveLength(26);
    expect(file.numberOfTests).toBe(26);
  });

  it.each(cases.map(({ group, test }) => ({ ...test, group })))(
    "tcId $tcId $comment ($result)",
    async ({ group, jws, result }) => {
      const reason = await outcome(async () => {
        const keys = await register(group);
        await verifyJws(jws, keys, { algorithms: JWS_ALGS });
      });
      if (result === "valid") expect(["jwk:symmetric", "jwk:alg"]).toContain(reason);
      else expect(reason).not.toBe("accepted");
    },
  );

  it("refuses a key set that reuses a kid, before any signature is checked", async () => {
    const key = await validateTenantJwk(
      {
        kty: "EC",
        crv: "P-256",
        x: "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY",
        y: "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw",
        kid: "k",
      },
      "sig",
    );
    expect(() => verificationKeyLookup([key, key])).toThrow(/duplicate kid/);
  });
});
