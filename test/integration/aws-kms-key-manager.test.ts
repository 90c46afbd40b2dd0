import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { AwsKmsKeyManagerOptions } from "../../src/keys/aws-kms-key-manager.js";
import { AwsKmsConfigError, AwsKmsKeyManager } from "../../src/keys/aws-kms-key-manager.js";
import type { KeyContext, KeyManager } from "../../src/keys/key-manager.js";
import { KeyServiceUnavailableError, kekOf } from "../../src/keys/key-manager.js";
import { keyManagerContract } from "../support/key-manager-contract.js";
import type { KmsStandin } from "../support/kms-standin.js";
import { startKmsStandin } from "../support/kms-standin.js";

// Static test credentials, always passed explicitly: nothing here may consult ~/.aws, the
// environment or the instance metadata service (the last test checks it).
const ACCESS_KEY_ID = "AKIDPAYVAULTTEST";
const CREDENTIALS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: "payvault-test-secret" };
const REGION = "us-east-1";
const BASE: KeyContext = {
  dekId: "dek_kms",
  owner: "ten_kms",
  purpose: "pan",
  environment: "live",
};

let standin: KmsStandin;
let ambientDir: string;

beforeAll(async () => {
  standin = await startKmsStandin();
  // Poisoned ambient configuration: were the SDK to fall back to it, the stand-in would see
  // another access key id, more attempts, or a metadata-service request.
  ambientDir = await mkdtemp(join(tmpdir(), "payvault-aws-"));
  await writeFile(join(ambientDir, "config"), "[default]\nregion = eu-west-3\nmax_attempts = 9\n");
  await writeFile(
    join(ambientDir, "credentials"),
    "[default]\naws_access_key_id = AKIDAMBIENTFILE\naws_secret_access_key = ambient\n",
  );
  vi.stubEnv("AWS_CONFIG_FILE", join(ambientDir, "config"));
  vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", join(ambientDir, "credentials"));
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDAMBIENTENV");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "ambient");
  vi.stubEnv("AWS_MAX_ATTEMPTS", "9");
  vi.stubEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT", standin.endpoint);
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await standin.stop();
  await rm(ambientDir, { recursive: true, force: true });
});

function openOn(
  keyIds: { live: string; test: string },
  extra: Partial<AwsKmsKeyManagerOptions> = {},
  endpoint = standin.endpoint,
): Promise<AwsKmsKeyManager> {
  return AwsKmsKeyManager.open({
    keyIds,
    region: REGION,
    endpoint,
    credentials: CREDENTIALS,
    ...extra,
  });
}

async function newKeyIds(on = standin): Promise<{ live: string; test: string }> {
  return { live: await on.createKey(), test: await on.createKey() };
}

async function rejection(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
}

let contractKeyIds: { live: string; test: string } | undefined;
keyManagerContract("aws-kms (local KMS stand-in)", {
  open: async () => {
    contractKeyIds = await newKeyIds();
    return openOn(contractKeyIds);
  },
  reopen: async () => {
    if (contractKeyIds === undefined) throw new Error("reopen before open");
    return openOn(contractKeyIds);
  },
});

describe("aws-kms KeyManager through the real SDK", () => {
  const opened: KeyManager[] = [];
  const open = async (...args: Parameters<typeof openOn>) => {
    const manager = await openOn(...args);
    opened.push(manager);
    return manager;
  };
  afterEach(async () => {
    for (const manager of opened.splice(0)) await manager.close();
  });

  it("sends Encrypt, Decrypt and ReEncrypt with the key pinned and the DEK's identity as EncryptionContext", async () => {
    const keyIds = await newKeyIds();
    const manager = await open(keyIds);
    const arn = kekOf(manager, "live").kekId;
    expect(arn).toBe(`arn:aws:kms:${REGION}:111122223333:key/${keyIds.live}`);
    expect(kekOf(manager, "live").location).toBe(`aws-kms:${arn}`);
    const from = standin.calls.length;

    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, BASE);
    expect(await manager.unwrapKey(wrapped, BASE)).toEqual(dek);
    await manager.rotateKek("live");
    const moved = await manager.rewrapKey(wrapped, BASE);
    expect(moved.kekVersion).toBe(2);

    const calls = standin.calls.slice(from);
    expect(calls.map((c) => c.action)).toEqual(
      expect.arrayContaining([
        "Encrypt",
        "Decrypt",
        "RotateKeyOnDemand",
        "ListKeyRotations",
        "ReEncrypt",
      ]),
    );
    const context = (version: number) => ({
      "payvault:dek": "dek_kms",
      "payvault:owner": "ten_kms",
      "payvault:purpose": "pan",
      "payvault:environment": "live",
      "payvault:kek-version": String(version),
    });
    const encrypt = calls.find((c) => c.action === "Encrypt")?.body;
    expect(encrypt).toMatchObject({ KeyId: arn, EncryptionContext: context(1) });
    expect(encrypt?.Plaintext).toBe(dek.toString("base64"));
    const decrypt = calls.find((c) => c.action === "Decrypt")?.body;
    expect(decrypt).toMatchObject({ KeyId: arn, EncryptionContext: context(1) });
    expect(decrypt?.CiphertextBlob).toBe(wrapped.ciphertext.toString("base64"));
    const reEncrypt = calls.find((c) => c.action === "ReEncrypt")?.body;
    expect(reEncrypt).toMatchObject({
      SourceKeyId: arn,
      DestinationKeyId: arn,
      SourceEncryptionContext: context(1),
      DestinationEncryptionContext: context(2),
    });
    // ReEncrypt happens inside KMS: no Plaintext travels in either direction.
    expect(reEncrypt).not.toHaveProperty("Plaintext");
  });

  it("turns KMS's InvalidCiphertextException and IncorrectKeyException into the one DecryptionError", async () => {
    const manager = await open(await newKeyIds());
    const wrapped = await manager.wrapKey(randomBytes(32), BASE);
    const from = standin.calls.length;
    const wrongOwner = await rejection(manager.unwrapKey(wrapped, { ...BASE, owner: "ten_other" }));
    // The live wrap presented as a test one: Decrypt is pinned to the test key, and KMS refuses.
    const testArn = kekOf(manager, "test").kekId;
    const otherKey = await rejection(
      manager.unwrapKey({ ...wrapped, kekId: testArn }, { ...BASE, environment: "test" }),
    );
    for (const err of [wrongOwner, otherKey]) {
      expect(err).toBeInstanceOf(DecryptionError);
      expect((err as Error).message).toBe("decryption failed");
      expect((err as Error).cause).toBeUndefined();
    }
    const decrypts = standin.calls.slice(from).filter((c) => c.action === "Decrypt");
    expect(decrypts.map((c) => c.body.KeyId)).toEqual([kekOf(manager, "live").kekId, testArn]);
  });

  it("waits for KMS to complete an on-demand rotation before using the new version", async () => {
    const slow = await startKmsStandin({ rotationDelayMs: 700 });
    try {
      const manager = await open(await newKeyIds(slow), {}, slow.endpoint);
      const before = await manager.wrapKey(randomBytes(32), BASE);
      const from = slow.requests.length;
      const rotated = await manager.rotateKek("live");
      expect(rotated.currentVersion).toBe(2);
      expect(rotated.versions.map((v) => v.version)).toEqual([1, 2]);
      expect(rotated.versions.every((v) => v.createdAt instanceof Date)).toBe(true);
      const polls = slow.requests.slice(from).filter((action) => action === "ListKeyRotations");
      expect(polls.length).toBeGreaterThan(2);
      const after = await manager.wrapKey(randomBytes(32), BASE);
      expect(after.kekVersion).toBe(2);
      expect((await manager.rewrapKey(before, BASE)).kekVersion).toBe(2);
    } finally {
      await slow.stop();
    }
  });

  it("rejects with KeyServiceUnavailableError, not DecryptionError, while KMS is down, and recovers on its own", async () => {
    const manager = await open(await newKeyIds(), { requestTimeoutMs: 500 });
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, BASE);
    await standin.stop();
    try {
      const attempts = [
        () => manager.wrapKey(randomBytes(32), BASE),
        () => manager.unwrapKey(wrapped, BASE),
        () => manager.rewrapKey(wrapped, BASE),
        () => manager.checkHealth(),
      ];
      for (const attempt of attempts) {
        const started = performance.now();
        const err = await rejection(attempt());
        expect(err).toBeInstanceOf(KeyServiceUnavailableError);
        expect(performance.now() - started).toBeLessThan(5_000);
      }
      const reopened = await rejection(openOn(await newKeyIds()));
      expect(reopened).toBeInstanceOf(KeyServiceUnavailableError);
    } finally {
      await standin.restart();
    }
    // Same instance, no reconnect call: the SDK's pooled sockets to the old listener are gone.
    expect(await manager.unwrapKey(wrapped, BASE)).toEqual(dek);
    await expect(manager.checkHealth()).resolves.toBeUndefined();
  });

  it("gives up on a KMS that accepts but never answers, after maxAttempts bounded attempts", async () => {
    const manager = await open(await newKeyIds(), { requestTimeoutMs: 300, maxAttempts: 2 });
    const wrapped = await manager.wrapKey(randomBytes(32), BASE);
    const from = standin.requests.length;
    standin.stall(true);
    try {
      const started = performance.now();
      const err = await rejection(manager.unwrapKey(wrapped, BASE));
      expect(err).toBeInstanceOf(KeyServiceUnavailableError);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(standin.requests.slice(from)).toEqual(["Decrypt", "Decrypt"]);
    } finally {
      standin.stall(false);
    }
    await expect(manager.checkHealth()).resolves.toBeUndefined();
  });

  it("maps throttling, KMS-side failures and a disabled key to KeyServiceUnavailableError", async () => {
    const keyIds = await newKeyIds();
    const manager = await open(keyIds);
    const wrapped = await manager.wrapKey(randomBytes(32), BASE);
    for (const [type, status] of [
      ["ThrottlingException", 400],
      ["KMSInternalException", 500],
      ["DependencyTimeoutException", 503],
      ["KeyUnavailableException", 500],
    ] as const) {
      const from = standin.requests.length;
      // Two faults for the two attempts (maxAttempts 2, whatever AWS_MAX_ATTEMPTS says).
      standin.failNext(2, type, status);
      const err = await rejection(manager.unwrapKey(wrapped, BASE));
      expect(err, type).toBeInstanceOf(KeyServiceUnavailableError);
      expect(standin.requests.slice(from), type).toEqual(["Decrypt", "Decrypt"]);
    }
    standin.setKeyEnabled(keyIds.live, false);
    expect(await rejection(manager.unwrapKey(wrapped, BASE))).toBeInstanceOf(
      KeyServiceUnavailableError,
    );
    expect(await rejection(manager.wrapKey(randomBytes(32), BASE))).toBeInstanceOf(
      KeyServiceUnavailableError,
    );
    expect(await rejection(manager.checkHealth())).toBeInstanceOf(KeyServiceUnavailableError);
  });

  it("refuses one key for both environments, by the same id or by two names of one key", async () => {
    const keyId = await standin.createKey();
    const from = standin.requests.length;
    const same = await rejection(openOn({ live: keyId, test: keyId }));
    expect(same).toBeInstanceOf(AwsKmsConfigError);
    expect(standin.requests.length).toBe(from); // refused before asking KMS
    const arn = `arn:aws:kms:${REGION}:111122223333:key/${keyId}`;
    const aliased = await rejection(openOn({ live: keyId, test: arn }));
    expect(aliased).toBeInstanceOf(AwsKmsConfigError);
    expect((aliased as Error).message).toMatch(/same KMS key/);
  });

  it("refuses an unknown, disabled or non-symmetric key at open with a clear error", async () => {
    const good = await standin.createKey();
    const disabled = await standin.createKey();
    standin.setKeyEnabled(disabled, false);
    const signing = await standin.createKey({ keyUsage: "SIGN_VERIFY", keySpec: "RSA_2048" });
    const unknown = "00000000-0000-4000-8000-000000000000";
    for (const [test, message] of [
      [unknown, /test KMS key "00000000-0000-4000-8000-000000000000" does not exist/],
      [disabled, /test KMS key .* is not enabled \(KeyState Disabled\)/],
      [signing, /test KMS key .* is not a symmetric encryption key/],
    ] as const) {
      const err = await rejection(openOn({ live: good, test }));
      expect(err).toBeInstanceOf(AwsKmsConfigError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it("has a stand-in that refuses requests without a SigV4 Authorization header", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${standin.endpoint}/`, {
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": "TrentService.DescribeKey",
          ...headers,
        },
        body: JSON.stringify({ KeyId: "any" }),
      });
    const unsigned = await post({});
    expect(unsigned.status).toBe(400);
    expect(await unsigned.json()).toMatchObject({ __type: "MissingAuthenticationTokenException" });
    const malformed = await post({
      authorization: "Bearer nope",
      "x-amz-date": "20250101T000000Z",
    });
    expect(await malformed.json()).toMatchObject({ __type: "IncompleteSignatureException" });
  });

  it("uses only the credentials and settings passed in: never the environment, ~/.aws or instance metadata", async () => {
    const from = standin.calls.length;
    const manager = await open(await newKeyIds());
    await manager.unwrapKey(await manager.wrapKey(randomBytes(32), BASE), BASE);
    await manager.checkHealth();
    const calls = standin.calls.slice(from);
    expect(calls.length).toBeGreaterThan(4);
    expect(new Set(calls.map((c) => c.accessKeyId))).toEqual(new Set([ACCESS_KEY_ID]));
    expect(standin.strayRequests).toEqual([]);
  });
});
