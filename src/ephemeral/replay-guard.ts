import { createHash } from "node:crypto";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import type { EphemeralStore } from "./ephemeral-store.js";

export interface ReplayGuardOptions {
  readonly clock?: Clock;
  /**
   * How long past its `exp` a jti is still remembered. Must cover the verifiers' clock-skew
   * allowance, or a token accepted just after its exp could be replayed once.
   */
  readonly marginMs?: number;
  /**
   * The longest a jti may be remembered. A token living longer is refused outright: its
   * verifier should have bounded `exp`, and the store must not fill with far-future entries.
   */
  readonly maxTtlMs?: number;
}

export const DEFAULT_REPLAY_MARGIN_MS = 120_000;
export const DEFAULT_REPLAY_MAX_TTL_MS = 86_400_000;

const NAMESPACE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_JTI_LENGTH = 1_024;
const SEEN = Uint8Array.of(1);

/**
 * One use per token id (RFC 7519 §4.1.7; RFC 8725 §3.10): the JWE of a capture and the nested
 * JWT of a server-to-server call carry a `jti`, and a second request with the same one is a
 * replay. The jti is kept until the token's expiry plus a margin; after that the token is refused
 * for its `exp` anyway. With the Redis store every node sees the same set (SET NX), so a replay
 * sent to another node is caught too.
 */
export class ReplayGuard {
  private readonly clock: Clock;
  private readonly marginMs: number;
  private readonly maxTtlMs: number;

  constructor(
    private readonly store: EphemeralStore,
    options: ReplayGuardOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.marginMs = options.marginMs ?? DEFAULT_REPLAY_MARGIN_MS;
    this.maxTtlMs = options.maxTtlMs ?? DEFAULT_REPLAY_MAX_TTL_MS;
  }

  /**
   * True the first time `jti` is seen in `namespace` (e.g. "capture", or one per issuer), false
   * on every later call until it is forgotten after `expiresAt` + margin. Call it only once the
   * token has verified, so forged tokens cannot burn a legitimate jti.
   * Throws EphemeralStoreUnavailableError when the store is down: fail closed.
   */
  async firstUse(namespace: string, jti: string, expiresAt: Date): Promise<boolean> {
    if (!NAMESPACE_PATTERN.test(namespace)) {
      throw new TypeError("a replay namespace must be 1..64 letters, digits, '_', '.' or '-'");
    }
    if (typeof jti !== "string" || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
      throw new TypeError(`a jti must be 1..${MAX_JTI_LENGTH} characters`);
    }
    const untilExpiry = Math.max(0, expiresAt.getTime() - this.clock.now().getTime());
    if (!Number.isFinite(untilExpiry) || untilExpiry + this.marginMs > this.maxTtlMs) {
      throw new RangeError("the token lives longer than the replay guard remembers");
    }
    const ttlMs = Math.max(1, Math.ceil(untilExpiry + this.marginMs));
    return this.store.putIfAbsent(keyOf(namespace, jti), SEEN, ttlMs);
  }
}

/**
 * The jti is hashed into the key: it is the sender's text, so it stays out of key names (no
 * separators, no unbounded length), and every key has the same shape.
 */
function keyOf(namespace: string, jti: string): string {
  const digest = createHash("sha256").update(jti, "utf8").digest("base64url");
  return `jti:${namespace}:${digest}`;
}
