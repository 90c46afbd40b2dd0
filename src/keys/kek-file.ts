import { constants } from "node:fs";
import { link, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_BYTES, GCM_TAG_BYTES } from "../crypto/aes-gcm.js";
import { constantTimeEqual } from "../crypto/compare.js";
import { hmacSha256 } from "../crypto/hmac.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type { Environment } from "./key-manager.js";
import { ENVIRONMENTS } from "./key-manager.js";

/**
 * The `local` KEK file (docs/key-management.md): its JSON format, how it is read, and how it is
 * written so that a crash or a concurrent reader never sees half a file. The locking that keeps
 * concurrent writers from losing each other's changes is in file-lock.ts.
 */

export const FORMAT_V1 = "payvault-kek/v1";
export const FORMAT_V2 = "payvault-kek/v2";
export const KEK_BYTES = 32;
const UNSEAL_CHECK_LABEL = Buffer.from("payvault/unseal-check/v1", "ascii");

/** One KEK version as stored: in the clear (file mode 0600), or sealed under the unseal key. */
export interface StoredVersion {
  version: number;
  created_at: string;
  key?: string;
  sealed?: string;
  /** Set on the version carried over from a v1 file: its wraps used the v1 AAD. */
  legacy_aad?: boolean;
}

export interface StoredKek {
  kek_id: string;
  versions: StoredVersion[];
}

export interface SealConfig {
  set_id: string;
  shares: number;
  threshold: number;
  /** HMAC-SHA256 of a fixed label under the unseal key: tells a wrong combination apart. */
  check: string;
}

/**
 * A custodian rekey waiting for confirmation: the new share set's configuration and check value
 * only. The KEKs stay sealed under the current seal, which stays authoritative until a threshold
 * of the new shares is submitted back (PCI DSS 3.6.1.2, 3.7.6).
 */
export interface PendingSeal extends SealConfig {
  staged_at: string;
  ceremony_id?: string;
}

export interface KekFileV2 {
  format: typeof FORMAT_V2;
  seal: SealConfig | null;
  pending_seal?: PendingSeal;
  keks: Record<Environment, StoredKek>;
}

export class KekFileError extends Error {
  override readonly name = "KekFileError";
}

function sealAad(kekId: string, version: number): Buffer {
  return Buffer.from(`payvault/kek-seal/v1\u0000${kekId}\u0000${version}`, "utf8");
}

export function unsealCheck(unsealKey: Buffer): Buffer {
  return hmacSha256(unsealKey, UNSEAL_CHECK_LABEL);
}

/** Whether `key` is the unseal key of `seal` (constant time). */
export function opensSeal(seal: SealConfig, key: Buffer): boolean {
  return constantTimeEqual(unsealCheck(key), Buffer.from(seal.check, "base64"));
}

export function sealConfig(
  setId: string,
  options: { shares: number; threshold: number },
  unsealKey: Buffer,
): SealConfig {
  return {
    set_id: setId,
    shares: options.shares,
    threshold: options.threshold,
    check: unsealCheck(unsealKey).toString("base64"),
  };
}

/** A version for the file: the key itself, or (sealed mode) the key encrypted under the unseal key. */
export function storeVersion(
  kekId: string,
  version: number,
  key: Buffer,
  unsealKey: Buffer | undefined,
  createdAt: string,
  legacyAad = false,
): StoredVersion {
  const stored: StoredVersion = { version, created_at: createdAt };
  if (unsealKey === undefined) {
    stored.key = key.toString("base64");
  } else {
    const nonce = randomBytes(GCM_NONCE_BYTES);
    const { ciphertext, tag } = aesGcmEncrypt(unsealKey, nonce, key, sealAad(kekId, version));
    stored.sealed = Buffer.concat([nonce, ciphertext, tag]).toString("base64");
  }
  if (legacyAad) stored.legacy_aad = true;
  return stored;
}

/** A new KEK with one version of 256 CSPRNG bits; the fresh key is zeroed once stored (3.6.1). */
export function newStoredKek(unsealKey: Buffer | undefined, createdAt: string): StoredKek {
  const kekId = newId("kek");
  const key = randomBytes(KEK_BYTES);
  try {
    return { kek_id: kekId, versions: [storeVersion(kekId, 1, key, unsealKey, createdAt)] };
  } finally {
    zeroize(key);
  }
}

/** The KEK bytes of a stored version: decoded, or opened with the unseal key. */
export function openVersion(
  kekId: string,
  stored: Pick<StoredVersion, "version" | "key" | "sealed">,
  unsealKey: Buffer | undefined,
  path: string,
): Buffer {
  if (stored.key !== undefined) {
    const key = Buffer.from(stored.key, "base64");
    if (key.length === KEK_BYTES) return key;
    zeroize(key);
  } else if (stored.sealed !== undefined && unsealKey !== undefined) {
    const blob = Buffer.from(stored.sealed, "base64");
    try {
      return aesGcmDecrypt(
        unsealKey,
        blob.subarray(0, GCM_NONCE_BYTES),
        blob.subarray(GCM_NONCE_BYTES, blob.length - GCM_TAG_BYTES),
        blob.subarray(blob.length - GCM_TAG_BYTES),
        sealAad(kekId, stored.version),
      );
    } catch {
      // Falls through to the file error: the check value matched, so the file was altered.
    }
  }
  throw new KekFileError(`KEK file ${path}: version ${stored.version} of ${kekId} is unreadable`);
}

/**
 * Reads the file. A first-release v1 file comes back as v2 (its key becomes the live KEK's
 * version 1, and a new test KEK is added) with `fromV1` set: the caller writes it back under the
 * lock, or the new test KEK would exist only in this process.
 */
export async function readKekFile(path: string): Promise<{ body: KekFileV2; fromV1: boolean }> {
  const info = await stat(path);
  // Like ssh with its private keys: a KEK file that others can read is refused (PCI DSS 3.6.1.3).
  if ((info.mode & 0o077) !== 0) {
    throw new KekFileError(`KEK file ${path} must not be readable by group or others (chmod 600)`);
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch {
    throw new KekFileError(`KEK file ${path} is not valid JSON`);
  }
  if (parsed.format === FORMAT_V1) return { body: upgradeV1(path, parsed), fromV1: true };
  if (parsed.format !== FORMAT_V2 || typeof parsed.keks !== "object" || parsed.keks === null) {
    throw new KekFileError(`KEK file ${path} is not a ${FORMAT_V2} file`);
  }
  const body = parsed as unknown as KekFileV2;
  for (const environment of ENVIRONMENTS) {
    if (!Array.isArray(body.keks[environment]?.versions)) {
      throw new KekFileError(`KEK file ${path} has no ${environment} KEK`);
    }
  }
  if (body.seal !== null && !isSealConfig(body.seal)) {
    throw new KekFileError(`KEK file ${path} has a malformed seal`);
  }
  if (body.pending_seal !== undefined && !isSealConfig(body.pending_seal)) {
    throw new KekFileError(`KEK file ${path} has a malformed pending seal`);
  }
  return { body, fromV1: false };
}

function isSealConfig(value: unknown): value is SealConfig {
  const seal = value as Partial<SealConfig> | null;
  return (
    typeof seal === "object" &&
    seal !== null &&
    typeof seal.set_id === "string" &&
    typeof seal.check === "string" &&
    Number.isInteger(seal.shares) &&
    Number.isInteger(seal.threshold)
  );
}

function upgradeV1(path: string, v1: Record<string, unknown>): KekFileV2 {
  const key = Buffer.from(String(v1.key ?? ""), "base64");
  try {
    if (typeof v1.kek_id !== "string" || key.length !== KEK_BYTES) {
      throw new KekFileError(`KEK file ${path} is not a ${FORMAT_V1} file with a 256-bit key`);
    }
    const live = storeVersion(
      v1.kek_id,
      Number(v1.version ?? 1),
      key,
      undefined,
      String(v1.created_at ?? new Date(0).toISOString()),
      true,
    );
    return {
      format: FORMAT_V2,
      seal: null,
      keks: {
        live: { kek_id: v1.kek_id, versions: [live] },
        test: newStoredKek(undefined, new Date().toISOString()),
      },
    };
  } finally {
    zeroize(key);
  }
}

function serialize(body: KekFileV2): string {
  return `${JSON.stringify(body, null, 2)}\n`;
}

/** A temporary file beside `path`, with a random name and mode 0600, written and fsynced. */
async function writeTemp(path: string, body: KekFileV2): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(12).toString("hex")}.tmp`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(serialize(body));
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  return temp;
}

/** Makes a rename or link in `dir` durable. Platforms that cannot fsync a directory skip it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EISDIR" && code !== "EPERM") throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Replaces the file atomically: a temporary file with a random name (mode 0600), fsync, a last
 * check by the caller (that it still holds the lock), rename over, fsync of the directory. A
 * reader sees the old file or the new one, never a mix; after a crash the rename is durable.
 */
export async function replaceKekFile(
  path: string,
  body: KekFileV2,
  beforeRename: () => Promise<void>,
): Promise<void> {
  const temp = await writeTemp(path, body);
  try {
    await beforeRename();
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

/**
 * Creates the file only if none exists: written in full to a temporary file, then linked to its
 * name (link(2) fails if the name exists), so a process reading it never sees half a file.
 * Returns false if a file already exists.
 */
export async function createKekFile(path: string, body: KekFileV2): Promise<boolean> {
  const temp = await writeTemp(path, body);
  try {
    await link(temp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw err;
    // A file system without hard links: exclusive create of the file itself.
    return createInPlace(path, body);
  } finally {
    await rm(temp, { force: true });
  }
  await syncDirectory(dirname(path));
  return true;
}

async function createInPlace(path: string, body: KekFileV2): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    await handle.writeFile(serialize(body));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await syncDirectory(dirname(path));
  return true;
}
