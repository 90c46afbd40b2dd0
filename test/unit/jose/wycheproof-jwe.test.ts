import { importJWK } from "jose";
import { describe, expect, it } from "vitest";
import { CAPTURE_JWE_ALGS, CAPTURE_JWE_ENC } from "../../../src/jose/algorithms.js";
import { decryptCaptureJwe } from "../../../src/jose/capture-jwe.js";
import { openParsedJwe, readCompactJwe } from "../../../src/jose/jwe-open.js";
import { JoseRejected } from "../../../src/jose/rejected.js";
import { b64u } from "./fixtures.js";
import { headerOf, loadJoseVectors, type WycheproofJweFile } from "./jose-vectors.js";

/**
 * Every case of Wycheproof's json_web_encryption_test.json. "valid" cases whose alg and enc are
 * on the vault's allowlist must decrypt to the published plaintext; "valid" cases outside it
 * must be refused, and refused for the allowlist; "invalid" cases must be refused.
 *
 * Wycheproof's JWEs carry no kid, and the vault finds keys by kid only. So the cases run the
 * policy and the decryption with the group's key handed over directly (`readCompactJwe` +
 * `openParsedJwe`, the two halves `decryptCaptureJwe` calls around its kid lookup); a separate
 * case shows that `decryptCaptureJwe` itself refuses them for the missing kid.
 */
const file = loadJoseVectors<WycheproofJweFile>("wycheproof-jwe.json");
const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
const ALLOWLIST_REASONS = ["alg_not_allowed", "enc_not_allowed"];

function allowlisted(jwe: string): boolean {
  const header = headerOf(jwe);
  return (
    header !== undefined &&
    (CAPTURE_JWE_ALGS as readonly unknown[]).includes(header.alg) &&
    header.enc === CAPTURE_JWE_ENC
  );
}

async function run(
  group: WycheproofJweFile["testGroups"][number],
  jwe: string,
): Promise<Uint8Array> {
  const parsed = readCompactJwe(jwe);
  const privateKey = await importJWK(group.private, group.private.alg);
  return openParsedJwe(parsed, { alg: parsed.alg, privateKey: privateKey as CryptoKey });
}
type CryptoKey = import("jose").CryptoKey;

async function outcome(group: WycheproofJweFile["testGroups"][number], jwe: string) {
  try {
    return { plaintext: await run(group, jwe) };
  } catch (err) {
    if (err instanceof JoseRejected) return { reason: err.reason };
    throw err;
  }
}

describe("Wycheproof JSON Web Encryption", () => {
  it("runs every test case in the file", () => {
    expect(cases).toHaveLength(139);
    expect(file.numberOfTests).toBe(139);
    expect(new Set(cases.map(({ test }) => test.tcId)).size).toBe(139);
  });

  it("has valid cases on the allowlist, so acceptance is exercised too", () => {
    const accepted = cases.filter(({ test }) => test.result === "valid" && allowlisted(test.jwe));
    expect(accepted.map(({ test }) => test.tcId)).toEqual([66, 90]);
  });

  it.each(cases.map(({ group, test }) => ({ ...test, group })))(
    "tcId $tcId $comment ($result)",
    async ({ group, jwe, result, pt }) => {
      const got = await outcome(group, jwe);
      if (result === "valid" && allowlisted(jwe)) {
        expect(got.reason).toBeUndefined();
        expect(Buffer.from(got.plaintext ?? []).toString("hex")).toBe(pt);
      } else if (result === "valid") {
        expect(ALLOWLIST_REASONS).toContain(got.reason);
      } else {
        expect(got.plaintext).toBeUndefined();
        expect(got.reason).toEqual(expect.any(String));
      }
    },
  );

  it("refuses the kid-less valid cases through decryptCaptureJwe: keys are found by kid only", async () => {
    for (const tcId of [66, 90]) {
      const found = cases.find(({ test }) => test.tcId === tcId);
      if (found === undefined) throw new Error(`tcId ${tcId}`);
      const key = await importJWK(found.group.private, found.group.private.alg);
      const lookup = () => ({
        alg: found.group.private.alg as "RSA-OAEP-256",
        privateKey: key as CryptoKey,
      });
      await expect(decryptCaptureJwe(found.test.jwe, lookup)).rejects.toMatchObject({
        reason: "kid_missing",
      });
    }
  });

  it("refuses tcId 51's invalid-curve ephemeral key when it comes with our algorithm", async () => {
    const tc51 = cases.find(({ test }) => test.tcId === 51);
    const tc66 = cases.find(({ test }) => test.tcId === 66);
    if (tc51 === undefined || tc66 === undefined) throw new Error("vectors");
    const epk = headerOf(tc51.test.jwe)?.epk;
    const [, ek, iv, ct, tag] = tc66.test.jwe.split(".");
    const forged = [b64u({ alg: "ECDH-ES+A256KW", enc: "A256GCM", epk }), ek, iv, ct, tag].join(
      ".",
    );
    expect((await outcome(tc66.group, forged)).reason).toBe("decrypt_failed");
    // the same point is refused by WebCrypto itself: it is not on P-256
    await expect(importJWK({ ...(epk as object), ext: true }, "ECDH-ES+A256KW")).rejects.toThrow();
  });
});
