import { describe, expect, it } from "vitest";
import { JWS_ALGS } from "../../../src/jose/algorithms.js";
import { validateTenantJwk } from "../../../src/jose/tenant-jwk.js";
import { readCompactJws, verifyJws } from "../../../src/jose/verify-jws.js";
import { outcome } from "./expect-rejected.js";
import { headerOf, loadJoseVectors, type WycheproofJwsFile } from "./jose-vectors.js";
import { verificationKeyLookup } from "./key-lookup.js";

/**
 * The kept subset of Wycheproof's json_web_signature_test.json (see the file's "source").
 * Each group's key goes through the same path a tenant's registered key does
 * (`validateTenantJwk` for "sig", then a kid lookup), and each JWS through `verifyJws` with the
 * full allowlist. "valid" cases with an allowlisted alg must verify; "valid" cases outside the
 * allowlist must be refused for the allowlist (the alg, or a key type the allowlist excludes);
 * "invalid" cases must be refused.
 */
const file = loadJoseVectors<WycheproofJwsFile>("wycheproof-jws.json");
const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
const ALLOWLIST_REASONS = ["alg_not_allowed", "jwk:symmetric", "jwk:alg", "jwk:kty", "jwk:crv"];

async function verifyWithGroupKey(group: WycheproofJwsFile["testGroups"][number], jws: string) {
  const registered = await validateTenantJwk(group.public ?? group.private, "sig");
  return verifyJws(jws, verificationKeyLookup([registered]), { algorithms: JWS_ALGS });
}

function allowlisted(jws: string): boolean {
  return (JWS_ALGS as readonly unknown[]).includes(headerOf(jws)?.alg);
}

describe("Wycheproof JSON Web Signature", () => {
  it("runs every kept test case", () => {
    expect(cases).toHaveLength(172);
    expect(file.numberOfTests).toBe(172);
    expect(new Set(cases.map(({ test }) => test.tcId)).size).toBe(172);
  });

  it("has valid allowlisted cases for ES256 and PS256", () => {
    const accepted = cases.filter(({ test }) => test.result === "valid" && allowlisted(test.jws));
    expect(accepted.map(({ test }) => test.tcId)).toEqual([18, 272, 273, 274, 275, 287, 288, 378]);
  });

  it.each(cases.map(({ group, test }) => ({ ...test, group })))(
    "tcId $tcId $comment ($result)",
    async ({ group, jws, result }) => {
      let payload: Uint8Array | undefined;
      const reason = await outcome(async () => {
        payload = (await verifyWithGroupKey(group, jws)).payload;
      });
      if (result === "valid" && allowlisted(jws)) {
        expect(reason).toBe("accepted");
        expect(Buffer.from(payload ?? []).toString("base64url")).toBe(jws.split(".")[1]);
      } else if (result === "valid") {
        expect(ALLOWLIST_REASONS).toContain(reason);
      } else {
        expect(reason).not.toBe("accepted");
      }
    },
  );

  it("tcId 372, marked valid, has a '?' in its header: the gate refuses it as malformed", async () => {
    // RFC 7515 §2 base64url has no such character; whatever the key, the header is never read.
    const tc372 = cases.find(({ test }) => test.tcId === 372);
    const reason = await outcome(async () =>
      readCompactJws(tc372?.test.jws, { algorithms: JWS_ALGS }),
    );
    expect(reason).toBe("malformed");
  });
});
