import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { KeyContext, KeyManager, WrappedKey } from "../../src/keys/key-manager.js";
import { ENVIRONMENTS, kekOf } from "../../src/keys/key-manager.js";

/**
 * One contract every KeyManager adapter passes (issue 3): round trip, wrong context, tampering,
 * one KEK per environment, rotation with older versions still unwrapping, re-wrap, describe,
 * and persistence across reopen.
 */
export interface KeyManagerUnderTest {
  /** Opens the adapter on fresh backend state (a new KEK). */
  open(): Promise<KeyManager>;
  /** Opens a second instance on the same backend state as the last open(). */
  reopen(): Promise<KeyManager>;
  /** Tears the backend state down; called after each test. */
  cleanup?(): Promise<void>;
}

const BASE: KeyContext = {
  dekId: "dek_contract",
  owner: "ten_contract",
  purpose: "pan",
  environment: "live",
};

async function decryptionFailure(attempt: Promise<unknown>): Promise<void> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionError);
}

export function keyManagerContract(name: string, subject: KeyManagerUnderTest): void {
  describe(`KeyManager contract: ${name}`, () => {
    const opened: KeyManager[] = [];
    const open = async (fresh = true) => {
      const manager = fresh ? await subject.open() : await subject.reopen();
      opened.push(manager);
      return manager;
    };
    afterEach(async () => {
      for (const manager of opened.splice(0)) await manager.close();
      await subject.cleanup?.();
    });

    it("wraps and unwraps a 256-bit DEK in each environment, and never returns the DEK in the wrap", async () => {
      const manager = await open();
      for (const environment of ENVIRONMENTS) {
        const dek = randomBytes(32);
        const context = { ...BASE, environment };
        const wrapped = await manager.wrapKey(dek, context);
        expect(wrapped.kekId).toBe(kekOf(manager, environment).kekId);
        expect(wrapped.kekVersion).toBe(kekOf(manager, environment).currentVersion);
        expect(wrapped.ciphertext.includes(dek)).toBe(false);
        expect(await manager.unwrapKey(wrapped, context)).toEqual(dek);
      }
    });

    it("refuses to unwrap under any other context: DEK id, owner, purpose or environment", async () => {
      const manager = await open();
      const wrapped = await manager.wrapKey(randomBytes(32), BASE);
      for (const wrong of [
        { ...BASE, dekId: "dek_other" },
        { ...BASE, owner: "ten_other" },
        { ...BASE, purpose: "sad" as const },
        { ...BASE, environment: "test" as const },
      ]) {
        await decryptionFailure(manager.unwrapKey(wrapped, wrong));
      }
    });

    it("refuses a tampered, truncated or relabelled wrap with the one generic error", async () => {
      const manager = await open();
      const wrapped = await manager.wrapKey(randomBytes(32), BASE);
      const flipped = Buffer.from(wrapped.ciphertext);
      flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 0x01;
      const cases: WrappedKey[] = [
        { ...wrapped, ciphertext: flipped },
        { ...wrapped, ciphertext: wrapped.ciphertext.subarray(0, wrapped.ciphertext.length - 1) },
        { ...wrapped, ciphertext: Buffer.alloc(0) },
        { ...wrapped, kekVersion: wrapped.kekVersion + 7 },
        { ...wrapped, kekId: `${wrapped.kekId}x` },
      ];
      for (const bad of cases) await decryptionFailure(manager.unwrapKey(bad, BASE));
    });

    it("keeps the live and test KEKs apart", async () => {
      const manager = await open();
      const live = kekOf(manager, "live");
      const test = kekOf(manager, "test");
      expect(live.kekId).not.toBe(test.kekId);
      const wrapped = await manager.wrapKey(randomBytes(32), { ...BASE, environment: "test" });
      expect(wrapped.kekId).toBe(test.kekId);
    });

    it("rotates a KEK: new wraps use the new version, old wraps still unwrap, and re-wrap moves them", async () => {
      const manager = await open();
      const dek = randomBytes(32);
      const before = await manager.wrapKey(dek, BASE);
      const testBefore = kekOf(manager, "test").currentVersion;
      const rotated = await manager.rotateKek("live");
      expect(rotated.currentVersion).toBe(before.kekVersion + 1);
      expect(rotated.versions.map((v) => v.version)).toEqual(
        expect.arrayContaining([before.kekVersion, rotated.currentVersion]),
      );
      // The other environment's KEK is untouched.
      expect(kekOf(manager, "test").currentVersion).toBe(testBefore);
      const after = await manager.wrapKey(randomBytes(32), BASE);
      expect(after.kekVersion).toBe(rotated.currentVersion);
      expect(await manager.unwrapKey(before, BASE)).toEqual(dek);
      const moved = await manager.rewrapKey(before, BASE);
      expect(moved.kekVersion).toBe(rotated.currentVersion);
      expect(moved.kekId).toBe(before.kekId);
      expect(await manager.unwrapKey(moved, BASE)).toEqual(dek);
      // Re-wrap checks the context like unwrap does.
      await decryptionFailure(manager.rewrapKey(before, { ...BASE, owner: "ten_other" }));
    });

    it("describes each KEK for the key inventory", async () => {
      const manager = await open();
      const keks = manager.describe();
      expect(keks.map((k) => k.environment).sort()).toEqual(["live", "test"]);
      for (const kek of keks) {
        expect(kek.kind).toBe(manager.kind);
        expect(kek.strengthBits).toBe(256);
        expect(kek.algorithm.length).toBeGreaterThan(0);
        expect(kek.location.length).toBeGreaterThan(0);
        expect(kek.versions.at(-1)?.version).toBe(kek.currentVersion);
      }
      await expect(manager.checkHealth()).resolves.toBeUndefined();
    });

    it("keeps its KEKs and versions across a reopen", async () => {
      const first = await open();
      const dek = randomBytes(32);
      const wrapped = await first.wrapKey(dek, BASE);
      await first.rotateKek("live");
      const rotated = await first.wrapKey(dek, BASE);
      const second = await open(false);
      expect(kekOf(second, "live")).toEqual(kekOf(first, "live"));
      expect(await second.unwrapKey(wrapped, BASE)).toEqual(dek);
      expect(await second.unwrapKey(rotated, BASE)).toEqual(dek);
    });
  });
}
