/**
 * The EphemeralStore port: short-lived bytes under a key, with a TTL, that several vault nodes can
 * share. It holds what must never reach SQL or disk and must outlive a single request: sensitive
 * authentication data until authorization (PCI DSS v4.0.1 3.3.1.2, 3.3.2) and the `jti` of
 * every token already accepted (RFC 7519 §4.1.7, RFC 8725 §3.10).
 *
 * Adapters: in memory (the embedded default, one node) and Redis (when REDIS_URL is set, so every
 * node sees the same entries). Both lose everything on restart, which is the intended failure
 * direction: a lost CVC means the payment asks for it again, never that it is kept too long.
 */
export interface EphemeralStore {
  /**
   * Stores `value` under `key` for `ttlMs` unless the key is already held. True when stored.
   * Atomic across every node sharing the store: of two concurrent calls, one wins.
   */
  putIfAbsent(key: string, value: Uint8Array, ttlMs: number): Promise<boolean>;
  /** Stores `value` under `key` for `ttlMs`, replacing whatever the key held. */
  put(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /**
   * The value and its removal in one atomic step (single use): of two concurrent calls, at most
   * one gets it. An expired entry is absent. The caller owns the returned bytes.
   */
  take(key: string): Promise<Uint8Array | undefined>;
  /**
   * Adds one to the counter under `key` and returns it; a new counter lives `ttlMs` from its
   * first count (later counts do not extend it). Atomic across every node sharing the store.
   */
  count(key: string, ttlMs: number): Promise<number>;
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

/** Every key an adapter writes starts with this prefix, so one Redis can serve other tenants. */
export const DEFAULT_EPHEMERAL_PREFIX = "payvault:";

/**
 * The store cannot be reached or used (Redis down, timed out, refused the command, or the store
 * is closed or full). Carries a short reason for the log, never a key, a value or a URL.
 */
export class EphemeralStoreUnavailableError extends Error {
  override readonly name = "EphemeralStoreUnavailableError";
  readonly code = "EPHEMERAL_STORE_UNAVAILABLE" as const;
  constructor(readonly reason: string) {
    super(`the ephemeral store is unavailable (${reason})`);
  }
}

const KEY_PATTERN = /^[\x21-\x7e]{1,512}$/;
const PREFIX_PATTERN = /^[\x21-\x7e]{1,64}$/;

/** Keys are printable ASCII without spaces, so they read the same in every adapter and in logs. */
export function checkKey(key: string): void {
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    throw new TypeError("an ephemeral key must be 1..512 printable ASCII characters");
  }
}

export function checkPrefix(prefix: string): void {
  if (typeof prefix !== "string" || !PREFIX_PATTERN.test(prefix)) {
    throw new TypeError("an ephemeral key prefix must be 1..64 printable ASCII characters");
  }
}

/** A TTL is a whole number of milliseconds, at least 1 (Redis `PX` takes nothing else). */
export function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError("an ephemeral TTL must be a positive whole number of milliseconds");
  }
}
