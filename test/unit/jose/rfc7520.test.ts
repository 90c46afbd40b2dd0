import { type CryptoKey, compactDecrypt, compactVerify, importJWK } from "jose";
import { describe, expect, it } from "vitest";
import { readCompactJwe } from "../../../src/jose/jwe-open.js";
import { openNestedJwt } from "../../../src/jose/nested-jwt.js";
import { JoseRejected } from "../../../src/jose/rejected.js";
import { readCompactJws, verifyParsedJws } from "../../../src/jose/verify-jws.js";
import {
  loadJoseVectors,
  type Rfc7520File,
  type WycheproofJweFile,
  type WycheproofJwsFile,
} from "./jose-vectors.js";

/**
 * RFC 7520 (JOSE Cookbook) examples, from the IETF cookbook repository, plus RFC 8037 A.4.
 * None of the cookbook's JWE examples uses an algorithm the vault accepts (they use RSA1_5,
 * RSA-OAEP with SHA-1, PBES2, ECDH-ES+A128KW on P-384, direct ECDH-ES, dir, AES key wrap and
 * DEFLATE), and of its JWS examples only Ed25519 is on the allowlist. So each example shows two
 * things: plain `jose` accepts it (the data is right), and the vault's policy refuses it, for
 * the reason the allowlist gives.
 */
const cookbook = loadJoseVectors<Rfc7520File>("rfc7520-cookbook.json");
const wycheproofJwe = loadJoseVectors<WycheproofJweFile>("wycheproof-jwe.json");
const wycheproofJws = loadJoseVectors<WycheproofJwsFile>("wycheproof-jws.json");

function reasonOf(fn: () => unknown): string {
  try {
    fn();
    return "accepted";
  } catch (err) {
    if (err instanceof JoseRejected) return err.reason;
    throw err;
  }
}

const rfcJwe = wycheproofJwe.testGroups
  .filter((g) => g.comment === "rfc_7520")
  .flatMap((g) => g.tests.map((test) => ({ group: g, test })));
const rfcJws = wycheproofJws.testGroups
  .filter((g) => g.comment.startsWith("rfc7520"))
  .flatMap((g) => g.tests.map((test) => ({ group: g, test })));

describe("RFC 7520 examples as published (ietf-jose/cookbook)", () => {
  const jws = cookbook.examples.filter((e) => e.kind === "jws");
  const jwe = cookbook.examples.filter((e) => e.kind === "jwe");

  it.each(jws)(
    "$id ($alg): jose verifies it; the vault's policy refuses unless allowlisted",
    async (ex) => {
      const key = await importJWK(ex.key, ex.alg);
      const { payload } = await compactVerify(ex.compact, key, { algorithms: [ex.alg] });
      expect(Buffer.from(payload).toString("utf8")).toBe(ex.payload);
      const reason = reasonOf(() =>
        readCompactJws(ex.compact, { algorithms: ["ES256", "EdDSA", "PS256"] }),
      );
      expect(reason).toBe(ex.alg === "EdDSA" ? "accepted" : "alg_not_allowed");
      if (ex.alg === "EdDSA") {
        // RFC 8037 A.4 has no kid, so only the kid-free core can run it: the policy and the
        // signature check accept it, with the key the vault would have found by kid.
        const parsed = readCompactJws(ex.compact, { algorithms: ["EdDSA"] });
        const verified = await verifyParsedJws(parsed, {
          alg: "EdDSA",
          publicKey: key as CryptoKey,
        });
        expect(Buffer.from(verified).toString("utf8")).toBe(ex.payload);
      }
    },
  );

  it.each(jwe)(
    "$id ($alg, $enc): jose decrypts it; the vault refuses the algorithm",
    async (ex) => {
      const key =
        ex.password !== undefined
          ? new TextEncoder().encode(ex.password)
          : await importJWK(ex.key, ex.alg);
      const { plaintext } = await compactDecrypt(ex.compact, key, {
        keyManagementAlgorithms: [ex.alg],
      });
      expect(Buffer.from(plaintext).toString("utf8")).toBe(ex.plaintext);
      expect(reasonOf(() => readCompactJwe(ex.compact))).toBe("alg_not_allowed");
    },
  );

  it("§6 nested JWT: jose opens both layers; openNestedJwt refuses RSA-OAEP (SHA-1)", async () => {
    const ex = cookbook.examples.find((e) => e.kind === "nested");
    if (ex?.signingKey === undefined || ex.innerCompact === undefined) throw new Error("no §6");
    const { plaintext } = await compactDecrypt(ex.compact, await importJWK(ex.key, ex.alg));
    expect(Buffer.from(plaintext).toString("utf8")).toBe(ex.innerCompact);
    const { payload } = await compactVerify(
      ex.innerCompact,
      await importJWK(ex.signingKey, "PS256"),
    );
    expect(Buffer.from(payload).toString("utf8")).toBe(ex.payload);
    const opened = openNestedJwt(ex.compact, {
      decryptionKeys: () => undefined,
      signerKeys: () => undefined,
      claims: {
        issuer: "hobbiton.example",
        audience: "x",
        maxLifetimeSec: 60,
        now: new Date(0),
        htm: "POST",
        htu: "https://vault.example/v1/tokens",
      },
    });
    await expect(opened).rejects.toMatchObject({ code: "JWE_INVALID", reason: "alg_not_allowed" });
  });

  it("the cookbook and Wycheproof copies of §5.4 (Figure 117) are the same object", () => {
    const fromCookbook = cookbook.examples.find((e) => e.id === "rfc7520-5.4")?.compact;
    const fromWycheproof = rfcJwe.find(({ test }) => test.comment === "Figure117")?.test.jwe;
    expect(fromWycheproof).toBe(fromCookbook);
  });
});

describe("RFC 7520 figures as carried in the Wycheproof files", () => {
  it.each(
    rfcJwe.map(({ group, test }) => ({ name: test.comment, alg: group.private.alg, group, test })),
  )("$name ($alg): refused by the allowlist", ({ test }) => {
    expect(reasonOf(() => readCompactJwe(test.jwe))).toBe("alg_not_allowed");
  });

  it.each(rfcJws.map(({ test }) => ({ name: `tcId ${test.tcId} ${test.comment}`, test })))(
    "$name: refused by the allowlist",
    ({ test }) => {
      expect(
        reasonOf(() => readCompactJws(test.jws, { algorithms: ["ES256", "EdDSA", "PS256"] })),
      ).toBe("alg_not_allowed");
    },
  );

  it("covers every RFC 7520 example it claims to", () => {
    expect(cookbook.examples).toHaveLength(8);
    expect(rfcJwe.map(({ test }) => test.comment)).toEqual([
      "Figure81",
      "Figure92",
      "Figure117",
      "Figure128",
      "Figure136",
      "Figure148",
      "Figure159",
      "Figure170",
    ]);
    expect(rfcJws).toHaveLength(8);
  });
});
