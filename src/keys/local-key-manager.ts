import { constants } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { aesGcmDecrypt, aesGcmEncrypt } from "../crypto/aes-gcm.js";
import { DecryptionError } from "../crypto/decryption-error.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type { KekDescription, KeyContext, KeyManager, WrappedKey } from "./key-manager.js";
import { wrapAad } from "./wrap-aad.js";

const KEK_FORMAT = "payvault-kek/v1";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

interface KekFile {
  format: typeof KEK_FORMAT;
  kek_id: string;
  version: number;
  created_at: string;
  key: string;
}

export class KekFileError extends Error {
  override readonly name = "KekFileError";
}

/**
 * Creates the KEK file if it does not exist: 256 random bits, written with mode 0600 and the
 * exclusive-create flag so two starting processes cannot both write one.
 */
async function createKekFile(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const body: KekFile = {
    format: KEK_FORMAT,
    kek_id: newId("kek"),
    version: 1,
    created_at: new Date().toISOString(),
    key: randomBytes(32).toString("base64"),
  };
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await handle.writeFile(`${JSON.stringify(body, null, 2)}\n`);
    await handle.sync();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await handle?.close();
  }
}

async function readKekFile(path: string): Promise<{ id: string; version: number; key: Buffer }> {
  const info = await stat(path);
  // Like ssh with its private keys: a KEK that others can read is refused (PCI DSS 3.6.1.3).
  if ((info.mode & 0o077) !== 0) {
    throw new KekFileError(`KEK file ${path} must not be readable by group or others (chmod 600)`);
  }
  let parsed: Partial<KekFile>;
  try {
    parsed = JSON.parse(await readFile(path, "utf8")) as Partial<KekFile>;
  } catch {
    throw new KekFileError(`KEK file ${path} is not valid JSON`);
  }
  const key = Buffer.from(parsed.key ?? "", "base64");
  if (parsed.format !== KEK_FORMAT || typeof parsed.kek_id !== "string" || key.length !== 32) {
    throw new KekFileError(`KEK file ${path} is not a ${KEK_FORMAT} file with a 256-bit key`);
  }
  return { id: parsed.kek_id, version: Number(parsed.version ?? 1), key };
}

/**
 * The `local` KeyManager: the embedded default. The KEK is a file in the data directory (or
 * PAYVAULT_KEK_FILE, which should point at a different volume than the database in production,
 * PCI DSS 3.6.1.3). DEKs are wrapped with AES-256-GCM under the KEK; the AAD binds the KEK id and
 * version and the DEK's id, owner and purpose.
 */
export class LocalKeyManager implements KeyManager {
  private constructor(
    private readonly path: string,
    private readonly kek: { id: string; version: number; key: Buffer },
  ) {}

  static async open(path: string, options: { create: boolean }): Promise<LocalKeyManager> {
    if (options.create) await createKekFile(path);
    return new LocalKeyManager(path, await readKekFile(path));
  }

  async wrapKey(key: Uint8Array, context: KeyContext): Promise<WrappedKey> {
    const nonce = randomBytes(NONCE_BYTES);
    const aad = wrapAad(this.kek.id, this.kek.version, context);
    const { ciphertext, tag } = aesGcmEncrypt(this.kek.key, nonce, key, aad);
    return {
      kekId: this.kek.id,
      kekVersion: this.kek.version,
      ciphertext: Buffer.concat([nonce, ciphertext, tag]),
    };
  }

  async unwrapKey(wrapped: WrappedKey, context: KeyContext): Promise<Buffer> {
    const blob = wrapped.ciphertext;
    if (wrapped.kekId !== this.kek.id || blob.length <= NONCE_BYTES + TAG_BYTES) {
      throw new DecryptionError();
    }
    const aad = wrapAad(wrapped.kekId, wrapped.kekVersion, context);
    return aesGcmDecrypt(
      this.kek.key,
      blob.subarray(0, NONCE_BYTES),
      blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES),
      blob.subarray(blob.length - TAG_BYTES),
      aad,
    );
  }

  describe(): KekDescription {
    return {
      kind: "local",
      kekId: this.kek.id,
      kekVersion: this.kek.version,
      algorithm: "AES-256-GCM",
      location: `file:${this.path}`,
    };
  }

  async checkHealth(): Promise<void> {
    // The key is in memory; nothing remote to reach.
  }

  async close(): Promise<void> {
    zeroize(this.kek.key);
  }
}
