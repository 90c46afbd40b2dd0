import { zeroize } from "../crypto/secret.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import type { EphemeralStore } from "./ephemeral-store.js";
import {
  checkKey,
  checkPrefix,
  checkTtl,
  DEFAULT_EPHEMERAL_PREFIX,
  EphemeralStoreUnavailableError,
} from "./ephemeral-store.js";

export interface MemoryEphemeralStoreOptions {
  readonly prefix?: string;
  /** Expiry is read from this clock, so tests move time instead of sleeping. */
  readonly clock?: Clock;
  /** How often expired entries are swept (and zeroed) even if nobody reads them. */
  readonly sweepIntervalMs?: number;
  /**
   * At most this many live entries. A full store refuses new ones (fails closed) rather than
   * evicting: an evicted `jti` would let a token be replayed.
   */
  readonly maxEntries?: number;
}

interface Entry {
  /** The store's own copy; zeroed when the entry is dropped. */
  readonly value: Uint8Array;
  readonly expiresAt: number;
}

const DEFAULT_SWEEP_MS = 10_000;
const DEFAULT_MAX_ENTRIES = 1_000_000;

/**
 * The embedded default: entries in a Map of this process. Expiry is enforced on every read and by
 * an unref'd sweeper; every value the store drops (taken, deleted, replaced, expired, closed) is
 * zeroed first, so the bytes do not linger in the heap until garbage collection. Single-threaded,
 * so every operation is atomic.
 */
function counterBytes(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

export class MemoryEphemeralStore implements EphemeralStore {
  readonly prefix: string;
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(options: MemoryEphemeralStoreOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_EPHEMERAL_PREFIX;
    checkPrefix(this.prefix);
    this.clock = options.clock ?? systemClock;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? DEFAULT_SWEEP_MS);
    this.sweeper.unref();
  }

  async putIfAbsent(key: string, value: Uint8Array, ttlMs: number): Promise<boolean> {
    const name = this.nameOf(key, ttlMs);
    if (this.live(name) !== undefined) return false;
    this.store(name, value, ttlMs);
    return true;
  }

  async put(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    const name = this.nameOf(key, ttlMs);
    this.drop(name);
    this.store(name, value, ttlMs);
  }

  async take(key: string): Promise<Uint8Array | undefined> {
    const name = this.nameOf(key);
    const entry = this.live(name);
    if (entry === undefined) return undefined;
    const copy = Uint8Array.from(entry.value);
    this.drop(name);
    return copy;
  }

  async count(key: string, ttlMs: number): Promise<number> {
    const name = this.nameOf(key, ttlMs);
    const entry = this.live(name);
    if (entry === undefined) {
      this.store(name, counterBytes(1), ttlMs);
      return 1;
    }
    const next = new DataView(entry.value.buffer, entry.value.byteOffset).getUint32(0) + 1;
    new DataView(entry.value.buffer, entry.value.byteOffset).setUint32(0, next);
    return next;
  }

  async delete(key: string): Promise<void> {
    this.drop(this.nameOf(key));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const name of [...this.entries.keys()]) this.drop(name);
  }

  /** Drops (and zeroes) every expired entry. Runs on the sweeper's timer. */
  sweep(): void {
    const now = this.clock.now().getTime();
    for (const [name, entry] of this.entries) if (entry.expiresAt <= now) this.drop(name);
  }

  /**
   * The live buffers the store holds, by full key (prefix included). For tests that prove what
   * is held (and that dropped values are zeroed); never for production use, and never to modify.
   */
  inspectRaw(): ReadonlyMap<string, Uint8Array> {
    return new Map([...this.entries].map(([name, entry]) => [name, entry.value]));
  }

  private nameOf(key: string, ttlMs?: number): string {
    if (this.closed) throw new EphemeralStoreUnavailableError("closed");
    checkKey(key);
    if (ttlMs !== undefined) checkTtl(ttlMs);
    return this.prefix + key;
  }

  /** The entry if it has not expired; an expired one is dropped on the way. */
  private live(name: string): Entry | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.clock.now().getTime()) return entry;
    this.drop(name);
    return undefined;
  }

  private store(name: string, value: Uint8Array, ttlMs: number): void {
    if (this.entries.size >= this.maxEntries) {
      this.sweep();
      if (this.entries.size >= this.maxEntries) throw new EphemeralStoreUnavailableError("full");
    }
    // A copy the store owns, so it can zero it and the caller can zero theirs.
    const expiresAt = this.clock.now().getTime() + ttlMs;
    this.entries.set(name, { value: Uint8Array.from(value), expiresAt });
  }

  private drop(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    zeroize(entry.value);
    this.entries.delete(name);
  }
}
