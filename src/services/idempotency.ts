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
import { canonicalJson } from "./audit/audit-event.js";
import type { Clock } from "./clock.js";

/** Keys are kept at least this long (Stripe keeps them 24 hours). */
export const IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000;
/** A request still in flight after this long is taken to have died with its node. */
const IN_FLIGHT_LOCK_MS = 60_000;

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

  async requestHash(tenantId: string, route: string, body: unknown): Promise<string> {
    const key = await this.keys.activeKey(tenantId, "fingerprint");
    return fingerprintOf(key.material, "idempotency", `${route}\u0000${canonicalJson(body)}`);
  }

  async begin(tenantId: string, key: string, requestHash: string): Promise<IdempotencyOutcome> {
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
    if (existing === undefined) return this.begin(tenantId, key, requestHash);
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

  async complete(tenantId: string, key: string, status: number, body: string): Promise<void> {
    await completeIdempotencyKey(this.db, tenantId, key, status, body);
  }

  async release(tenantId: string, key: string): Promise<void> {
    await releaseIdempotencyKey(this.db, tenantId, key);
  }

  /** Drops keys past retention; run periodically. */
  async purgeExpired(): Promise<number> {
    return purgeIdempotencyKeys(
      this.db,
      new Date(this.clock.now().getTime() - IDEMPOTENCY_RETENTION_MS),
    );
  }
}
