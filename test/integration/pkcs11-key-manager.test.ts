import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { GcmParams, PKCS11 } from "pkcs11js";
import pkcs11js from "pkcs11js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { KeyContext, KeyManager } from "../../src/keys/key-manager.js";
import { KeyServiceUnavailableError, kekOf } from "../../src/keys/key-manager.js";
import {
  Pkcs11ConfigError,
  Pkcs11KeyManager,
  type Pkcs11KeyManagerOptions,
} from "../../src/keys/pkcs11-key-manager.js";
import { wrapAad } from "../../src/keys/wrap-aad.js";
import { keyManagerContract } from "../support/key-manager-contract.js";
import type { SoftHsmToken } from "../support/softhsm.js";
import { createSoftHsmToken, softhsmAvailable } from "../support/softhsm.js";

const BASE: KeyContext = {
  dekId: "dek_hsm",
  owner: "ten_hsm",
  purpose: "pan",
  environment: "live",
};
const CKR_ACTION_PROHIBITED = 0x1b;
const CKS_RW_USER_FUNCTIONS = 3;

const available = softhsmAvailable();
const inCi = (process.env.CI ?? "") !== "" && process.env.CI !== "false";

if (!available && inCi) {
  describe("pkcs11 adapter (SoftHSM2)", () => {
    it("has SoftHSM2 to run against: CI never skips this suite", () => {
      expect.fail(
        "SoftHSM2 is missing: apt-get install softhsm2 (.ci/run does), or set PAYVAULT_TEST_PKCS11_MODULE",
      );
    });
  });
} else if (!available) {
  console.warn(
    "[payvault tests] SoftHSM2 is not installed: the pkcs11 adapter suite is SKIPPED (apt-get install softhsm2)",
  );
}

function rvOf(err: unknown): number | undefined {
  const code: unknown = (err as { code?: unknown } | null)?.code;
  if (typeof code === "number" && code > 0) return code;
  const match = /CKR_[A-Z0-9_]+:(\d+)/.exec(err instanceof Error ? err.message : "");
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** The CK_RV a PKCS#11 call fails with; fails the test if it succeeds. */
function rvOfFailed(call: () => unknown): number | undefined {
  try {
    call();
  } catch (err) {
    return rvOf(err);
  }
  throw new Error("the PKCS#11 call succeeded");
}

async function failureOf(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => undefined,
    (err: unknown) => err,
  );
}

function gcm(iv: Buffer, aad: Buffer) {
  const parameter: GcmParams = {
    type: pkcs11js.CK_PARAMS_AES_GCM_v240,
    iv,
    ivBits: 96,
    aad,
    tagBits: 128,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

describe.skipIf(!available)("pkcs11 adapter (SoftHSM2)", () => {
  let token: SoftHsmToken;
  let lastPrefix = "";
  const managers: KeyManager[] = [];
  const inspectors: Inspector[] = [];

  beforeAll(async () => {
    token = await createSoftHsmToken();
  });
  afterAll(async () => {
    await token?.cleanup();
  });
  afterEach(async () => {
    for (const inspector of inspectors.splice(0)) inspector.close();
    for (const manager of managers.splice(0)) await manager.close();
  });

  const optionsFor = (labelPrefix: string, create: boolean): Pkcs11KeyManagerOptions => ({
    module: token.module,
    tokenLabel: token.tokenLabel,
    pin: token.pin,
    labelPrefix,
    create,
  });
  const freshPrefix = () => `payvault-kek-${randomUUID().slice(0, 8)}`;
  async function open(labelPrefix: string, create: boolean): Promise<Pkcs11KeyManager> {
    const manager = await Pkcs11KeyManager.open(optionsFor(labelPrefix, create));
    managers.push(manager);
    return manager;
  }

  /**
   * A second, independent pkcs11js handle on the same library and token, logged in with the
   * user PIN: what an operator or an attacker holding the PIN can attempt.
   */
  class Inspector {
    readonly p11: PKCS11 = new pkcs11js.PKCS11();
    readonly slot: Buffer;
    readonly session: Buffer;

    constructor(login = true) {
      this.p11.load(token.module);
      try {
        this.p11.C_Initialize();
      } catch (err) {
        if (rvOf(err) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
      }
      const slot = this.p11
        .C_GetSlotList(true)
        .find((s) => this.p11.C_GetTokenInfo(s).label.trimEnd() === token.tokenLabel);
      if (slot === undefined) throw new Error("test token not found");
      this.slot = slot;
      this.session = this.p11.C_OpenSession(
        slot,
        pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
      );
      inspectors.push(this);
      try {
        if (login) this.p11.C_Login(this.session, pkcs11js.CKU_USER, token.pin);
      } catch (err) {
        if (rvOf(err) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw err;
      }
    }

    findKeks(label: string): Buffer[] {
      this.p11.C_FindObjectsInit(this.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_LABEL, value: label },
      ]);
      try {
        return this.p11.C_FindObjects(this.session, 16);
      } finally {
        this.p11.C_FindObjectsFinal(this.session);
      }
    }

    onlyKek(label: string): Buffer {
      const [kek, ...others] = this.findKeks(label);
      expect(kek).toBeDefined();
      expect(others).toHaveLength(0);
      return kek as Buffer;
    }

    attribute(object: Buffer, type: number): Buffer {
      const [attribute] = this.p11.C_GetAttributeValue(this.session, object, [{ type }]);
      return attribute?.value ?? Buffer.alloc(0);
    }

    flag(object: Buffer, type: number): boolean {
      return this.attribute(object, type).some((byte) => byte !== 0);
    }

    close(): void {
      try {
        this.p11.C_CloseSession(this.session);
      } catch {
        // Already gone with the library or a C_CloseAllSessions.
      }
    }
  }

  keyManagerContract("pkcs11 (SoftHSM2)", {
    open: () => {
      lastPrefix = freshPrefix();
      return Pkcs11KeyManager.open(optionsFor(lastPrefix, true));
    },
    reopen: () => Pkcs11KeyManager.open(optionsFor(lastPrefix, false)),
  });

  it("wraps inside the HSM with CKM_AES_GCM: blob = IV || ciphertext || tag, AAD = wrapAad", async () => {
    const prefix = freshPrefix();
    const manager = await open(prefix, true);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, BASE);
    expect(wrapped.kekId).toBe(`pkcs11:${token.tokenLabel}/${prefix}-live`);
    expect(kekOf(manager, "test").kekId).toBe(`pkcs11:${token.tokenLabel}/${prefix}-test`);
    expect(kekOf(manager, "live").location).toBe(
      `pkcs11:token=${token.tokenLabel};object=${prefix}-live`,
    );
    expect(kekOf(manager, "live").algorithm).toBe("AES-256-GCM (CKM_AES_GCM)");
    expect(wrapped.ciphertext).toHaveLength(12 + 32 + 16);

    // Anyone holding the PIN can decrypt the blob in the token with the documented layout.
    const inspector = new Inspector();
    const kek = inspector.onlyKek(`${prefix}-live`);
    expect(inspector.attribute(kek, pkcs11js.CKA_ID)).toEqual(Buffer.from([0, 0, 0, 1]));
    const { p11, session } = inspector;
    const iv = wrapped.ciphertext.subarray(0, 12);
    p11.C_DecryptInit(session, gcm(iv, wrapAad(wrapped.kekId, 1, BASE)), kek);
    const body = wrapped.ciphertext.subarray(12);
    expect(Buffer.from(p11.C_Decrypt(session, body, Buffer.alloc(body.length)))).toEqual(dek);
  });

  it("keeps the KEK inside the token: sensitive, never extractable, not modifiable or copyable", async () => {
    const prefix = freshPrefix();
    const manager = await open(prefix, true);
    const inspector = new Inspector();
    const { p11, session } = inspector;
    for (const environment of ["live", "test"]) {
      const kek = inspector.onlyKek(`${prefix}-${environment}`);
      expect(
        rvOfFailed(() => p11.C_GetAttributeValue(session, kek, [{ type: pkcs11js.CKA_VALUE }])),
      ).toBe(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
      expect(inspector.flag(kek, pkcs11js.CKA_SENSITIVE)).toBe(true);
      expect(inspector.flag(kek, pkcs11js.CKA_EXTRACTABLE)).toBe(false);
      // Generated in the token, and never was sensitive-less or extractable (PKCS#11 v2.40 4.10).
      expect(inspector.flag(kek, pkcs11js.CKA_ALWAYS_SENSITIVE)).toBe(true);
      expect(inspector.flag(kek, pkcs11js.CKA_NEVER_EXTRACTABLE)).toBe(true);
      expect(inspector.flag(kek, pkcs11js.CKA_TOKEN)).toBe(true);
      expect(inspector.flag(kek, pkcs11js.CKA_PRIVATE)).toBe(true);
      expect(inspector.flag(kek, pkcs11js.CKA_MODIFIABLE)).toBe(false);
      expect(inspector.flag(kek, pkcs11js.CKA_COPYABLE)).toBe(false);
      expect(inspector.flag(kek, pkcs11js.CKA_WRAP)).toBe(false);
      expect(inspector.attribute(kek, pkcs11js.CKA_VALUE_LEN).readUInt32LE(0)).toBe(32);

      // Not even wrapped under a key the holder of the PIN controls.
      const wrapping = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_WRAP, value: true },
      ]);
      for (const mechanism of [pkcs11js.CKM_AES_KEY_WRAP, pkcs11js.CKM_AES_KEY_WRAP_PAD]) {
        expect(
          rvOfFailed(() => p11.C_WrapKey(session, { mechanism }, wrapping, kek, Buffer.alloc(64))),
        ).toBe(pkcs11js.CKR_KEY_UNEXTRACTABLE);
      }

      // CKA_EXTRACTABLE cannot be turned back on, nor a copy made extractable.
      const refused = [CKR_ACTION_PROHIBITED, pkcs11js.CKR_ATTRIBUTE_READ_ONLY];
      const extractable = [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }];
      expect(refused).toContain(
        rvOfFailed(() => p11.C_SetAttributeValue(session, kek, extractable)),
      );
      expect(refused).toContain(rvOfFailed(() => p11.C_CopyObject(session, kek, extractable)));
      expect(inspector.flag(kek, pkcs11js.CKA_EXTRACTABLE)).toBe(false);
    }
    await expect(manager.checkHealth()).resolves.toBeUndefined();
  });

  it("refuses to use a KEK object that could leave the HSM", async () => {
    const prefix = freshPrefix();
    await open(prefix, true);
    const inspector = new Inspector();
    const weakPrefix = freshPrefix();
    for (const environment of ["live", "test"]) {
      inspector.p11.C_GenerateKey(inspector.session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: `${weakPrefix}-${environment}` },
        { type: pkcs11js.CKA_ID, value: Buffer.from([0, 0, 0, 1]) },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: true },
      ]);
    }
    const err = await failureOf(Pkcs11KeyManager.open(optionsFor(weakPrefix, false)));
    expect(err).toBeInstanceOf(Pkcs11ConfigError);
    expect((err as Error).message).toMatch(/non-extractable/);
  });

  it("shares the library between managers: a rotation elsewhere is found, a close leaves the other working", async () => {
    const prefix = freshPrefix();
    const first = await open(prefix, true);
    const second = await open(prefix, false);
    const dek = randomBytes(32);
    const before = await first.wrapKey(dek, BASE);
    await first.rotateKek("live");
    const after = await first.wrapKey(dek, BASE);
    expect(after.kekVersion).toBe(2);
    expect(await second.unwrapKey(after, BASE)).toEqual(dek);
    expect(kekOf(second, "live").currentVersion).toBe(2);
    await first.close();
    // The login is the application's, not the session's: closing one manager must not log out
    // the token under the other (a new session comes up in the logged-in state).
    const probe = new Inspector(false);
    expect(probe.p11.C_GetSessionInfo(probe.session).state).toBe(CKS_RW_USER_FUNCTIONS);
    expect(await second.unwrapKey(before, BASE)).toEqual(dek);
    await expect(second.checkHealth()).resolves.toBeUndefined();
  });

  it("reopens its session by itself when all sessions are closed or logged out from outside", async () => {
    const manager = await open(freshPrefix(), true);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, BASE);

    const inspector = new Inspector();
    inspector.p11.C_CloseAllSessions(inspector.slot);
    // The inspector's own session went too: the close reached the library the manager uses.
    expect(rvOfFailed(() => inspector.p11.C_GetSessionInfo(inspector.session))).toBe(
      pkcs11js.CKR_SESSION_HANDLE_INVALID,
    );
    expect(await manager.unwrapKey(wrapped, BASE)).toEqual(dek);

    const again = new Inspector();
    again.p11.C_Logout(again.session);
    await expect(manager.checkHealth()).resolves.toBeUndefined();
    again.p11.C_Logout(again.session);
    const rewrapped = await manager.wrapKey(dek, BASE);
    expect(await manager.unwrapKey(rewrapped, BASE)).toEqual(dek);
  });

  it("reports an unreachable HSM as KeyServiceUnavailableError, never DecryptionError, then recovers", async () => {
    const manager = await open(freshPrefix(), true);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, BASE);
    const described = manager.describe();

    // The library is finalized under the manager, and cannot be initialized again for now.
    const conf = process.env.SOFTHSM2_CONF;
    new Inspector().p11.C_Finalize();
    process.env.SOFTHSM2_CONF = join(token.confPath, "..", "missing.conf");
    try {
      const attempts: Promise<unknown>[] = [
        manager.unwrapKey(wrapped, BASE),
        manager.wrapKey(dek, BASE),
        manager.rewrapKey(wrapped, BASE),
        manager.rotateKek("live"),
        manager.checkHealth(),
      ];
      for (const attempt of attempts) {
        const err = await failureOf(attempt);
        expect(err).toBeInstanceOf(KeyServiceUnavailableError);
        expect(err).not.toBeInstanceOf(DecryptionError);
        expect(String(err)).not.toContain(token.pin);
      }
    } finally {
      process.env.SOFTHSM2_CONF = conf;
    }

    // Back: the next call initializes the library again, opens a session and logs in.
    expect(await manager.unwrapKey(wrapped, BASE)).toEqual(dek);
    await expect(manager.checkHealth()).resolves.toBeUndefined();
    expect(manager.describe()).toEqual(described);
    const fresh = await manager.wrapKey(dek, BASE);
    expect(await manager.unwrapKey(fresh, BASE)).toEqual(dek);
  });

  it("fails open() clearly: wrong PIN, unknown token, missing KEK, missing module", async () => {
    const prefix = freshPrefix();
    const wrongPin = await failureOf(
      Pkcs11KeyManager.open({ ...optionsFor(prefix, true), pin: "0000-wrong" }),
    );
    expect(wrongPin).toBeInstanceOf(Pkcs11ConfigError);
    expect((wrongPin as Error).message).toMatch(/login .* refused \(CKR_PIN_INCORRECT\)/);
    expect((wrongPin as Error).message).not.toContain("0000-wrong");

    const noToken = await failureOf(
      Pkcs11KeyManager.open({ ...optionsFor(prefix, true), tokenLabel: "no-such-token" }),
    );
    expect(noToken).toBeInstanceOf(Pkcs11ConfigError);
    expect((noToken as Error).message).toMatch(/no token labelled "no-such-token"/);

    const noKek = await failureOf(Pkcs11KeyManager.open(optionsFor(prefix, false)));
    expect(noKek).toBeInstanceOf(Pkcs11ConfigError);
    expect((noKek as Error).message).toMatch(/no KEK labelled "payvault-kek-.*-live"/);

    const noModule = await failureOf(
      Pkcs11KeyManager.open({ ...optionsFor(prefix, true), module: "/nonexistent/libp11.so" }),
    );
    expect(noModule).toBeInstanceOf(Pkcs11ConfigError);

    // The failed opens released the library: a good open still works, and created nothing before.
    const manager = await open(prefix, true);
    expect(kekOf(manager, "live").versions.map((v) => v.version)).toEqual([1]);
  });

  it("is closed for good after close(), and close() is idempotent", async () => {
    const manager = await open(freshPrefix(), true);
    await manager.close();
    await manager.close();
    expect(await failureOf(manager.wrapKey(randomBytes(32), BASE))).toBeInstanceOf(
      KeyServiceUnavailableError,
    );
  });
});
