import { zeroize } from "../crypto/secret.js";
import type { KekFileV2, PendingSeal, SealConfig, StoredVersion } from "./kek-file.js";
import { openVersion, storeVersion } from "./kek-file.js";
import type { Environment } from "./key-manager.js";
import { ENVIRONMENTS } from "./key-manager.js";

/**
 * What the `local` KeyManager holds of its KEK file (PCI DSS 3.6.1.2, 3.6.1.3): the KEKs opened
 * into Buffers, which are zeroed when replaced or closed, and a view of the file without any KEK
 * in the clear. Plus the rekey status it reports.
 */

export interface LiveVersion {
  readonly version: number;
  readonly createdAt: Date;
  readonly key: Buffer;
  readonly legacyAad: boolean;
}

export interface LiveKek {
  readonly id: string;
  readonly versions: readonly LiveVersion[];
}

/** A version as the manager remembers it: never the KEK in the clear (only Buffers hold those). */
export type VersionView = Omit<StoredVersion, "key">;

/** What the manager keeps of the file besides the opened KEKs. */
export interface FileView {
  readonly seal: SealConfig | null;
  readonly pending: PendingSeal | undefined;
  readonly keks: Record<Environment, { kek_id: string; versions: VersionView[] }>;
}

/** A custodian rekey waiting for a threshold of its new shares (docs/key-management.md). */
export interface RekeyStatus {
  readonly pending: boolean;
  readonly setId: string | undefined;
  readonly threshold: number;
  readonly shares: number;
  /** Distinct new shares submitted so far toward the confirmation. */
  readonly progress: number;
  readonly stagedAt: string | undefined;
  readonly ceremonyId: string | undefined;
}

export interface RekeyVerifyResult extends RekeyStatus {
  /** True when this share completed the confirmation: the new set now seals the KEK file. */
  readonly confirmed: boolean;
}

/** A copy in memory of its own (not Node's shared pool), so zeroing it wipes the only copy. */
export function ownedCopy(bytes: Buffer): Buffer {
  const copy = Buffer.alloc(bytes.length);
  bytes.copy(copy);
  return copy;
}

/** The file without any KEK in the clear (PCI DSS 3.6.1.2): what stays in memory besides Buffers. */
export function viewOf(body: KekFileV2): FileView {
  const keks = {} as FileView["keks"];
  for (const environment of ENVIRONMENTS) {
    const stored = body.keks[environment];
    keks[environment] = {
      kek_id: stored.kek_id,
      versions: stored.versions
        .map(({ key: _clear, ...rest }) => rest)
        .sort((a, b) => a.version - b.version),
    };
  }
  return { seal: body.seal, pending: body.pending_seal, keks };
}

export function openKeks(
  source: { keks: Record<Environment, { kek_id: string; versions: readonly StoredVersion[] }> },
  unsealKey: Buffer | undefined,
  path: string,
): Map<Environment, LiveKek> {
  const opened = new Map<Environment, LiveKek>();
  try {
    for (const environment of ENVIRONMENTS) {
      const stored = source.keks[environment];
      const versions: LiveVersion[] = [];
      opened.set(environment, { id: stored.kek_id, versions });
      for (const v of stored.versions) {
        versions.push({
          version: v.version,
          createdAt: new Date(v.created_at),
          key: openVersion(stored.kek_id, v, unsealKey, path),
          legacyAad: v.legacy_aad === true,
        });
      }
      versions.sort((a, b) => a.version - b.version);
    }
    return opened;
  } catch (err) {
    for (const kek of opened.values()) for (const v of kek.versions) zeroize(v.key);
    throw err;
  }
}

/** The same KEK version sealed under another key: the KEK value itself does not change. */
export function resealVersion(
  kekId: string,
  stored: StoredVersion,
  currentKey: Buffer | undefined,
  newKey: Buffer,
  path: string,
): StoredVersion {
  const key = openVersion(kekId, stored, currentKey, path);
  try {
    return storeVersion(
      kekId,
      stored.version,
      key,
      newKey,
      stored.created_at,
      stored.legacy_aad === true,
    );
  } finally {
    zeroize(key);
  }
}
