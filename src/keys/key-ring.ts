import type { AuditEventRow } from "../audit/audit-event.js";
import { DecryptionError } from "../crypto/decryption-error.js";
import type { Purpose } from "../crypto/envelope.js";
import { newId, randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type { Clock } from "../services/clock.js";
import type { DataKeyRow } from "../store/data-keys-repo.js";
import {
  findDataKey,
  findLatestDataKey,
  insertDataKeyAudited,
  reserveDataKeyUses,
  retireDataKey,
} from "../store/data-keys-repo.js";
import type { SqlClient } from "../store/database.js";
import type { Environment, KeyManager } from "./key-manager.js";

/** Owner of the vault's own keys, as opposed to a tenant id. */
export const SYSTEM_KEY_OWNER = "system";

export interface DataKey {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  readonly environment: Environment;
  readonly epoch: string;
  readonly version: number;
  /**
   * The raw key. Eviction for age leaves a handed-out key intact for at least
   * `releaseGraceMs` after it was last handed out, then zeroes it; `forget` (destruction) and
   * `close` zero it at once, and `sealEnvelope` refuses an all-zero key.
   */
  readonly material: Buffer;
}

/** Which key: owner and purpose, plus the environment and (for `pan` keys) the expiry epoch. */
export interface KeySlot {
  readonly owner: string;
  readonly purpose: Purpose;
  readonly environment?: Environment;
  readonly epoch?: string;
}

/**
 * Cryptoperiods (PCI DSS 3.6.1.1, 3.7.4; NIST SP 800-57 Part 1 §5.3): how long after creation a
 * key may still encrypt, and how many encryptions it may perform. Past either, it only decrypts
 * and the next version takes over.
 */
export interface KeyPolicy {
  readonly cryptoperiodMs: Readonly<Partial<Record<Purpose, number>>>;
  /** For AES-GCM keys with random nonces; kept far below SP 800-38D's 2^32 (MAX_SEALS_PER_KEY). */
  readonly maxUses: Readonly<Partial<Record<Purpose, number>>>;
  /** Uses a node reserves at a time, so counting stays off the hot path. */
  readonly reserveBlock: number;
}

const DAY_MS = 86_400_000;

export const DEFAULT_KEY_POLICY: KeyPolicy = {
  cryptoperiodMs: {
    pan: 365 * DAY_MS,
    sad: 90 * DAY_MS,
    audit: 365 * DAY_MS,
    webhook: 365 * DAY_MS,
  },
  maxUses: { pan: 2 ** 28, sad: 2 ** 28 },
  reserveBlock: 1024,
};

export interface NewKey {
  readonly id: string;
  readonly owner: string;
  readonly purpose: Purpose;
  readonly environment: Environment;
  readonly epoch: string;
  readonly version: number;
  readonly algorithm: string;
  readonly kekId: string;
  readonly kekVersion: number;
  readonly material: Buffer;
}

export interface KeyRingOptions {
  /** How long an unwrapped DEK stays in memory after its last use. */
  readonly cacheTtlMs: number;
  /**
   * How long an evicted key's material is kept before it is zeroed, so a caller that got the key
   * just before eviction (and awaits between getting and using it) never sees it change under it.
   * Default RELEASE_GRACE_MS.
   */
  readonly releaseGraceMs?: number;
  readonly policy?: KeyPolicy;
  /**
   * Builds the `key.create` audit event of a new key, which is inserted with it. It receives the
   * new key's material because the audit key's own creation event is MACed with that key.
   */
  readonly auditCreation: (key: NewKey) => Promise<AuditEventRow>;
}

/** Default for `KeyRingOptions.releaseGraceMs`: far longer than any request or job batch holds a key. */
export const RELEASE_GRACE_MS = 60_000;

/** The key's material was destroyed (crypto-shredding or a dual-control destruction). */
export class KeyDestroyedError extends Error {
  override readonly name = "KeyDestroyedError";
  constructor(readonly keyId: string) {
    super("the data key has been destroyed");
  }
}

interface CacheEntry {
  readonly key: DataKey;
  expiresAt: number;
  /** When the store last confirmed the key was not destroyed. */
  checkedAt: number;
}

/**
 * How long a node trusts its idea of a slot's current version before reading it again, so a
 * rotation made on another node (or by the CLI) takes over everywhere within this time.
 */
export const ACTIVE_RECHECK_MS = 30_000;

/** Keys a reservation may find spent (by other nodes) in a row before it gives up. */
const RESERVE_ATTEMPTS = 16;

interface ActiveEntry {
  readonly id: string;
  loadedAt: number;
  encryptUntil: number;
  readonly metered: boolean;
  /** Uses reserved in the store and not yet spent by this node. */
  budget: number;
}

export function algorithmOf(purpose: Purpose): string {
  return purpose === "pan" ||
    purpose === "sad" ||
    purpose === "jose" ||
    purpose === "totp" ||
    purpose === "webhook"
    ? "AES-256-GCM"
    : "HMAC-SHA256";
}

function slotKey(slot: Required<KeySlot>): string {
  return [slot.owner, slot.environment, slot.purpose, slot.epoch].join("\u0000");
}

function fullSlot(slot: KeySlot): Required<KeySlot> {
  return {
    owner: slot.owner,
    purpose: slot.purpose,
    environment: slot.environment ?? "live",
    epoch: slot.epoch ?? "",
  };
}

/**
 * Holds the DEKs in use: finds or creates the current version for a slot (owner, environment,
 * purpose, epoch), enforces its cryptoperiod by time and by use count, unwraps keys by id for
 * decryption, and keeps unwrapped keys in memory for a bounded time so the KEK's backend stays
 * off the hot path; evicted keys are zeroed. Concurrent requests for the same key share one load.
 */
export class KeyRing {
  readonly policy: KeyPolicy;
  private readonly byId = new Map<string, CacheEntry>();
  private readonly active = new Map<string, ActiveEntry>();
  private readonly loading = new Map<string, Promise<DataKey>>();
  /** Evicted keys' material, zeroed once its time comes (see `releaseGraceMs`). */
  private readonly releasing: { material: Buffer; zeroAt: number }[] = [];
  /** The tail of each slot's queue of reservations on this node. */
  private readonly reserving = new Map<string, Promise<void>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly db: SqlClient,
    private readonly keyManager: KeyManager,
    private readonly clock: Clock,
    private readonly options: KeyRingOptions,
  ) {
    this.policy = options.policy ?? DEFAULT_KEY_POLICY;
    this.sweeper = setInterval(
      () => this.evictExpired(),
      Math.min(options.cacheTtlMs, options.releaseGraceMs ?? RELEASE_GRACE_MS, 60_000),
    );
    this.sweeper.unref();
  }

  /**
   * The key new data of this slot is encrypted under, with `uses` encryptions reserved on it;
   * created on first use, and replaced by a new version when its cryptoperiod is over.
   */
  async activeKey(slotOrOwner: KeySlot | string, purposeArg?: Purpose, uses = 0): Promise<DataKey> {
    const slot = fullSlot(
      typeof slotOrOwner === "string"
        ? { owner: slotOrOwner, purpose: purposeArg as Purpose }
        : slotOrOwner,
    );
    const name = slotKey(slot);
    const entry = this.active.get(name);
    let key =
      entry !== undefined && this.withinPeriod(entry, slot) ? this.fromCache(entry.id) : undefined;
    key ??= await this.once(`active:${name}`, () => this.loadActive(slot, name));
    if (uses === 0) return key;
    const current = this.active.get(name);
    if (current !== undefined && current.id === key.id) {
      if (!current.metered) return key;
      // Spent synchronously from the budget reserved on this very key: no await in between.
      if (current.budget >= uses) {
        current.budget -= uses;
        return key;
      }
    }
    return this.spend(slot, name, uses);
  }

  /** The key with this id, which must belong to the slot's owner and purpose. */
  async keyById(id: string, owner: string, purpose: Purpose): Promise<DataKey> {
    await this.recheckDestroyed(id);
    const key = this.fromCache(id) ?? (await this.once(`id:${id}`, () => this.loadById(id)));
    // A DEK of another tenant or purpose is never used, even if a row points at it.
    if (key.owner !== owner || key.purpose !== purpose) throw new DecryptionError();
    return key;
  }

  /**
   * Retires the slot's current version and creates the next one (DEK rotation, PCI DSS 3.6.4,
   * 3.7.4). Returns the new key.
   */
  async rotate(slot: KeySlot): Promise<DataKey> {
    const full = fullSlot(slot);
    const current = await findLatestDataKey(this.db, full);
    if (current !== undefined) await retireDataKey(this.db, current.id, this.clock.now());
    this.active.delete(slotKey(full));
    return this.activeKey(full);
  }

  /**
   * Drops a key from memory and zeroes it at once, after its destruction: a request still holding
   * it fails (an all-zero key neither seals nor opens) rather than using a destroyed key.
   */
  forget(id: string): void {
    const entry = this.drop(id);
    if (entry !== undefined) zeroize(entry.key.material);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const entry of this.byId.values()) zeroize(entry.key.material);
    for (const released of this.releasing.splice(0)) zeroize(released.material);
    this.byId.clear();
    this.active.clear();
  }

  private drop(id: string): CacheEntry | undefined {
    const entry = this.byId.get(id);
    this.byId.delete(id);
    for (const [name, active] of this.active) if (active.id === id) this.active.delete(name);
    return entry;
  }

  private withinPeriod(entry: ActiveEntry, slot: Required<KeySlot>): boolean {
    // The vault's own keys are rotated by the maintenance job, never inline: they are used
    // inside transactions, where loading a key could not wait for the store.
    if (slot.owner === SYSTEM_KEY_OWNER) return true;
    return (
      this.clock.now().getTime() < entry.encryptUntil &&
      Date.now() - entry.loadedAt < ACTIVE_RECHECK_MS
    );
  }

  private async loadActive(slot: Required<KeySlot>, name: string): Promise<DataKey> {
    const now = this.clock.now();
    let row = await findLatestDataKey(this.db, slot);
    if (row !== undefined && slot.owner !== SYSTEM_KEY_OWNER && !this.canEncrypt(row, now)) {
      // Past its cryptoperiod: it only decrypts from now on, and the next version takes over.
      await retireDataKey(this.db, row.id, now);
      row = await this.createKey(slot, row.version + 1);
    }
    row ??= await this.createKey(slot, 1);
    const key = await this.unwrap(row);
    const encryptUntil = row.encrypt_until?.getTime() ?? Number.POSITIVE_INFINITY;
    // A recheck that finds the same key keeps its entry, and with it the uses this node already
    // reserved (dropping them every ACTIVE_RECHECK_MS would burn a block of the key's use count
    // each time); the entry is updated in place, so a reservation in flight lands in it.
    const previous = this.active.get(name);
    if (previous?.id === row.id) {
      previous.loadedAt = Date.now();
      previous.encryptUntil = encryptUntil;
      return key;
    }
    this.active.set(name, {
      id: row.id,
      loadedAt: Date.now(),
      encryptUntil,
      metered: row.max_uses !== null,
      budget: 0,
    });
    return key;
  }

  private canEncrypt(row: DataKeyRow, now: Date): boolean {
    if (row.retired_at !== null || row.destroyed_at !== null) return false;
    if (row.encrypt_until !== null && row.encrypt_until.getTime() <= now.getTime()) return false;
    return row.max_uses === null || row.uses_reserved < row.max_uses;
  }

  /**
   * Spends `uses` on the slot's current key, reserving a block in the store when this node's
   * budget is short and moving to a new version when the key is spent. Reservations of a slot
   * run one at a time on this node, and the uses are taken from the very key they were reserved
   * on, so no key is handed out for more uses than the store granted (its max_uses).
   */
  private spend(slot: Required<KeySlot>, name: string, uses: number): Promise<DataKey> {
    const maxUses = this.policy.maxUses[slot.purpose];
    if (maxUses !== undefined && uses > maxUses) {
      return Promise.reject(
        new RangeError(`cannot reserve ${uses} uses on a key allowed ${maxUses}`),
      );
    }
    const previous = this.reserving.get(name) ?? Promise.resolve();
    const run = previous.then(() => this.reserve(slot, name, uses));
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.reserving.set(name, tail);
    void tail.then(() => {
      if (this.reserving.get(name) === tail) this.reserving.delete(name);
    });
    return run;
  }

  private async reserve(slot: Required<KeySlot>, name: string, uses: number): Promise<DataKey> {
    const maxUses = this.policy.maxUses[slot.purpose];
    for (let attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
      let entry = this.active.get(name);
      if (entry === undefined || !this.withinPeriod(entry, slot)) {
        await this.once(`active:${name}`, () => this.loadActive(slot, name));
        entry = this.active.get(name) as ActiveEntry;
      }
      if (!entry.metered) return this.keyOf(entry, slot);
      if (entry.budget < uses) {
        const block = Math.max(uses, Math.min(this.policy.reserveBlock, maxUses ?? uses));
        const granted = await reserveDataKeyUses(this.db, entry.id, block, uses, this.clock.now());
        if (granted === 0) {
          // Spent (here or on another node), or past its time: the next version takes over.
          await retireDataKey(this.db, entry.id, this.clock.now());
          if (this.active.get(name) === entry) this.active.delete(name);
          continue;
        }
        entry.budget += granted;
      }
      entry.budget -= uses;
      return this.keyOf(entry, slot);
    }
    throw new Error("could not reserve key uses");
  }

  private async keyOf(entry: ActiveEntry, slot: Required<KeySlot>): Promise<DataKey> {
    return this.fromCache(entry.id) ?? (await this.keyById(entry.id, slot.owner, slot.purpose));
  }

  private async loadById(id: string): Promise<DataKey> {
    const row = await findDataKey(this.db, id);
    if (row === undefined) throw new DecryptionError();
    return this.unwrap(row);
  }

  private async createKey(slot: Required<KeySlot>, version: number): Promise<DataKeyRow> {
    const id = newId("dek");
    const material = randomBytes(32);
    const now = this.clock.now();
    const period = this.policy.cryptoperiodMs[slot.purpose];
    const maxUses = this.policy.maxUses[slot.purpose];
    const algorithm = algorithmOf(slot.purpose);
    try {
      const wrapped = await this.keyManager.wrapKey(material, {
        dekId: id,
        owner: slot.owner,
        purpose: slot.purpose,
        environment: slot.environment,
      });
      const row: DataKeyRow = {
        id,
        owner: slot.owner,
        purpose: slot.purpose,
        environment: slot.environment,
        epoch: slot.epoch,
        version,
        algorithm,
        wrapped: wrapped.ciphertext,
        kek_id: wrapped.kekId,
        kek_version: wrapped.kekVersion,
        created_at: now,
        encrypt_until: period === undefined ? null : new Date(now.getTime() + period),
        max_uses: maxUses ?? null,
        uses_reserved: 0,
        retired_at: null,
        destroyed_at: null,
      };
      // The creation and its audit event are one statement: no key exists unaudited.
      const event = await this.options.auditCreation({
        ...slot,
        id,
        version,
        algorithm,
        kekId: wrapped.kekId,
        kekVersion: wrapped.kekVersion,
        material,
      });
      if (await insertDataKeyAudited(this.db, row, event)) return row;
    } finally {
      zeroize(material);
    }
    // Another node created that version first: use theirs.
    const theirs = await findLatestDataKey(this.db, slot);
    if (theirs === undefined) throw new Error("data key vanished after a concurrent create");
    return theirs;
  }

  private async unwrap(row: DataKeyRow): Promise<DataKey> {
    const cached = this.fromCache(row.id);
    if (cached !== undefined) return cached;
    if (row.wrapped === null) throw new KeyDestroyedError(row.id);
    const material = await this.keyManager.unwrapKey(
      { kekId: row.kek_id, kekVersion: row.kek_version, ciphertext: row.wrapped },
      { dekId: row.id, owner: row.owner, purpose: row.purpose, environment: row.environment },
    );
    const key: DataKey = {
      id: row.id,
      owner: row.owner,
      purpose: row.purpose,
      environment: row.environment,
      epoch: row.epoch,
      version: row.version,
      material,
    };
    this.byId.set(row.id, {
      key,
      expiresAt: Date.now() + this.options.cacheTtlMs,
      checkedAt: Date.now(),
    });
    return key;
  }

  /**
   * A key destroyed by another node or the CLI stops decrypting here too: a cached tenant key is
   * re-checked against the store at most every ACTIVE_RECHECK_MS (one primary-key read).
   */
  private async recheckDestroyed(id: string): Promise<void> {
    const entry = this.byId.get(id);
    if (entry === undefined || entry.key.owner === SYSTEM_KEY_OWNER) return;
    const now = Date.now();
    if (now - entry.checkedAt < ACTIVE_RECHECK_MS) return;
    entry.checkedAt = now;
    const row = await findDataKey(this.db, id);
    if (row === undefined || row.destroyed_at !== null) {
      this.forget(id);
      throw new KeyDestroyedError(id);
    }
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
    const grace = this.options.releaseGraceMs ?? RELEASE_GRACE_MS;
    for (const [id, entry] of this.byId) {
      // The vault's own keys (audit chain, API-key MACs) are used on every request and inside
      // transactions, where loading them could not wait for the store: they stay resident until
      // close() zeroes them.
      if (entry.expiresAt > now || entry.key.owner === SYSTEM_KEY_OWNER) continue;
      this.drop(id);
      this.releasing.push({ material: entry.key.material, zeroAt: now + grace });
    }
    // Pushed in time order, so the ones due are at the front.
    for (let next = this.releasing[0]; next !== undefined && next.zeroAt <= now; ) {
      this.releasing.shift();
      zeroize(next.material);
      next = this.releasing[0];
    }
  }
}
