import { constants } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_BYTES, GCM_TAG_BYTES } from "../crypto/aes-gcm.js";
import { constantTimeEqual } from "../crypto/compare.js";
import { DecryptionError } from "../crypto/decryption-error.js";
import { hmacSha256 } from "../crypto/hmac.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type {
  Environment,
  KekDescription,
  KeyContext,
  KeyManager,
  WrappedKey,
} from "./key-manager.js";
import { ENVIRONMENTS, rewrapThroughHost, VaultSealedError } from "./key-manager.js";
import type { SealStatus } from "./seal.js";
import { ShareCollector } from "./seal.js";
import { legacyWrapAad, wrapAad } from "./wrap-aad.js";

const FORMAT_V1 = "payvault-kek/v1";
const FORMAT_V2 = "payvault-kek/v2";
const KEY_BYTES = 32;
const UNSEAL_CHECK_LABEL = Buffer.from("payvault/unseal-check/v1", "ascii");

/** One KEK version as stored: in the clear (file mode 0600), or sealed under the unseal key. */
interface StoredVersion {
  version: number;
  created_at: string;
  key?: string;
  sealed?: string;
  /** Set on the version carried over from a v1 file: its wraps used the v1 AAD. */
  legacy_aad?: boolean;
}

interface StoredKek {
  kek_id: string;
  versions: StoredVersion[];
}

interface SealConfig {
  set_id: string;
  shares: number;
  threshold: number;
  /** HMAC-SHA256 of a fixed label under the unseal key: tells a wrong combination apart. */
  check: string;
}

interface KekFileV2 {
  format: typeof FORMAT_V2;
  seal: SealConfig | null;
  keks: Record<Environment, StoredKek>;
}

interface LiveVersion {
  readonly version: number;
  readonly createdAt: Date;
  readonly key: Buffer;
  readonly legacyAad: boolean;
}

export class KekFileError extends Error {
  override readonly name = "KekFileError";
}

function newStoredKek(unsealKey: Buffer | undefined, now: Date): StoredKek {
  const kekId = newId("kek");
  return {
    kek_id: kekId,
    versions: [storeVersion(kekId, 1, randomBytes(KEY_BYTES), unsealKey, now)],
  };
}

function sealAad(kekId: string, version: number): Buffer {
  return Buffer.from(`payvault/kek-seal/v1\u0000${kekId}\u0000${version}`, "utf8");
}

/** A version for the file: the key itself, or (sealed mode) the key encrypted under the unseal key. */
function storeVersion(
  kekId: string,
  version: number,
  key: Buffer,
  unsealKey: Buffer | undefined,
  now: Date,
): StoredVersion {
  const stored: StoredVersion = { version, created_at: now.toISOString() };
  if (unsealKey === undefined) {
    stored.key = key.toString("base64");
  } else {
    const nonce = randomBytes(GCM_NONCE_BYTES);
    const { ciphertext, tag } = aesGcmEncrypt(unsealKey, nonce, key, sealAad(kekId, version));
    stored.sealed = Buffer.concat([nonce, ciphertext, tag]).toString("base64");
  }
  return stored;
}

function unsealCheck(unsealKey: Buffer): Buffer {
  return hmacSha256(unsealKey, UNSEAL_CHECK_LABEL);
}

/** Writes the file atomically with mode 0600: a temporary file, fsync, then rename over. */
async function writeKekFile(path: string, body: KekFileV2, exclusive: boolean): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const text = `${JSON.stringify(body, null, 2)}\n`;
  const target = exclusive ? path : `${path}.${process.pid}.tmp`;
  const handle = await open(
    target,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    0o600,
  );
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (!exclusive) {
    try {
      await rename(target, path);
    } catch (err) {
      await rm(target, { force: true });
      throw err;
    }
  }
}

async function readKekFile(path: string): Promise<KekFileV2> {
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
  if (parsed.format === FORMAT_V1) return upgradeV1(path, parsed);
  if (parsed.format !== FORMAT_V2 || typeof parsed.keks !== "object" || parsed.keks === null) {
    throw new KekFileError(`KEK file ${path} is not a ${FORMAT_V2} file`);
  }
  return parsed as unknown as KekFileV2;
}

/** A first-release file: its one key becomes the live KEK's version 1, and a test KEK is added. */
function upgradeV1(path: string, v1: Record<string, unknown>): KekFileV2 {
  const key = Buffer.from(String(v1.key ?? ""), "base64");
  if (typeof v1.kek_id !== "string" || key.length !== KEY_BYTES) {
    throw new KekFileError(`KEK file ${path} is not a ${FORMAT_V1} file with a 256-bit key`);
  }
  return {
    format: FORMAT_V2,
    seal: null,
    keks: {
      live: {
        kek_id: v1.kek_id,
        versions: [
          {
            version: Number(v1.version ?? 1),
            created_at: String(v1.created_at ?? new Date(0).toISOString()),
            key: key.toString("base64"),
            legacy_aad: true,
          },
        ],
      },
      test: newStoredKek(undefined, new Date()),
    },
  };
}

export interface LocalKeyManagerOptions {
  /** Create the KEK file (unsealed) when it does not exist: the embedded default's first start. */
  readonly create: boolean;
  /** For tests of the unseal lockout. */
  readonly now?: () => number;
}

/**
 * The `local` KeyManager: the embedded default. One KEK per environment, each a list of versions,
 * in a JSON file in the data directory (or PAYVAULT_KEK_FILE, which should sit on another volume
 * than the database in production, PCI DSS 3.6.1.3). DEKs are wrapped with AES-256-GCM under the
 * KEK; the AAD binds the KEK id and version and the DEK's id, owner, purpose and environment.
 *
 * Sealed mode (`payvault init --shares N --threshold T`): the file holds the KEK versions only
 * encrypted under an unseal key that exists nowhere at rest: it is split into N Shamir shares
 * held by custodians, and rebuilt in memory when T of them are submitted (PCI DSS 3.6.1.2 split
 * knowledge; each share is as long as the key, never a half of it).
 */
export class LocalKeyManager implements KeyManager {
  readonly kind = "local" as const;
  private keks = new Map<Environment, { id: string; versions: LiveVersion[] }>();
  private unsealKey: Buffer | undefined;
  private collector: ShareCollector | undefined;

  private constructor(
    private readonly path: string,
    private file: KekFileV2,
    private readonly now: () => number,
  ) {
    this.collector = this.collectorFor(file.seal);
    if (file.seal === null) this.loadVersions(undefined);
  }

  private collectorFor(seal: SealConfig | null): ShareCollector | undefined {
    if (seal === null) return undefined;
    return new ShareCollector(
      { setId: seal.set_id, threshold: seal.threshold, shares: seal.shares },
      (candidate) => this.tryUnseal(candidate),
      this.now,
    );
  }

  static async open(path: string, options: LocalKeyManagerOptions): Promise<LocalKeyManager> {
    if (options.create) await createIfMissing(path);
    const file = await readKekFile(path);
    const manager = new LocalKeyManager(path, file, options.now ?? Date.now);
    // A v1 file is rewritten as v2 once, so the test KEK it gained is kept.
    if (file.keks.test !== undefined && (await isV1(path))) await writeKekFile(path, file, false);
    return manager;
  }

  /**
   * Creates a sealed KEK file: new live and test KEKs, sealed under a new unseal key that is
   * split into `shares` Shamir shares, `threshold` of which unseal. Returns the shares, each to be
   * handed to one custodian; they are stored nowhere. Refuses to overwrite an existing file.
   */
  static async initSealed(
    path: string,
    options: { shares: number; threshold: number },
  ): Promise<{ setId: string; shares: string[] }> {
    const unsealKey = randomBytes(KEY_BYTES);
    try {
      const now = new Date();
      const setId = newId("kset");
      // Split first: impossible options throw before a file exists whose shares nobody holds.
      const shares = ShareCollector.split(setId, unsealKey, options);
      const file: KekFileV2 = {
        format: FORMAT_V2,
        seal: sealConfig(setId, options, unsealKey),
        keks: { live: newStoredKek(unsealKey, now), test: newStoredKek(unsealKey, now) },
      };
      try {
        await writeKekFile(path, file, true);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") {
          throw new KekFileError(
            `a KEK file already exists at ${path}; change custodians with a custodians.rekey ceremony instead`,
          );
        }
        throw err;
      }
      return { setId, shares };
    } finally {
      zeroize(unsealKey);
    }
  }

  sealStatus(): SealStatus {
    return (
      this.collector?.status(this.unsealKey === undefined) ?? {
        sealed: false,
        threshold: 0,
        shares: 0,
        progress: 0,
      }
    );
  }

  /** Adds one custodian's share; unseals when the threshold is reached. See ShareCollector. */
  submitShare(text: string): SealStatus {
    if (this.collector === undefined || this.unsealKey !== undefined) return this.sealStatus();
    return this.collector.submit(text);
  }

  /**
   * Custodian change (a dual-control ceremony): a new unseal key and a new set of shares; the KEK
   * versions are re-sealed under it. Also turns an unsealed file into a sealed one.
   */
  async rekey(options: {
    shares: number;
    threshold: number;
  }): Promise<{ setId: string; shares: string[] }> {
    this.requireUnsealed();
    // Start from the file as it is now: a KEK version another node added must not be dropped.
    await this.reload();
    const unsealKey = randomBytes(KEY_BYTES);
    const setId = newId("kset");
    // Split first: impossible options must not re-seal the file under a key nobody holds.
    let shares: string[];
    try {
      shares = ShareCollector.split(setId, unsealKey, options);
    } catch (err) {
      zeroize(unsealKey);
      throw err;
    }
    const now = new Date();
    const keks = {} as Record<Environment, StoredKek>;
    for (const environment of ENVIRONMENTS) {
      const kek = this.kekFor(environment);
      keks[environment] = {
        kek_id: kek.id,
        versions: kek.versions.map((v) => ({
          ...storeVersion(kek.id, v.version, v.key, unsealKey, now),
          created_at: v.createdAt.toISOString(),
          ...(v.legacyAad ? { legacy_aad: true } : {}),
        })),
      };
    }
    const file: KekFileV2 = {
      format: FORMAT_V2,
      seal: sealConfig(setId, options, unsealKey),
      keks,
    };
    try {
      await writeKekFile(this.path, file, false);
    } catch (err) {
      zeroize(unsealKey);
      throw err;
    }
    this.file = file;
    if (this.unsealKey !== undefined) zeroize(this.unsealKey);
    this.unsealKey = unsealKey;
    // The status (threshold, shares) and any later unseal follow the new set, not the old one.
    this.collector?.reset();
    this.collector = this.collectorFor(file.seal);
    return { setId, shares };
  }

  async wrapKey(key: Uint8Array, context: KeyContext): Promise<WrappedKey> {
    const kek = this.kekFor(context.environment);
    const current = kek.versions.at(-1) as LiveVersion;
    const nonce = randomBytes(GCM_NONCE_BYTES);
    const { ciphertext, tag } = aesGcmEncrypt(
      current.key,
      nonce,
      key,
      aadFor(current, kek.id, current.version, context),
    );
    return {
      kekId: kek.id,
      kekVersion: current.version,
      ciphertext: Buffer.concat([nonce, ciphertext, tag]),
    };
  }

  async unwrapKey(wrapped: WrappedKey, context: KeyContext): Promise<Buffer> {
    const kek = this.kekFor(context.environment);
    const blob = wrapped.ciphertext;
    if (wrapped.kekId !== kek.id || blob.length <= GCM_NONCE_BYTES + GCM_TAG_BYTES) {
      throw new DecryptionError();
    }
    let version = kek.versions.find((v) => v.version === wrapped.kekVersion);
    if (version === undefined && wrapped.kekVersion > (kek.versions.at(-1)?.version ?? 0)) {
      // Another node sharing this file rotated the KEK: read the file again, once.
      await this.reload();
      version = this.kekFor(context.environment).versions.find(
        (v) => v.version === wrapped.kekVersion,
      );
    }
    if (version === undefined) throw new DecryptionError();
    return aesGcmDecrypt(
      version.key,
      blob.subarray(0, GCM_NONCE_BYTES),
      blob.subarray(GCM_NONCE_BYTES, blob.length - GCM_TAG_BYTES),
      blob.subarray(blob.length - GCM_TAG_BYTES),
      aadFor(version, wrapped.kekId, wrapped.kekVersion, context),
    );
  }

  rewrapKey(wrapped: WrappedKey, context: KeyContext): Promise<WrappedKey> {
    return rewrapThroughHost(this, wrapped, context);
  }

  async rotateKek(environment: Environment): Promise<KekDescription> {
    this.requireUnsealed();
    // Start from the file as it is now, in case another node rotated meanwhile.
    await this.reload();
    const stored = this.file.keks[environment];
    const next = Math.max(...stored.versions.map((v) => v.version)) + 1;
    stored.versions.push(
      storeVersion(stored.kek_id, next, randomBytes(KEY_BYTES), this.unsealKey, new Date()),
    );
    await writeKekFile(this.path, this.file, false);
    this.loadVersions(this.unsealKey);
    return this.describeOne(environment);
  }

  describe(): readonly KekDescription[] {
    return ENVIRONMENTS.map((environment) => this.describeOne(environment));
  }

  async checkHealth(): Promise<void> {
    // The keys are in memory; nothing remote to reach. A sealed vault is not healthy.
    this.requireUnsealed();
  }

  async close(): Promise<void> {
    for (const kek of this.keks.values()) for (const v of kek.versions) zeroize(v.key);
    this.keks.clear();
    if (this.unsealKey !== undefined) zeroize(this.unsealKey);
    this.unsealKey = undefined;
    this.collector?.reset();
  }

  private describeOne(environment: Environment): KekDescription {
    const stored = this.file.keks[environment];
    const versions = stored.versions.map((v) => ({
      version: v.version,
      createdAt: new Date(v.created_at),
    }));
    return {
      kind: "local",
      environment,
      kekId: stored.kek_id,
      currentVersion: versions.at(-1)?.version ?? 0,
      versions,
      algorithm: "AES-256-GCM",
      strengthBits: 256,
      location: `file:${this.path}${this.file.seal === null ? "" : " (sealed under Shamir shares)"}`,
    };
  }

  /** Called by the share collector with a combined candidate unseal key. */
  private tryUnseal(candidate: Buffer): boolean {
    const seal = this.file.seal as SealConfig;
    if (!constantTimeEqual(unsealCheck(candidate), Buffer.from(seal.check, "base64"))) {
      return false;
    }
    this.unsealKey = Buffer.from(candidate);
    this.loadVersions(this.unsealKey);
    return true;
  }

  private loadVersions(unsealKey: Buffer | undefined): void {
    const next = new Map<Environment, { id: string; versions: LiveVersion[] }>();
    for (const environment of ENVIRONMENTS) {
      const stored = this.file.keks[environment];
      if (stored === undefined)
        throw new KekFileError(`KEK file ${this.path} has no ${environment} KEK`);
      const versions = stored.versions
        .map((v) => ({
          version: v.version,
          createdAt: new Date(v.created_at),
          key: openVersion(stored.kek_id, v, unsealKey, this.path),
          legacyAad: v.legacy_aad === true,
        }))
        .sort((a, b) => a.version - b.version);
      next.set(environment, { id: stored.kek_id, versions });
    }
    for (const kek of this.keks.values()) for (const v of kek.versions) zeroize(v.key);
    this.keks = next;
  }

  private async reload(): Promise<void> {
    this.file = await readKekFile(this.path);
    if (this.file.seal === null || this.unsealKey !== undefined) this.loadVersions(this.unsealKey);
  }

  private requireUnsealed(): void {
    if (this.keks.size === 0) throw new VaultSealedError();
  }

  private kekFor(environment: Environment): { id: string; versions: LiveVersion[] } {
    const kek = this.keks.get(environment);
    if (kek === undefined) throw new VaultSealedError();
    return kek;
  }
}

/**
 * The AAD a KEK version wraps and unwraps with. The version carried over from a v1 file keeps the
 * first release's AAD for every wrap under it, old or new (until a rotation moves them to a
 * version with the v2 AAD): one AAD per version, so a wrap made after the upgrade unwraps too.
 * The legacy AAD has no environment field; the KEK id in it still ties the wrap to the live KEK.
 */
function aadFor(
  version: LiveVersion,
  kekId: string,
  kekVersion: number,
  context: KeyContext,
): Buffer {
  return version.legacyAad
    ? legacyWrapAad(kekId, kekVersion, context)
    : wrapAad(kekId, kekVersion, context);
}

function sealConfig(
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

function openVersion(
  kekId: string,
  stored: StoredVersion,
  unsealKey: Buffer | undefined,
  path: string,
): Buffer {
  if (stored.key !== undefined) {
    const key = Buffer.from(stored.key, "base64");
    if (key.length === KEY_BYTES) return key;
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

async function isV1(path: string): Promise<boolean> {
  const text = await readFile(path, "utf8");
  return text.includes(`"${FORMAT_V1}"`);
}

/**
 * Creates an unsealed KEK file if none exists: 256 random bits per environment, written with
 * mode 0600 and the exclusive-create flag so two starting processes cannot both write one.
 */
async function createIfMissing(path: string): Promise<void> {
  const now = new Date();
  const body: KekFileV2 = {
    format: FORMAT_V2,
    seal: null,
    keks: { live: newStoredKek(undefined, now), test: newStoredKek(undefined, now) },
  };
  try {
    await writeKekFile(path, body, true);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}
