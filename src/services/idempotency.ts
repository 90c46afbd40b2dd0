import { canonicalJson } from "../audit/audit-event.js";
import { fingerprintOf } from "../crypto/hmac.js";
import { VaultError } from "../errors/registry.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { Database } from "../store/database.js";
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  findIdempotencyKey,
  purgeIdempotencyKeys,
  reclaimIdempotencyKey,
  releaseIdempotencyKey,
} from "../store/idempotency-repo.js";
import type { Clock } from "./clock.js";

/** Keys are kept at least this long (Stripe keeps them 24 hours). */
export const IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000;
/** A request still in flight after this long is taken to have died with its node. */
const IN_FLIGHT_LOCK_MS = 60_000;

export interface IdempotencyRef {
  readonly tenantId: string;
  /** HMAC of the client's Idempotency-Key. */
  readonly key: string;
  /** HMAC of the route and the canonical request body. */
  readonly requestHash: string;
}

export type IdempotencyOutcome =
  | { readonly kind: "proceed" }
  | { readonly kind: "replay"; readonly status: number; readonly body: string };

/**
 * Request idempotency with Stripe's semantics: the same key with the same request replays the
 * first response; with a different request → 422; while the first is in flight → 409. Only
 * successful responses are stored; any failure releases the key so the client may retry
 * (requests that fail validation are therefore never stored). The request fingerprint is an
 * HMAC under the tenant's fingerprint key, never a plain hash, because the request holds a card
 * number (PCI DSS 3.5.1.1).
 */
export class IdempotencyService {
  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
    private readonly clock: Clock,
  ) {}

  /**
   * The stored form of a request: the client's key and the request itself, both as HMACs under
   * the tenant's fingerprint key. The key is client-chosen text that could hold anything, even a
   * card number, so it is never stored as sent either.
   */
  async fingerprint(
    tenantId: string,
    clientKey: string,
    route: string,
    body: unknown,
  ): Promise<IdempotencyRef> {
    const key = await this.keys.activeKey(tenantId, "fingerprint");
    return {
      tenantId,
      key: fingerprintOf(key.material, "idempotency-key", clientKey),
      requestHash: fingerprintOf(
        key.material,
        "idempotency",
        `${route}\u0000${canonicalJson(body)}`,
      ),
    };
  }

  async begin(ref: IdempotencyRef): Promise<IdempotencyOutcome> {
    const { tenantId, key, requestHash } = ref;
    const now = this.clock.now();
    const args = {
      tenantId,
      key,
      requestHash,
      now,
      lockedUntil: new Date(now.getTime() + IN_FLIGHT_LOCK_MS),
    };
    if (await claimIdempotencyKey(this.db, args)) return { kind: "proceed" };
    const existing = await findIdempotencyKey(this.db, tenantId, key);
    const staleBefore = new Date(now.getTime() - IDEMPOTENCY_RETENTION_MS);
    if (existing === undefined) return this.begin(ref);
    if (
      existing.created_at < staleBefore ||
      (existing.state === "in_flight" && existing.locked_until < now)
    ) {
      if (await reclaimIdempotencyKey(this.db, { ...args, staleBefore }))
        return { kind: "proceed" };
      throw new VaultError("IDEMPOTENCY_IN_FLIGHT");
    }
    if (existing.request_hash !== requestHash) throw new VaultError("IDEMPOTENCY_KEY_REUSED");
    if (existing.state === "in_flight") throw new VaultError("IDEMPOTENCY_IN_FLIGHT");
    return {
      kind: "replay",
      status: existing.response_status ?? 200,
      body: existing.response_body ?? "",
    };
  }

  async complete(ref: IdempotencyRef, status: number, body: string): Promise<void> {
    await completeIdempotencyKey(this.db, ref.tenantId, ref.key, status, body);
  }

  async release(ref: IdempotencyRef): Promise<void> {
    await releaseIdempotencyKey(this.db, ref.tenantId, ref.key);
  }

  /** Drops keys past retention; run periodically. */
  async purgeExpired(): Promise<number> {
    return purgeIdempotencyKeys(
      this.db,
      new Date(this.clock.now().getTime() - IDEMPOTENCY_RETENTION_MS),
    );
  }
}
