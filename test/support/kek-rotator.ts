/**
 * A second process on the same KEK file, for the cross-process locking test
 * (test/integration/local-key-manager.test.ts): at a given moment, rotates the live KEK `count`
 * times, wrapping a fresh DEK after each rotation, and prints one JSON line per rotation with the
 * version the rotation returned and the wrap (the DEK too: it is random test data).
 *
 *   node --import tsx test/support/kek-rotator.ts <kek file> <count> <label> <start at (ms epoch)>
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";

const [path, countText, label, startText] = process.argv.slice(2);
if (path === undefined || label === undefined)
  throw new Error("usage: kek-rotator <file> <n> <label> <t>");
const manager = await LocalKeyManager.open(path, { create: false });
await sleep(Math.max(0, Number(startText) - Date.now()));
for (let i = 0; i < Number(countText); i++) {
  const rotated = await manager.rotateKek("live");
  const dek = randomBytes(32);
  const context = {
    dekId: `dek_${label}_${i}`,
    owner: "ten_locking",
    purpose: "pan",
    environment: "live",
  } as const;
  const wrapped = await manager.wrapKey(dek, context);
  process.stdout.write(
    `${JSON.stringify({
      version: rotated.currentVersion,
      dekId: context.dekId,
      dek: dek.toString("hex"),
      kekId: wrapped.kekId,
      kekVersion: wrapped.kekVersion,
      ciphertext: wrapped.ciphertext.toString("base64"),
    })}\n`,
  );
}
await manager.close();
