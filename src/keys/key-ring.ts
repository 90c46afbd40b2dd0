import type { AuditEventRow } from "../audit/audit-event.js";
import { DecryptionError } from "../crypto/decryption-error.js";
import type { Purpose } from "../crypto/envelope.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type { Clock } from "../services/clock.js";
import type { DataKeyRow } from "../store/data-keys-repo.js";
import { findDataKey, findLatestDataKey, insertDataKeyAudited } from "../store/data-keys-repo.js";
import type { SqlClient } from "../store/database.js";
import type { KeyManager } from "./key-manager.js";

/** Owner of the vault's own keys, as opposed to a tenant id. */
export const SYSTEM_KEY_OWNER = "system";

export interface DataKey {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  /** The raw key. Use it synchronously right after getting it: eviction zeroes it. */
  readonly material: Buffer;
}

interface CacheEntry {
  readonly key: DataKey;
  expiresAt: number;
}

export interface KeyRingOptions {
  /** How long an unwrapped DEK stays in memory after its last use. */
  readonly cacheTtlMs: number;
  /**
   * Builds the `key.create` audit event of a new key, which is inserted with it. It receives the
   * new key's material because the audit key's own creation event is MACed with that key.
   */
  readonly auditCreation: (key: NewKey) => Promise<AuditEventRow>;
}

export interface NewKey {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  readonly material: Buffer;
}

/**
 * Holds the DEKs in use: finds or creates the current key for (owner, purpose), unwraps keys by
 * id for decryption, and keeps unwrapped keys in memory for a bounded time so the KEK's backend
 * stays off the hot path; evicted keys are zeroed. Concurrent requests for the same key share
 * one load.
 */
export class KeyRing {
  private readonly byId = new Map<string, CacheEntry>();
  private readonly activeIds = new Map<string, string>();
  private readonly loading = new Map<string, Promise<DataKey>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly db: SqlClient,
    private readonly keyManager: KeyManager,
    private readonly clock: Clock,
    private readonly options: KeyRingOptions,
  ) {
    this.sweeper = setInterval(() => this.evictExpired(), Math.min(options.cacheTtlMs, 60_000));
    this.sweeper.unref();
  }

  /** The key new data of this owner and purpose is encrypted under; created on first use. */
  async activeKey(owner: string, purpose: Purpose): Promise<DataKey> {
    const slot = `${owner}\u0000${purpose}`;
    const id = this.activeIds.get(slot);
    const cached = id === undefined ? undefined : this.fromCache(id);
    if (cached !== undefined) return cached;
    return this.once(`active:${slot}`, async () => {
      const row =
        (await findLatestDataKey(this.db, owner, purpose)) ??
        (await this.createKey(owner, purpose));
      const key = await this.unwrap(row);
      this.activeIds.set(slot, key.id);
      return key;
    });
  }

  /** The key with this id, which must belong to `owner` and serve `purpose`. */
  async keyById(id: string, owner: string, purpose: Purpose): Promise<DataKey> {
    const key = this.fromCache(id) ?? (await this.once(`id:${id}`, () => this.loadById(id)));
    // A DEK of another tenant or purpose is never used, even if a row points at it.
    if (key.owner !== owner || key.purpose !== purpose) throw new DecryptionError();
    return key;
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const entry of this.byId.values()) zeroize(entry.key.material);
    this.byId.clear();
    this.activeIds.clear();
  }

  private async loadById(id: string): Promise<DataKey> {
    const row = await findDataKey(this.db, id);
    if (row === undefined) throw new DecryptionError();
    return this.unwrap(row);
  }

  private async createKey(owner: string, purpose: Purpose): Promise<DataKeyRow> {
    const id = newId("dek");
    const material = randomBytes(32);
    try {
      const wrapped = await this.keyManager.wrapKey(material, { dekId: id, owner, purpose });
      const row: DataKeyRow = {
        id,
        owner,
        purpose,
        version: 1,
        wrapped: wrapped.ciphertext,
        kek_id: wrapped.kekId,
        kek_version: wrapped.kekVersion,
        created_at: this.clock.now(),
      };
      // The creation and its audit event are one statement: no key exists unaudited.
      const event = await this.options.auditCreation({ id, owner, purpose, material });
      if (await insertDataKeyAudited(this.db, row, event)) return row;
    } finally {
      zeroize(material);
    }
    // Another node created it first: use theirs.
    const theirs = await findLatestDataKey(this.db, owner, purpose);
    if (theirs === undefined) throw new Error("data key vanished after a concurrent create");
    return theirs;
  }

  private async unwrap(row: DataKeyRow): Promise<DataKey> {
    const cached = this.fromCache(row.id);
    if (cached !== undefined) return cached;
    const material = await this.keyManager.unwrapKey(
      { kekId: row.kek_id, kekVersion: row.kek_version, ciphertext: row.wrapped },
      { dekId: row.id, owner: row.owner, purpose: row.purpose },
    );
    const key: DataKey = { id: row.id, owner: row.owner, purpose: row.purpose, material };
    this.byId.set(row.id, { key, expiresAt: Date.now() + this.options.cacheTtlMs });
    return key;
  }

  private fromCache(id: string): DataKey | undefined {
    const entry = this.byId.get(id);
    if (entry === undefined) return undefined;
    entry.expiresAt = Date.now() + this.options.cacheTtlMs;
    return entry.key;
  }

  private once(slot: string, load: () => Promise<DataKey>): Promise<DataKey> {
    let pending = this.loading.get(slot);
    if (pending === undefined) {
      pending = load().finally(() => this.loading.delete(slot));
      this.loading.set(slot, pending);
    }
    return pending;
  }

  private evictExpired(): void {
    const now = Date.now();
    for (const [id, entry] of this.byId) {
      // The vault's own keys (audit chain, API-key MACs) are used on every request and inside
      // transactions, where loading them could not wait for the store: they stay resident until
      // close() zeroes them.
      if (entry.expiresAt > now || entry.key.owner === SYSTEM_KEY_OWNER) continue;
      this.byId.delete(id);
      for (const [slot, activeId] of this.activeIds)
        if (activeId === id) this.activeIds.delete(slot);
      zeroize(entry.key.material);
    }
  }
}
