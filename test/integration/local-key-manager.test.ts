import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { KeyContext, WrappedKey } from "../../src/keys/key-manager.js";
import { KekFileError, LocalKeyManager } from "../../src/keys/local-key-manager.js";
import { openPgliteDatabase } from "../../src/store/pglite-database.js";

const CONTEXT: KeyContext = { dekId: "dek_alpha", owner: "ten_alpha", purpose: "pan" };

async function expectDecryptionFailure(attempt: Promise<unknown>): Promise<void> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionError);
  expect((err as Error).message).toBe("decryption failed");
  expect((err as Error & { cause?: unknown }).cause).toBeUndefined();
}

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

  it("creates a 0600 JSON KEK file holding a 256-bit key, and reuses it", async () => {
    const path = join(dir, "nested", "kek.json");
    const manager = await open(path);
    const info = await stat(path);
    expect(info.mode & 0o777).toBe(0o600);
    const text = await readFile(path, "utf8");
    const file = JSON.parse(text) as Record<string, unknown>;
    expect(file.format).toBe("payvault-kek/v1");
    expect(file.kek_id).toMatch(/^kek_[0-9A-Za-z]+$/);
    expect(file.version).toBe(1);
    expect(Buffer.from(String(file.key), "base64")).toHaveLength(32);
    expect(manager.describe()).toEqual({
      kind: "local",
      kekId: file.kek_id,
      kekVersion: 1,
      algorithm: "AES-256-GCM",
      location: `file:${path}`,
    });
    await expect(manager.checkHealth()).resolves.toBeUndefined();

    // Opening again (create or not) reads the same key: nothing is overwritten.
    await open(path);
    await open(path, false);
    expect(await readFile(path, "utf8")).toBe(text);
    // Two KEK files never share a key.
    const otherPath = join(dir, "other.json");
    await open(otherPath);
    const other = JSON.parse(await readFile(otherPath, "utf8")) as Record<string, unknown>;
    expect(other.key).not.toBe(file.key);
    expect(other.kek_id).not.toBe(file.kek_id);
  });

  it("refuses a KEK file that group or others can read, and a missing one without create", async () => {
    const path = join(dir, "kek.json");
    await open(path);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      await chmod(path, mode);
      const err = await LocalKeyManager.open(path, { create: true }).catch((e: unknown) => e);
      expect(err, mode.toString(8)).toBeInstanceOf(KekFileError);
      expect((err as Error).message).toMatch(/chmod 600/);
      expect((err as Error).message).not.toContain(
        JSON.parse(await readFile(path, "utf8")).key as string,
      );
    }
    await chmod(path, 0o400);
    await open(path, false);
    await expect(
      LocalKeyManager.open(join(dir, "absent.json"), { create: false }),
    ).rejects.toThrow();
  });

  it("refuses a KEK file that is not JSON or has a key of the wrong size", async () => {
    const path = join(dir, "kek.json");
    await writeFile(path, "not json", { mode: 0o600 });
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

  it("wraps and unwraps a DEK; the wrapped form does not contain it", async () => {
    const manager = await open(join(dir, "kek.json"));
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, CONTEXT);
    expect(wrapped.kekId).toBe(manager.describe().kekId);
    expect(wrapped.kekVersion).toBe(1);
    expect(wrapped.ciphertext.includes(dek)).toBe(false);
    expect(wrapped.ciphertext.length).toBe(12 + 32 + 16);
    expect(await manager.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    // Fresh nonce each time: wrapping twice gives two different blobs.
    const again = await manager.wrapKey(dek, CONTEXT);
    expect(again.ciphertext.equals(wrapped.ciphertext)).toBe(false);
    expect(await manager.unwrapKey(again, CONTEXT)).toEqual(dek);
  });

  it("fails with the one generic error for another context, a flipped byte or another KEK", async () => {
    const path = join(dir, "kek.json");
    const manager = await open(path);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, CONTEXT);

    for (const context of [
      { ...CONTEXT, dekId: "dek_beta" },
      { ...CONTEXT, owner: "ten_beta" },
      { ...CONTEXT, owner: "system" },
      { ...CONTEXT, purpose: "fingerprint" as const },
      { ...CONTEXT, purpose: "sad" as const },
    ]) {
      await expectDecryptionFailure(manager.unwrapKey(wrapped, context));
    }
    for (let i = 0; i < wrapped.ciphertext.length; i++) {
      const flipped = Buffer.from(wrapped.ciphertext);
      flipped[i] = (flipped[i] as number) ^ 0x01;
      await expectDecryptionFailure(
        manager.unwrapKey({ ...wrapped, ciphertext: flipped }, CONTEXT),
      );
    }
    const tampered: WrappedKey[] = [
      { ...wrapped, kekVersion: 2 },
      { ...wrapped, kekId: "kek_someoneelse" },
      { ...wrapped, ciphertext: wrapped.ciphertext.subarray(0, 28) },
      { ...wrapped, ciphertext: Buffer.alloc(0) },
    ];
    for (const w of tampered) await expectDecryptionFailure(manager.unwrapKey(w, CONTEXT));

    // Another KEK file: a different id...
    const stranger = await open(join(dir, "stranger.json"));
    await expectDecryptionFailure(stranger.unwrapKey(wrapped, CONTEXT));
    // ...and a file that claims this KEK's id but holds another key.
    const original = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    const impostorPath = join(dir, "impostor.json");
    await writeFile(
      impostorPath,
      JSON.stringify({ ...original, key: randomBytes(32).toString("base64") }),
      { mode: 0o600 },
    );
    const impostor = await open(impostorPath, false);
    expect(impostor.describe().kekId).toBe(manager.describe().kekId);
    await expectDecryptionFailure(impostor.unwrapKey(wrapped, CONTEXT));
    // The original still unwraps it (the failures above were not a broken blob).
    expect(await manager.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
  });

  it("uses PAYVAULT_KEK_FILE instead of <data dir>/kek.json", async () => {
    const dataDir = join(dir, "data");
    const kekDir = join(dir, "keys-volume");
    await mkdir(kekDir);
    expect(loadConfig({ PAYVAULT_DATA_DIR: dataDir }, dir).kekFile).toBe(join(dataDir, "kek.json"));
    const config = loadConfig(
      { PAYVAULT_DATA_DIR: dataDir, PAYVAULT_KEK_FILE: "keys-volume/vault.kek" },
      dir,
    );
    expect(config.kekFile).toBe(join(kekDir, "vault.kek"));

    const db = await openPgliteDatabase(undefined);
    try {
      const core = await openCore(config, { db });
      const kekId = core.keyManager.describe().kekId;
      await core.close();
      expect((await stat(join(kekDir, "vault.kek"))).mode & 0o777).toBe(0o600);
      await expect(stat(join(dataDir, "kek.json"))).rejects.toMatchObject({ code: "ENOENT" });
      const file = JSON.parse(await readFile(join(kekDir, "vault.kek"), "utf8")) as {
        kek_id: string;
      };
      expect(file.kek_id).toBe(kekId);
      // The DEKs in the store are wrapped under that KEK: a core with another KEK cannot start.
      const { rows } = await db.query<{ kek_id: string }>("SELECT DISTINCT kek_id FROM data_keys");
      expect(rows).toEqual([{ kek_id: kekId }]);
      const elsewhere = loadConfig(
        { PAYVAULT_DATA_DIR: dataDir, PAYVAULT_KEK_FILE: join(dir, "another.kek") },
        dir,
      );
      await expect(openCore(elsewhere, { db })).rejects.toThrow();
    } finally {
      await db.close();
    }
  });
});
