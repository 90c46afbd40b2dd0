import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { aesGcmDecrypt, aesGcmEncrypt } from "../../src/crypto/aes-gcm.js";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import { hmacSha256 } from "../../src/crypto/hmac.js";
import { combineShares } from "../../src/crypto/shamir.js";
import { FileLockLostError, FileLockTimeoutError, withFileLock } from "../../src/keys/file-lock.js";
import type { Environment, KeyContext, WrappedKey } from "../../src/keys/key-manager.js";
import { kekOf } from "../../src/keys/key-manager.js";
import { KekFileError, LocalKeyManager } from "../../src/keys/local-key-manager.js";
import { decodeShare } from "../../src/keys/unseal-share.js";
import { legacyWrapAad, wrapAad } from "../../src/keys/wrap-aad.js";
import { REPO_ROOT } from "../support/cli-runner.js";
import { DRIVERS } from "../support/databases.js";
import { keyManagerContract } from "../support/key-manager-contract.js";

const CONTEXT: KeyContext = {
  dekId: "dek_alpha",
  owner: "ten_alpha",
  purpose: "pan",
  environment: "live",
};

interface StoredVersionJson {
  version: number;
  created_at: string;
  key?: string;
  sealed?: string;
  legacy_aad?: boolean;
}
interface KekFileJson {
  format: string;
  seal: { set_id: string; shares: number; threshold: number; check: string } | null;
  keks: Record<Environment, { kek_id: string; versions: StoredVersionJson[] }>;
}

async function readJson(path: string): Promise<KekFileJson> {
  return JSON.parse(await readFile(path, "utf8")) as KekFileJson;
}

async function expectDecryptionFailure(attempt: Promise<unknown>): Promise<void> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionError);
  expect((err as Error).message).toBe("decryption failed");
}

/** Unwraps a wrap by hand with a raw KEK: blob = nonce(12) || ciphertext || tag(16). */
function unwrapByHand(kek: Buffer, wrapped: WrappedKey, aad: Buffer): Buffer {
  const blob = wrapped.ciphertext;
  return aesGcmDecrypt(
    kek,
    blob.subarray(0, 12),
    blob.subarray(12, blob.length - 16),
    blob.subarray(blob.length - 16),
    aad,
  );
}

/** Every byte of every file under `dir`, concatenated as latin1 text (for "never stored" checks). */
async function everyFileUnder(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      parts.push((await readFile(join(entry.parentPath, entry.name))).toString("latin1"));
    }
  }
  return parts.join("\n");
}

async function unsealWith(
  path: string,
  shares: readonly string[],
  pick: readonly number[],
): Promise<LocalKeyManager> {
  const manager = await LocalKeyManager.open(path, { create: false });
  expect(manager.sealStatus()).toMatchObject({ sealed: true, progress: 0 });
  for (const i of pick) manager.submitShare(shares[i] as string);
  expect(manager.sealStatus().sealed).toBe(false);
  return manager;
}

// --- The contract, twice: an unsealed file, and a sealed one unsealed with its shares. ---

function localSubject(sealed: boolean) {
  let dir: string | undefined;
  let path = "";
  let shares: string[] = [];
  let n = 0;
  return {
    async open() {
      dir ??= await mkdtemp(join(tmpdir(), "payvault-kek-contract-"));
      path = join(dir, `kek-${++n}.json`);
      if (!sealed) return LocalKeyManager.open(path, { create: true });
      shares = (await LocalKeyManager.initSealed(path, { shares: 5, threshold: 3 })).shares;
      return unsealWith(path, shares, [0, 2, 4]);
    },
    async reopen() {
      if (!sealed) return LocalKeyManager.open(path, { create: false });
      // Another subset of the custodians, in another order.
      return unsealWith(path, shares, [3, 1, 0]);
    },
    async cleanup() {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

keyManagerContract("local (unsealed KEK file)", localSubject(false));
keyManagerContract("local (sealed KEK file, unsealed with 3 of 5 shares)", localSubject(true));

describe("local KeyManager", () => {
  let dir: string;
  const managers: LocalKeyManager[] = [];
  const open = async (path: string, create = true) => {
    const manager = await LocalKeyManager.open(path, { create });
    managers.push(manager);
    return manager;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-kek-"));
  });
  afterEach(async () => {
    for (const manager of managers.splice(0)) await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a 0600 payvault-kek/v2 JSON file with a live and a test KEK of 256 bits each, and reuses it", async () => {
    const path = join(dir, "nested", "kek.json");
    const manager = await open(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, "utf8");
    const file = JSON.parse(text) as KekFileJson;
    expect(file.format).toBe("payvault-kek/v2");
    expect(file.seal).toBeNull();
    expect(Object.keys(file.keks).sort()).toEqual(["live", "test"]);
    const keys: Buffer[] = [];
    for (const environment of ["live", "test"] as const) {
      const kek = file.keks[environment];
      expect(kek.kek_id).toMatch(/^kek_[0-9A-Za-z]+$/);
      expect(kek.versions).toHaveLength(1);
      const [v1] = kek.versions as [StoredVersionJson];
      expect(v1.version).toBe(1);
      expect(v1.sealed).toBeUndefined();
      const key = Buffer.from(String(v1.key), "base64");
      expect(key).toHaveLength(32);
      keys.push(key);
      expect(kekOf(manager, environment)).toMatchObject({
        kind: "local",
        kekId: kek.kek_id,
        currentVersion: 1,
        algorithm: "AES-256-GCM",
        strengthBits: 256,
        location: `file:${path}`,
      });
      // The key in the file is the one that wraps, with the v2 AAD (environment included).
      const dek = randomBytes(32);
      const context = { ...CONTEXT, environment };
      const wrapped = await manager.wrapKey(dek, context);
      expect(unwrapByHand(key, wrapped, wrapAad(kek.kek_id, 1, context))).toEqual(dek);
    }
    expect(file.keks.live.kek_id).not.toBe(file.keks.test.kek_id);
    expect((keys[0] as Buffer).equals(keys[1] as Buffer)).toBe(false);
    expect(manager.sealStatus()).toEqual({ sealed: false, threshold: 0, shares: 0, progress: 0 });

    // Opening again (create or not) reads the same keys: nothing is overwritten.
    await open(path);
    await open(path, false);
    expect(await readFile(path, "utf8")).toBe(text);
    // Two KEK files never share a key or an id.
    await open(join(dir, "other.json"));
    const other = await readJson(join(dir, "other.json"));
    expect(other.keks.live.kek_id).not.toBe(file.keks.live.kek_id);
    expect(other.keks.live.versions[0]?.key).not.toBe(file.keks.live.versions[0]?.key);
  });

  it("refuses a KEK file that group or others can read (KekFileError), and a missing one without create", async () => {
    const path = join(dir, "kek.json");
    await open(path);
    const secret = (await readJson(path)).keks.live.versions[0]?.key as string;
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o606]) {
      await chmod(path, mode);
      const err = await LocalKeyManager.open(path, { create: true }).catch((e: unknown) => e);
      expect(err, mode.toString(8)).toBeInstanceOf(KekFileError);
      expect((err as Error).message).toMatch(/chmod 600/);
      expect((err as Error).message).not.toContain(secret);
    }
    await chmod(path, 0o400);
    await open(path, false);
    await expect(
      LocalKeyManager.open(join(dir, "absent.json"), { create: false }),
    ).rejects.toThrow();

    // A sealed file is refused the same way.
    const sealedPath = join(dir, "sealed.json");
    await LocalKeyManager.initSealed(sealedPath, { shares: 3, threshold: 2 });
    await chmod(sealedPath, 0o640);
    await expect(LocalKeyManager.open(sealedPath, { create: false })).rejects.toThrow(KekFileError);
  });

  it("refuses a KEK file that is not JSON, not a known format, or a v1 file with a short key", async () => {
    const path = join(dir, "kek.json");
    await writeFile(path, "not json", { mode: 0o600 });
    await expect(LocalKeyManager.open(path, { create: true })).rejects.toThrow(KekFileError);
    await writeFile(path, JSON.stringify({ format: "payvault-kek/v9", keks: {} }), {
      mode: 0o600,
    });
    await expect(LocalKeyManager.open(path, { create: true })).rejects.toThrow(KekFileError);
    await writeFile(
      path,
      JSON.stringify({
        format: "payvault-kek/v1",
        kek_id: "kek_short",
        version: 1,
        created_at: new Date().toISOString(),
        key: randomBytes(16).toString("base64"),
      }),
      { mode: 0o600 },
    );
    await expect(LocalKeyManager.open(path, { create: true })).rejects.toThrow(/256-bit/);
  });

  it("a first-release payvault-kek/v1 file still unwraps its DEKs, becomes v2 with the same live KEK and a new test KEK, and rotation moves old wraps to the v2 AAD", async () => {
    const path = join(dir, "kek.json");
    const v1Key = randomBytes(32);
    const v1 = {
      format: "payvault-kek/v1",
      kek_id: "kek_firstrelease01",
      version: 1,
      created_at: "2026-01-02T03:04:05.000Z",
      key: v1Key.toString("base64"),
    };
    await writeFile(path, `${JSON.stringify(v1, null, 2)}\n`, { mode: 0o600 });
    // A DEK wrapped as the first release did: AAD without the environment.
    const dek = randomBytes(32);
    const nonce = randomBytes(12);
    const { ciphertext, tag } = aesGcmEncrypt(
      v1Key,
      nonce,
      dek,
      legacyWrapAad(v1.kek_id, 1, { ...CONTEXT, environment: "live" }),
    );
    const legacy: WrappedKey = {
      kekId: v1.kek_id,
      kekVersion: 1,
      ciphertext: Buffer.concat([nonce, ciphertext, tag]),
    };

    const manager = await open(path, false);
    expect(await manager.unwrapKey(legacy, CONTEXT)).toEqual(dek);
    // The legacy wrap is bound to its DEK identity like any other.
    await expectDecryptionFailure(manager.unwrapKey(legacy, { ...CONTEXT, dekId: "dek_other" }));
    await expectDecryptionFailure(manager.unwrapKey(legacy, { ...CONTEXT, environment: "test" }));

    // Rewritten as v2 on disk, still 0600: same live KEK id, key and creation time; a new test KEK.
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const upgraded = await readJson(path);
    expect(upgraded.format).toBe("payvault-kek/v2");
    expect(upgraded.seal).toBeNull();
    expect(upgraded.keks.live.kek_id).toBe(v1.kek_id);
    expect(upgraded.keks.live.versions).toEqual([
      { version: 1, created_at: v1.created_at, key: v1.key, legacy_aad: true },
    ]);
    expect(upgraded.keks.test.kek_id).toMatch(/^kek_/);
    expect(upgraded.keks.test.kek_id).not.toBe(v1.kek_id);
    const testKey = Buffer.from(String(upgraded.keks.test.versions[0]?.key), "base64");
    expect(testKey).toHaveLength(32);
    expect(testKey.equals(v1Key)).toBe(false);
    expect(kekOf(manager, "live")).toMatchObject({ kekId: v1.kek_id, currentVersion: 1 });

    // The test KEK is kept: a second open reads the same file, not another upgrade.
    const again = await open(path, false);
    expect(kekOf(again, "test").kekId).toBe(upgraded.keks.test.kek_id);
    expect(await again.unwrapKey(legacy, CONTEXT)).toEqual(dek);
    expect(await readJson(path)).toEqual(upgraded);

    // DEKs wrapped after the upgrade but before any rotation (still under live v1) unwrap too,
    // in this process and in another one reading the same file.
    const fresh = randomBytes(32);
    const freshWrap = await manager.wrapKey(fresh, { ...CONTEXT, dekId: "dek_after_upgrade" });
    expect(freshWrap).toMatchObject({ kekId: v1.kek_id, kekVersion: 1 });
    expect(await manager.unwrapKey(freshWrap, { ...CONTEXT, dekId: "dek_after_upgrade" })).toEqual(
      fresh,
    );
    expect(await again.unwrapKey(freshWrap, { ...CONTEXT, dekId: "dek_after_upgrade" })).toEqual(
      fresh,
    );

    // Rotation: version 2 with the v2 AAD; re-wrap moves the legacy wrap onto it.
    const rotated = await manager.rotateKek("live");
    expect(rotated).toMatchObject({ kekId: v1.kek_id, currentVersion: 2 });
    const moved = await manager.rewrapKey(legacy, CONTEXT);
    expect(moved).toMatchObject({ kekId: v1.kek_id, kekVersion: 2 });
    const v2Key = Buffer.from(
      String((await readJson(path)).keks.live.versions.find((v) => v.version === 2)?.key),
      "base64",
    );
    expect(v2Key).toHaveLength(32);
    expect(unwrapByHand(v2Key, moved, wrapAad(v1.kek_id, 2, CONTEXT))).toEqual(dek);
    expect(() => unwrapByHand(v2Key, moved, legacyWrapAad(v1.kek_id, 2, CONTEXT))).toThrow(
      DecryptionError,
    );
    expect(await manager.unwrapKey(moved, CONTEXT)).toEqual(dek);
    // The old wrap still unwraps (version 1 is kept, decrypt-only).
    expect(await manager.unwrapKey(legacy, CONTEXT)).toEqual(dek);
    const movedFresh = await manager.rewrapKey(freshWrap, {
      ...CONTEXT,
      dekId: "dek_after_upgrade",
    });
    expect(movedFresh.kekVersion).toBe(2);
    expect(await again.unwrapKey(movedFresh, { ...CONTEXT, dekId: "dek_after_upgrade" })).toEqual(
      fresh,
    );
  });

  it("a rotation by one manager is seen by another on the same file: unknown newer versions reload the file", async () => {
    const path = join(dir, "kek.json");
    const first = await open(path);
    const second = await open(path, false);
    const dek = randomBytes(32);
    await first.rotateKek("live");
    const wrapped = await first.wrapKey(dek, CONTEXT);
    expect(wrapped.kekVersion).toBe(2);
    expect(kekOf(second, "live").currentVersion).toBe(1);
    // `second` has never seen version 2: it reads the file again and unwraps.
    expect(await second.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    expect(kekOf(second, "live").currentVersion).toBe(2);
    expect((await second.wrapKey(dek, CONTEXT)).kekVersion).toBe(2);
    // A rotation by `second` starts from the file as it is now: version 3, never a second v2.
    expect((await second.rotateKek("live")).currentVersion).toBe(3);
    const third = await second.wrapKey(dek, CONTEXT);
    expect(await first.unwrapKey(third, CONTEXT)).toEqual(dek);
    const versions = (await readJson(path)).keks.live.versions.map((v) => v.version);
    expect(versions).toEqual([1, 2, 3]);
    // The test KEK was never touched.
    expect((await readJson(path)).keks.test.versions).toHaveLength(1);
    // A version that never existed is the generic failure, after one reload.
    await expectDecryptionFailure(first.unwrapKey({ ...third, kekVersion: 9 }, CONTEXT));
  });

  it("a sealed file holds no KEK in the clear and no share: the KEKs are sealed under the key the shares rebuild", async () => {
    const dataDir = join(dir, "data");
    const path = join(dataDir, "kek.json");
    const { setId, shares } = await LocalKeyManager.initSealed(path, { shares: 5, threshold: 3 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const manager = await unsealWith(path, shares, [1, 3, 4]);
    managers.push(manager);
    await manager.rotateKek("test");
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, CONTEXT);
    const testWrapped = await manager.wrapKey(dek, { ...CONTEXT, environment: "test" });

    const text = await readFile(path, "utf8");
    const file = JSON.parse(text) as KekFileJson;
    expect(file.format).toBe("payvault-kek/v2");
    expect(file.seal).toMatchObject({ set_id: setId, shares: 5, threshold: 3 });
    expect(text).not.toMatch(/"key"\s*:/);
    for (const environment of ["live", "test"] as const) {
      for (const version of file.keks[environment].versions) {
        expect(version.key).toBeUndefined();
        expect(typeof version.sealed).toBe("string");
      }
    }
    expect(file.keks.test.versions).toHaveLength(2);
    expect(kekOf(manager, "live").location).toMatch(/sealed under Shamir shares/);

    // The unseal key is what 3 shares combine to; the file's check value says so, and each
    // sealed version opens under it to the KEK that wraps. None of it is in the file in the clear.
    const unsealKey = combineShares(
      shares.slice(0, 3).map((s) => {
        const { index, value } = decodeShare(s);
        return { index, value };
      }),
    );
    expect(
      hmacSha256(unsealKey, Buffer.from("payvault/unseal-check/v1", "ascii")).toString("base64"),
    ).toBe(file.seal?.check);
    const openSealed = (environment: Environment, version: StoredVersionJson): Buffer => {
      const blob = Buffer.from(String(version.sealed), "base64");
      return aesGcmDecrypt(
        unsealKey,
        blob.subarray(0, 12),
        blob.subarray(12, blob.length - 16),
        blob.subarray(blob.length - 16),
        Buffer.from(
          `payvault/kek-seal/v1\u0000${file.keks[environment].kek_id}\u0000${version.version}`,
          "utf8",
        ),
      );
    };
    const liveKek = openSealed("live", file.keks.live.versions[0] as StoredVersionJson);
    const testKek = openSealed("test", file.keks.test.versions[1] as StoredVersionJson);
    expect(unwrapByHand(liveKek, wrapped, wrapAad(file.keks.live.kek_id, 1, CONTEXT))).toEqual(dek);
    expect(
      unwrapByHand(
        testKek,
        testWrapped,
        wrapAad(file.keks.test.kek_id, 2, { ...CONTEXT, environment: "test" }),
      ),
    ).toEqual(dek);
    const everything = await everyFileUnder(dataDir);
    for (const secret of [liveKek, testKek, unsealKey]) {
      expect(everything.includes(secret.toString("base64"))).toBe(false);
      expect(everything.includes(secret.toString("base64url"))).toBe(false);
      expect(everything.includes(secret.toString("hex"))).toBe(false);
      expect(everything.includes(secret.toString("latin1"))).toBe(false);
    }
    // No share text and no share value anywhere in the data directory.
    for (const share of shares) {
      const valueText = share.split(".")[4] as string;
      expect(everything.includes(share)).toBe(false);
      expect(everything.includes(valueText)).toBe(false);
    }
  });

  for (const driver of DRIVERS) {
    it(`openCore uses PAYVAULT_KEK_FILE instead of <data dir>/kek.json (${driver.name})`, async () => {
      const dataDir = join(dir, "data");
      const kekDir = join(dir, "keys-volume");
      await mkdir(kekDir);
      expect(loadConfig({ PAYVAULT_DATA_DIR: dataDir }, dir).kekFile).toBe(
        join(dataDir, "kek.json"),
      );
      const config = loadConfig(
        { PAYVAULT_DATA_DIR: dataDir, PAYVAULT_KEK_FILE: "keys-volume/vault.kek" },
        dir,
      );
      expect(config.kekFile).toBe(join(kekDir, "vault.kek"));

      const database = await driver.open();
      try {
        const core = await openCore(config, { db: database.db });
        const liveId = kekOf(core.keyManager, "live").kekId;
        const testId = kekOf(core.keyManager, "test").kekId;
        await core.close();
        expect((await stat(join(kekDir, "vault.kek"))).mode & 0o777).toBe(0o600);
        await expect(stat(join(dataDir, "kek.json"))).rejects.toMatchObject({ code: "ENOENT" });
        const file = await readJson(join(kekDir, "vault.kek"));
        expect(file.keks.live.kek_id).toBe(liveId);
        expect(file.keks.test.kek_id).toBe(testId);
        // The DEKs in the store are wrapped under that file's KEKs.
        const { rows } = await database.db.query<{ kek_id: string }>(
          "SELECT DISTINCT kek_id FROM data_keys",
        );
        expect(rows.length).toBeGreaterThan(0);
        for (const row of rows) expect([liveId, testId]).toContain(row.kek_id);
        // A core on another KEK file cannot unwrap them, so it does not start.
        const elsewhere = loadConfig(
          { PAYVAULT_DATA_DIR: dataDir, PAYVAULT_KEK_FILE: join(dir, "another.kek") },
          dir,
        );
        await expect(openCore(elsewhere, { db: database.db })).rejects.toThrow();
        // The configured one still does.
        const again = await openCore(config, { db: database.db });
        expect(kekOf(again.keyManager, "live").kekId).toBe(liveId);
        await again.close();
      } finally {
        await database.drop();
      }
    });
  }
});

// --- Changes to the KEK file under concurrency (PCI DSS 3.6.1.2, 3.7.2) --------------------

interface Rotated {
  readonly version: number;
  readonly dek: Buffer;
  readonly context: KeyContext;
  readonly wrapped: WrappedKey;
}

async function rotateAndWrap(manager: LocalKeyManager, label: string): Promise<Rotated> {
  const { currentVersion } = await manager.rotateKek("live");
  const dek = randomBytes(32);
  const context = { ...CONTEXT, dekId: `dek_${label}` };
  return { version: currentVersion, dek, context, wrapped: await manager.wrapKey(dek, context) };
}

/** test/support/kek-rotator.ts in its own process: `count` rotations from `startAt` on. */
function rotateInChild(path: string, count: number, label: string, startAt: number) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "test/support/kek-rotator.ts", path, String(count), label, String(startAt)],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  return new Promise<Rotated[]>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) {
        reject(new Error(`rotator ${label} exited with ${code}: ${stderr}`));
        return;
      }
      resolve(
        stdout
          .trim()
          .split("\n")
          .map((line) => {
            const r = JSON.parse(line) as {
              version: number;
              dekId: string;
              dek: string;
              kekId: string;
              kekVersion: number;
              ciphertext: string;
            };
            return {
              version: r.version,
              dek: Buffer.from(r.dek, "hex"),
              context: { ...CONTEXT, dekId: r.dekId, owner: "ten_locking" },
              wrapped: {
                kekId: r.kekId,
                kekVersion: r.kekVersion,
                ciphertext: Buffer.from(r.ciphertext, "base64"),
              },
            };
          }),
      );
    });
  });
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe("local KEK file under concurrent changes", () => {
  let dir: string;
  const managers: LocalKeyManager[] = [];
  const open = async (
    path: string,
    create = true,
    lock?: { timeoutMs: number; staleMs: number },
  ) => {
    const manager = await LocalKeyManager.open(path, { create, ...(lock ? { lock } : {}) });
    managers.push(manager);
    return manager;
  };
  const closeAll = async () => {
    for (const manager of managers.splice(0)) await manager.close();
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-kek-lock-"));
  });
  afterEach(async () => {
    await closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  it("16 concurrent rotations on two managers in one process: every version any call returned is on disk, once, and unwraps its DEKs after a restart", async () => {
    const path = join(dir, "kek.json");
    const first = await open(path);
    const second = await open(path, false);
    const results = await Promise.all(
      range(0, 15).map((i) => rotateAndWrap(i % 2 === 0 ? first : second, `inproc_${i}`)),
    );
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(range(2, 17));
    expect((await readJson(path)).keks.live.versions.map((v) => v.version)).toEqual(range(1, 17));
    expect((await readJson(path)).keks.test.versions).toHaveLength(1);
    await closeAll();

    const restarted = await open(path, false);
    expect(kekOf(restarted, "live").currentVersion).toBe(17);
    for (const r of results) expect(await restarted.unwrapKey(r.wrapped, r.context)).toEqual(r.dek);
    // No temporary file and no lock are left behind.
    expect(await readdir(dir)).toEqual(["kek.json"]);
  });

  it("rotations from two other processes and this one at the same moment: the file lock keeps every one of them", async () => {
    const path = join(dir, "kek.json");
    const here = await open(path);
    const startAt = Date.now() + 4_000;
    const children = [
      rotateInChild(path, 6, "proc_a", startAt),
      rotateInChild(path, 6, "proc_b", startAt),
    ];
    await sleep(Math.max(0, startAt - Date.now()));
    const mine: Rotated[] = [];
    for (let i = 0; i < 6; i++) mine.push(await rotateAndWrap(here, `proc_main_${i}`));
    const all = [...mine, ...(await Promise.all(children)).flat()];
    expect(all).toHaveLength(18);
    expect(all.map((r) => r.version).sort((a, b) => a - b)).toEqual(range(2, 19));
    expect((await readJson(path)).keks.live.versions.map((v) => v.version)).toEqual(range(1, 19));
    await closeAll();

    const restarted = await open(path, false);
    for (const r of all) expect(await restarted.unwrapKey(r.wrapped, r.context)).toEqual(r.dek);
    expect(await readdir(dir)).toEqual(["kek.json"]);
  }, 120_000);

  it("a v1 file opened by several managers at once is upgraded once: all of them use the test KEK on disk", async () => {
    const path = join(dir, "kek.json");
    const v1 = {
      format: "payvault-kek/v1",
      kek_id: "kek_concurrentupgrade",
      version: 1,
      created_at: "2026-01-02T03:04:05.000Z",
      key: randomBytes(32).toString("base64"),
    };
    await writeFile(path, JSON.stringify(v1), { mode: 0o600 });
    const opened = await Promise.all(range(1, 4).map(() => open(path, false)));
    const onDisk = (await readJson(path)).keks.test.kek_id;
    expect(opened.map((m) => kekOf(m, "test").kekId)).toEqual(range(1, 4).map(() => onDisk));
    const dek = randomBytes(32);
    const testContext = { ...CONTEXT, environment: "test" as const };
    const wrapped = await (opened[3] as LocalKeyManager).wrapKey(dek, testContext);
    await closeAll();
    expect(await (await open(path, false)).unwrapKey(wrapped, testContext)).toEqual(dek);
  });

  it("a lock left by a dead process on this host is broken at once; a live one makes a rotation wait and then give up, changing nothing", async () => {
    const path = join(dir, "kek.json");
    const manager = await open(path, true, { timeoutMs: 400, staleMs: 60_000 });
    const dead = spawn(process.execPath, ["-e", ""]);
    const deadPid = dead.pid as number;
    await new Promise((resolve) => dead.once("close", resolve));
    await writeFile(
      `${path}.lock`,
      JSON.stringify({ host: hostname(), pid: deadPid, nonce: "crashed" }),
    );
    expect((await manager.rotateKek("live")).currentVersion).toBe(2);
    await expect(stat(`${path}.lock`)).rejects.toMatchObject({ code: "ENOENT" });

    // A live holder (this process, fresh lock): the rotation waits, then fails; nothing changed.
    await writeFile(
      `${path}.lock`,
      JSON.stringify({ host: hostname(), pid: process.pid, nonce: "busy" }),
    );
    const before = await readFile(path, "utf8");
    await expect(manager.rotateKek("live")).rejects.toBeInstanceOf(FileLockTimeoutError);
    expect(await readFile(path, "utf8")).toBe(before);
    expect(kekOf(manager, "live").currentVersion).toBe(2);
    // The other holder's lock is not ours to remove.
    expect(JSON.parse(await readFile(`${path}.lock`, "utf8"))).toMatchObject({ nonce: "busy" });
  });

  it("a lock from another host that has not been touched for the stale time is broken", async () => {
    const path = join(dir, "kek.json");
    const manager = await open(path, true, { timeoutMs: 5_000, staleMs: 1_000 });
    await writeFile(
      `${path}.lock`,
      JSON.stringify({ host: "another-node.invalid", pid: 4242, nonce: "gone" }),
    );
    const past = new Date(Date.now() - 10_000);
    await utimes(`${path}.lock`, past, past);
    expect((await manager.rotateKek("test")).currentVersion).toBe(2);
    expect(await readdir(dir)).toEqual(["kek.json"]);
  });

  it("a holder whose lock was taken over learns it before committing, and leaves the new holder's lock alone", async () => {
    const path = join(dir, "kek.json");
    await open(path);
    await withFileLock(path, {}, async (lock) => {
      await expect(lock.assertHeld()).resolves.toBeUndefined();
      await writeFile(
        `${path}.lock`,
        JSON.stringify({ host: hostname(), pid: process.pid, nonce: "thief" }),
      );
      await expect(lock.assertHeld()).rejects.toBeInstanceOf(FileLockLostError);
    });
    expect(JSON.parse(await readFile(`${path}.lock`, "utf8"))).toMatchObject({ nonce: "thief" });
  });

  it("keeps no KEK in the clear outside its Buffers, and zeroes them on close", async () => {
    const path = join(dir, "kek.json");
    const manager = await open(path);
    await manager.rotateKek("test");
    const file = await readJson(path);
    const clear = [...file.keks.live.versions, ...file.keks.test.versions].map((v) =>
      String(v.key),
    );
    expect(clear).toHaveLength(3);
    // Everything the manager holds, as far as inspection reaches (Buffers print as hex).
    const state = `${inspect(manager, { depth: 20, showHidden: true })}${JSON.stringify(manager)}`;
    for (const key of clear) expect(state).not.toContain(key);

    // The KEK Buffers themselves (a private field, read here on purpose) are zeroed on close.
    const keks = (manager as unknown as { keks: Map<string, { versions: { key: Buffer }[] }> })
      .keks;
    const buffers = [...keks.values()].flatMap((kek) => kek.versions.map((v) => v.key));
    expect(buffers.map((b) => b.toString("base64")).sort()).toEqual([...clear].sort());
    await manager.close();
    for (const buffer of buffers) expect(buffer.equals(Buffer.alloc(32))).toBe(true);
  });
});
