import { describe, expect, it } from "vitest";
import { DecryptionError } from "../../../src/crypto/decryption-error.js";
import { SecretBytes } from "../../../src/crypto/secret.js";
import {
  decodeSecrets,
  encodeSecrets,
  liveSecrets,
  MAX_SECRETS,
  newSigningSecret,
  rotateSecrets,
  type SigningSecret,
} from "../../../src/services/webhooks/outbound/destination-secrets.js";
import { standardWebhookSecret } from "../../../src/webhooks/signatures/standard-webhooks.js";

const bytesOf = (secret: SigningSecret) => secret.key.use((b) => Buffer.from(b));
const key = (fill: number, expiresAt?: Date): SigningSecret => ({
  key: SecretBytes.from(Buffer.alloc(32, fill)),
  expiresAt,
});

describe("destination signing secrets", () => {
  it("are whsec_ + base64 of 32 random bytes, the form Standard Webhooks verifiers read", () => {
    const a = newSigningSecret();
    const b = newSigningSecret();
    expect(a.serialized).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(a.serialized).not.toBe(b.serialized);
    const parsed = standardWebhookSecret(a.serialized);
    expect(parsed.use((bytes) => Buffer.from(bytes))).toEqual(bytesOf(a.secret));
    // The wrapper never prints its bytes.
    expect(String(a.secret.key)).toBe("[secret]");
  });

  it("round-trip through the sealed plaintext layout, expiries included", () => {
    const at = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 6));
    const list = [key(1), key(2, at)];
    const decoded = decodeSecrets(encodeSecrets(list));
    expect(decoded.map(bytesOf)).toEqual(list.map(bytesOf));
    expect(decoded.map((s) => s.expiresAt)).toEqual([undefined, at]);
  });

  it("refuse a malformed plaintext with the one DecryptionError", () => {
    const good = encodeSecrets([key(1)]);
    for (const bad of [
      Buffer.alloc(0),
      Buffer.concat([Buffer.of(2), good.subarray(1)]),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.of(0)]),
      Buffer.of(1, 0),
    ]) {
      expect(() => decodeSecrets(bad)).toThrow(DecryptionError);
    }
    expect(() => encodeSecrets([])).toThrow(RangeError);
  });

  it("rotate: the new secret first, the old one overlapping until now + overlap", () => {
    const now = new Date(Date.UTC(2030, 0, 1));
    const { secrets, previousExpiresAt } = rotateSecrets([key(1)], key(2), now, 3600);
    expect(secrets.map(bytesOf)).toEqual([bytesOf(key(2)), bytesOf(key(1))]);
    expect(previousExpiresAt).toEqual(new Date(now.getTime() + 3_600_000));
    expect(secrets[1]?.expiresAt).toEqual(previousExpiresAt);
    // Both sign inside the overlap, only the new one after it.
    expect(liveSecrets(secrets, new Date(now.getTime() + 3_599_999)).length).toBe(2);
    const after = liveSecrets(secrets, previousExpiresAt);
    expect(after.map((s) => s.use((b) => Buffer.from(b)))).toEqual([bytesOf(key(2))]);
  });

  it("rotate: a zero overlap ends the old secret at once; expired ones are dropped; the list is capped", () => {
    const now = new Date(Date.UTC(2030, 0, 1));
    const zero = rotateSecrets([key(1)], key(2), now, 0);
    expect(liveSecrets(zero.secrets, now).length).toBe(1);
    const expired = key(3, new Date(now.getTime() - 1));
    expect(rotateSecrets([key(1), expired], key(2), now, 60).secrets.length).toBe(2);
    // An earlier end of an older overlap is kept, never extended.
    const early = new Date(now.getTime() + 10_000);
    const kept = rotateSecrets([key(1), key(4, early)], key(2), now, 3600).secrets;
    expect(kept[2]?.expiresAt).toEqual(early);
    let list: SigningSecret[] = [key(0)];
    for (let i = 1; i <= MAX_SECRETS + 2; i++) list = rotateSecrets(list, key(i), now, 60).secrets;
    expect(list.length).toBe(MAX_SECRETS);
    expect(bytesOf(list[0] as SigningSecret)).toEqual(bytesOf(key(MAX_SECRETS + 2)));
  });
});
