import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";

/**
 * PCI DSS 3.6.1 / 3.7.x: a KEK or unseal key the `local` KeyManager generates leaves its buffer
 * once it is sealed or written: the 256-bit values drawn from the CSPRNG for new KEKs, new
 * versions and new unseal keys are all zero afterwards (only the KEKs opened from the file, which
 * the manager zeroes on close, stay in memory).
 */

const drawn = vi.hoisted(() => ({ keys: [] as Buffer[] }));

vi.mock("../../src/crypto/random.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/crypto/random.js")>();
  return {
    ...real,
    randomBytes: (n: number) => {
      const bytes = real.randomBytes(n);
      if (n === 32) drawn.keys.push(bytes);
      return bytes;
    },
  };
});

function drawnSinceAndZeroed(): { count: number; zeroed: number } {
  const keys = drawn.keys.splice(0);
  return { count: keys.length, zeroed: keys.filter((k) => k.equals(Buffer.alloc(32))).length };
}

describe("fresh KEKs and unseal keys are zeroed once sealed or written", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-kek-zero-"));
    drawn.keys.splice(0);
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it("initSealed, rotateKek (sealed) and rekey", async () => {
    const path = join(dir, "sealed.json");
    const { shares } = await LocalKeyManager.initSealed(path, { shares: 3, threshold: 2 });
    // The unseal key and one KEK per environment (and no other 256-bit draw is kept).
    const init = drawnSinceAndZeroed();
    expect(init.count).toBeGreaterThanOrEqual(3);
    expect(init.zeroed).toBe(init.count);

    const manager = await LocalKeyManager.open(path, { create: false });
    manager.submitShare(shares[0] as string);
    manager.submitShare(shares[1] as string);
    drawn.keys.splice(0);
    await manager.rotateKek("live");
    await manager.rotateKek("test");
    expect(drawnSinceAndZeroed()).toEqual({ count: 2, zeroed: 2 });

    await manager.rekey({ shares: 2, threshold: 2 });
    const rekey = drawnSinceAndZeroed();
    expect(rekey.count).toBeGreaterThanOrEqual(1);
    expect(rekey.zeroed).toBe(rekey.count);
    await manager.close();
  });

  it("an unsealed file's first KEKs and later versions", async () => {
    const path = join(dir, "plain.json");
    const manager = await LocalKeyManager.open(path, { create: true });
    expect(drawnSinceAndZeroed()).toEqual({ count: 2, zeroed: 2 });
    await manager.rotateKek("live");
    expect(drawnSinceAndZeroed()).toEqual({ count: 1, zeroed: 1 });
    // Opening an existing file draws no new KEK at all.
    const again = await LocalKeyManager.open(path, { create: true });
    expect(drawnSinceAndZeroed()).toEqual({ count: 0, zeroed: 0 });
    await again.close();
    await manager.close();
  });
});
