import { stat } from "node:fs/promises";
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_BYTES, GCM_TAG_BYTES } from "../crypto/aes-gcm.js";
import { DecryptionError } from "../crypto/decryption-error.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type { FileLockOptions } from "./file-lock.js";
import { serializeOnPath, withFileLock } from "./file-lock.js";
import type { KekFileV2, PendingSeal, SealConfig, StoredKek, StoredVersion } from "./kek-file.js";
import {
  createKekFile,
  FORMAT_V1,
  FORMAT_V2,
  KEK_BYTES,
  KekFileError,
  newStoredKek,
  opensSeal,
  readKekFile,
  replaceKekFile,
  sealConfig,
  storeVersion,
} from "./kek-file.js";
import type {
  Environment,
  KekDescription,
  KeyContext,
  KeyManager,
  WrappedKey,
} from "./key-manager.js";
import {
  ENVIRONMENTS,
  KeyServiceUnavailableError,
  rewrapThroughHost,
  VaultSealedError,
} from "./key-manager.js";
import type {
  FileView,
  LiveKek,
  LiveVersion,
  RekeyStatus,
  RekeyVerifyResult,
} from "./local-kek-state.js";
import { openKeks, ownedCopy, resealVersion, viewOf } from "./local-kek-state.js";
import type { SealStatus } from "./seal.js";
import { ShareCollector, UnsealError } from "./seal.js";
import { legacyWrapAad, wrapAad } from "./wrap-aad.js";

export { KekFileError } from "./kek-file.js";
export type { RekeyStatus, RekeyVerifyResult } from "./local-kek-state.js";

export interface LocalKeyManagerOptions {
  /** Create the KEK file (unsealed) when it does not exist: the embedded default's first start. */
  readonly create: boolean;
  /** For tests of the unseal lockout. */
  readonly now?: () => number;
  /** How long to wait for, and when to break, the KEK file's lock. */
  readonly lock?: FileLockOptions;
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
 *
 * Every change to the file (rotation, rekey staging, confirmation or cancellation, the v1
 * upgrade) runs under the file's lock, starts from the file as it is on disk, builds the new
 * content apart, and is adopted in memory only once the new file is durable: a KEK version this
 * process hands out is always on disk (PCI DSS 3.6.1.2, 3.7.2).
 */
export class LocalKeyManager implements KeyManager {
  readonly kind = "local" as const;
  private keks = new Map<Environment, LiveKek>();
  private unsealKey: Buffer | undefined;
  private view: FileView | undefined;
  private collector: ShareCollector | undefined;
  private rekeyCollector: ShareCollector | undefined;

  private constructor(
    private readonly path: string,
    body: KekFileV2,
    private readonly now: () => number,
    private readonly lock: FileLockOptions,
  ) {
    this.adopt(body, undefined);
  }

  static async open(path: string, options: LocalKeyManagerOptions): Promise<LocalKeyManager> {
    if (options.create) await createIfMissing(path);
    const lock = options.lock ?? {};
    let { body, fromV1 } = await readKekFile(path);
    if (fromV1) {
      // A v1 file is rewritten as v2 once, under the lock, so that two processes opening it at
      // the same time keep one test KEK, the one on disk.
      body = await withFileLock(path, lock, async (held) => {
        const again = await readKekFile(path);
        if (again.fromV1) await replaceKekFile(path, again.body, () => held.assertHeld());
        return again.body;
      });
    }
    return new LocalKeyManager(path, body, options.now ?? Date.now, lock);
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
    const unsealKey = randomBytes(KEK_BYTES);
    try {
      const setId = newId("kset");
      // Split first: impossible options throw before a file exists whose shares nobody holds.
      const shares = ShareCollector.split(setId, unsealKey, options);
      const now = new Date().toISOString();
      const created = await createKekFile(path, {
        format: FORMAT_V2,
        seal: sealConfig(setId, options, unsealKey),
        keks: { live: newStoredKek(unsealKey, now), test: newStoredKek(unsealKey, now) },
      });
      if (!created) {
        throw new KekFileError(
          `a KEK file already exists at ${path}; change custodians with a custodians.rekey ceremony instead`,
        );
      }
      return { setId, shares };
    } finally {
      zeroize(unsealKey);
    }
  }

  sealStatus(): SealStatus {
    return (
      this.collector?.status(this.keks.size === 0) ?? {
        sealed: false,
        threshold: 0,
        shares: 0,
        progress: 0,
      }
    );
  }

  /** Adds one custodian's share; unseals when the threshold is reached. See ShareCollector. */
  submitShare(text: string): SealStatus {
    if (this.collector === undefined || this.keks.size > 0) return this.sealStatus();
    this.collector.submit(text, (candidate) => this.tryUnseal(candidate));
    return this.sealStatus();
  }

  /**
   * Custodian change, step 1 (run by a dual-control ceremony, PCI DSS 3.6.1.2, 3.7.6): a new
   * unseal key and share set are staged beside the current seal, which stays authoritative. The
   * new key is zeroed here: from now on it exists only as the returned shares, and the switch
   * happens only when a threshold of them comes back (`submitRekeyShare`). A rekey staged
   * earlier and not confirmed is replaced. On an unsealed file, the confirmation seals it.
   */
  async rekey(options: {
    shares: number;
    threshold: number;
    ceremonyId?: string;
  }): Promise<{ setId: string; shares: string[]; replacedSetId: string | undefined }> {
    this.requireUnsealed();
    const unsealKey = randomBytes(KEK_BYTES);
    try {
      const setId = newId("kset");
      // Split first: impossible options must not stage a seal whose shares nobody holds.
      const shares = ShareCollector.split(setId, unsealKey, options);
      const pending: PendingSeal = {
        ...sealConfig(setId, options, unsealKey),
        staged_at: new Date().toISOString(),
        ...(options.ceremonyId === undefined ? {} : { ceremony_id: options.ceremonyId }),
      };
      let replacedSetId: string | undefined;
      await this.mutate(
        (disk) => {
          replacedSetId = disk.pending_seal?.set_id;
          return { body: { ...disk, pending_seal: pending }, unsealKey: this.unsealKey };
        },
        () => undefined,
      );
      return { setId, shares, replacedSetId };
    } finally {
      zeroize(unsealKey);
    }
  }

  /** The staged rekey, read from the file (another process or node may have staged it). */
  async rekeyStatus(): Promise<RekeyStatus> {
    this.requireUnsealed();
    await this.reload();
    return this.knownRekey();
  }

  /**
   * Custodian change, step 2: one custodian's NEW share. When a threshold of them combines to the
   * staged key, `beforeCommit` runs (the caller audits), every KEK version is re-sealed under the
   * new key (the KEK values themselves do not change) and the new set replaces the old one: only
   * then do the old shares stop working. Refusals and the lockout are those of unsealing.
   */
  async submitRekeyShare(
    text: string,
    hooks: { beforeCommit?: (setId: string) => Promise<void> } = {},
  ): Promise<RekeyVerifyResult> {
    this.requireUnsealed();
    await this.reload();
    const pending = this.view?.pending;
    const collector = this.rekeyCollector;
    if (pending === undefined || collector === undefined) throw rekeyNotPending();
    const confirmed = await collector.submitAsync(text, async (candidate) => {
      if (!opensSeal(pending, candidate)) return false;
      await hooks.beforeCommit?.(pending.set_id);
      await this.commitPending(pending.set_id, candidate);
      return true;
    });
    if (!confirmed) return { ...this.knownRekey(), confirmed: false };
    return {
      pending: false,
      setId: pending.set_id,
      threshold: pending.threshold,
      shares: pending.shares,
      progress: 0,
      stagedAt: pending.staged_at,
      ceremonyId: pending.ceremony_id,
      confirmed: true,
    };
  }

  /** Drops the staged rekey; its shares never work. The current seal is untouched. */
  async cancelRekey(): Promise<{ setId: string }> {
    this.requireUnsealed();
    let setId = "";
    await this.mutate(
      (disk) => {
        if (disk.pending_seal === undefined) throw rekeyNotPending();
        setId = disk.pending_seal.set_id;
        const { pending_seal: _dropped, ...rest } = disk;
        return { body: rest, unsealKey: this.unsealKey };
      },
      () => undefined,
    );
    return { setId };
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
    return this.mutate(
      (disk) => {
        const stored = disk.keks[environment];
        const next = Math.max(0, ...stored.versions.map((v) => v.version)) + 1;
        const fresh = randomBytes(KEK_BYTES);
        let added: StoredVersion;
        try {
          added = storeVersion(
            stored.kek_id,
            next,
            fresh,
            this.unsealKey,
            new Date().toISOString(),
          );
        } finally {
          // PCI DSS 3.6.1: the new KEK leaves this buffer once it is sealed (or encoded).
          zeroize(fresh);
        }
        const kek: StoredKek = { kek_id: stored.kek_id, versions: [...stored.versions, added] };
        return {
          body: { ...disk, keks: { ...disk.keks, [environment]: kek } },
          unsealKey: this.unsealKey,
        };
      },
      () => this.describeOne(environment),
    );
  }

  describe(): readonly KekDescription[] {
    return ENVIRONMENTS.map((environment) => this.describeOne(environment));
  }

  async checkHealth(): Promise<void> {
    // The keys are in memory; nothing remote to reach. A sealed vault is not healthy.
    this.requireUnsealed();
  }

  async close(): Promise<void> {
    this.replaceKeks(new Map());
    if (this.unsealKey !== undefined) zeroize(this.unsealKey);
    this.unsealKey = undefined;
    this.collector?.reset();
    this.rekeyCollector?.reset();
  }

  private describeOne(environment: Environment): KekDescription {
    const view = this.fileView();
    const stored = view.keks[environment];
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
      location: `file:${this.path}${view.seal === null ? "" : " (sealed under Shamir shares)"}`,
    };
  }

  /** The staged rekey as this process last read it from the file (no file access). */
  knownRekey(): RekeyStatus {
    const pending = this.fileView().pending;
    return {
      pending: pending !== undefined,
      setId: pending?.set_id,
      threshold: pending?.threshold ?? 0,
      shares: pending?.shares ?? 0,
      progress: pending === undefined ? 0 : (this.rekeyCollector?.progress ?? 0),
      stagedAt: pending?.staged_at,
      ceremonyId: pending?.ceremony_id,
    };
  }

  /**
   * Called by the share collector with a combined candidate. The unseal key is kept only once
   * every KEK version opened: if one does not, the vault stays sealed and the copy is zeroed.
   */
  private tryUnseal(candidate: Buffer): boolean {
    const seal = this.fileView().seal;
    if (seal === null || !opensSeal(seal, candidate)) return false;
    const key = ownedCopy(candidate);
    let keks: Map<Environment, LiveKek>;
    try {
      keks = openKeks(this.fileView(), key, this.path);
    } catch (err) {
      zeroize(key);
      throw err;
    }
    this.replaceKeks(keks);
    this.unsealKey = key;
    return true;
  }

  /** Re-seals every KEK version on disk under the confirmed new key, and switches the seal. */
  private async commitPending(setId: string, candidate: Buffer): Promise<void> {
    const newKey = ownedCopy(candidate);
    let adopted = false;
    try {
      await this.mutate(
        (disk) => {
          const pending = disk.pending_seal;
          if (pending?.set_id !== setId || !opensSeal(pending, newKey)) throw rekeyNotPending();
          const keks = {} as Record<Environment, StoredKek>;
          for (const environment of ENVIRONMENTS) {
            const stored = disk.keks[environment];
            keks[environment] = {
              kek_id: stored.kek_id,
              versions: stored.versions.map((v) =>
                resealVersion(stored.kek_id, v, this.unsealKey, newKey, this.path),
              ),
            };
          }
          const seal: SealConfig = {
            set_id: pending.set_id,
            shares: pending.shares,
            threshold: pending.threshold,
            check: pending.check,
          };
          return { body: { format: FORMAT_V2, seal, keks }, unsealKey: newKey };
        },
        () => {
          adopted = true;
        },
      );
    } finally {
      if (!adopted) zeroize(newKey);
    }
  }

  /**
   * One change to the file, under its lock: read the file as it is now (a change another process
   * or node made is kept), build the new content apart from the in-memory state, write it
   * durably, and only then adopt it. `unsealKey` is the key the new content is sealed under.
   */
  private mutate<T>(
    change: (disk: KekFileV2) => { body: KekFileV2; unsealKey: Buffer | undefined },
    after: () => T,
  ): Promise<T> {
    return withFileLock(this.path, this.lock, async (lock) => {
      const { body: disk, fromV1 } = await readKekFile(this.path);
      if (fromV1)
        throw new KekFileError(`KEK file ${this.path} was replaced by a ${FORMAT_V1} file`);
      this.assertSameSeal(disk);
      const next = change(disk);
      await replaceKekFile(this.path, next.body, () => lock.assertHeld());
      this.adopt(next.body, next.unsealKey);
      return after();
    });
  }

  private async reload(): Promise<void> {
    await serializeOnPath(this.path, async () => {
      const { body, fromV1 } = await readKekFile(this.path);
      if (fromV1)
        throw new KekFileError(`KEK file ${this.path} was replaced by a ${FORMAT_V1} file`);
      this.assertSameSeal(body);
      this.adopt(body, this.unsealKey);
    });
  }

  /**
   * A node that holds the KEKs can only read or change the file while it is sealed under the set
   * it knows. A rekey confirmed on another node re-sealed it: this node keeps serving with the
   * KEKs it has, but must be restarted and unsealed with the new shares to change the file.
   */
  private assertSameSeal(body: KekFileV2): void {
    if (this.keks.size === 0) return;
    const same =
      body.seal === null
        ? this.unsealKey === undefined
        : this.unsealKey !== undefined && opensSeal(body.seal, this.unsealKey);
    if (!same) {
      throw new KeyServiceUnavailableError(
        `KEK file ${this.path} is sealed under a share set this process does not hold; restart it and unseal it with the current shares`,
      );
    }
  }

  /**
   * Makes `body` the manager's state. The KEKs are opened into a new map first; only if every
   * version opens is anything replaced (old buffers zeroed). Ownership of `unsealKey` passes to
   * the manager. Share collectors follow their set: a new set starts from no shares.
   */
  private adopt(body: KekFileV2, unsealKey: Buffer | undefined): void {
    const opened =
      body.seal === null || unsealKey !== undefined
        ? openKeks(body, unsealKey, this.path)
        : undefined;
    const previous = this.view;
    this.view = viewOf(body);
    if (opened !== undefined) this.replaceKeks(opened);
    if (unsealKey !== this.unsealKey) {
      if (this.unsealKey !== undefined) zeroize(this.unsealKey);
      this.unsealKey = unsealKey;
    }
    if (previous === undefined || body.seal?.set_id !== previous.seal?.set_id) {
      this.collector?.reset();
      this.collector =
        body.seal === null ? undefined : new ShareCollector(setOf(body.seal), this.now);
    }
    const pending = body.pending_seal;
    if (previous === undefined || pending?.set_id !== previous.pending?.set_id) {
      this.rekeyCollector?.reset();
      this.rekeyCollector =
        pending === undefined ? undefined : new ShareCollector(setOf(pending), this.now);
    }
  }

  private replaceKeks(next: Map<Environment, LiveKek>): void {
    const old = this.keks;
    this.keks = next;
    for (const kek of old.values()) for (const v of kek.versions) zeroize(v.key);
  }

  private fileView(): FileView {
    return this.view as FileView;
  }

  private requireUnsealed(): void {
    if (this.keks.size === 0) throw new VaultSealedError();
  }

  private kekFor(environment: Environment): LiveKek {
    const kek = this.keks.get(environment);
    if (kek === undefined) throw new VaultSealedError();
    return kek;
  }
}

function rekeyNotPending(): UnsealError {
  return new UnsealError(
    "REKEY_NOT_PENDING",
    "No custodian rekey is waiting for confirmation (none was staged, or it was confirmed, cancelled or replaced).",
  );
}

function setOf(seal: SealConfig): { setId: string; threshold: number; shares: number } {
  return { setId: seal.set_id, threshold: seal.threshold, shares: seal.shares };
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

/**
 * Creates an unsealed KEK file if none exists: 256 random bits per environment, written in full
 * and linked into place, so two starting processes cannot both create one and neither reads half.
 */
async function createIfMissing(path: string): Promise<void> {
  // No KEK is generated for a file that is already there.
  if (
    await stat(path).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return false;
        throw err;
      },
    )
  ) {
    return;
  }
  const now = new Date().toISOString();
  await createKekFile(path, {
    format: FORMAT_V2,
    seal: null,
    keks: { live: newStoredKek(undefined, now), test: newStoredKek(undefined, now) },
  });
}
