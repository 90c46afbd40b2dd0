import type { AuditEventInput, AuditEventRow } from "../../audit/audit-event.js";
import { DecryptionError } from "../../crypto/decryption-error.js";
import { openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { randomBytes } from "../../crypto/random.js";
import type { FieldIssue } from "../../domain/field-issue.js";
import { newCardAlias, newRandomToken } from "../../domain/token-format.js";
import type { CvcStore } from "../../ephemeral/cvc-store.js";
import { DEFAULT_CVC_TTL_MS } from "../../ephemeral/cvc-store.js";
import { VaultError } from "../../errors/registry.js";
import { epochOf } from "../../keys/epoch.js";
import { KeyServiceUnavailableError } from "../../keys/key-manager.js";
import type { DataKey, KeyRing } from "../../keys/key-ring.js";
import { KeyDestroyedError } from "../../keys/key-ring.js";
import { findDataKey } from "../../store/data-keys-repo.js";
import type { Database } from "../../store/database.js";
import type { TokenRow, TokenScope } from "../../store/tokens-repo.js";
import {
  deleteExpiredToken,
  deleteTokenAudited,
  extendTokenRetention,
  findTokenAudited,
  findTokenByDedupeKey,
  findTokensByDedupeKeys,
  insertTokenAudited,
  insertTokensAudited,
} from "../../store/tokens-repo.js";
import type { Principal } from "../api-keys.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { TenantService } from "../tenants.js";
import type { CardPayload } from "./card-payload.js";
import { decodeCardPayload, encodeCardPayload } from "./card-payload.js";
import { dedupeKeyOf, panFingerprint } from "./fingerprints.js";
import type { TokenView } from "./token-view.js";
import { toTokenView } from "./token-view.js";
import type { TokenizeRequest, ValidTokenizeRequest } from "./tokenize-input.js";
import { purposeIssues, validateTokenizeRequest } from "./tokenize-input.js";

export interface TokenizeResult {
  readonly token: TokenView;
  readonly duplicate: boolean;
  /** Set when the request carried a CVC: the end of its time in the ephemeral store. */
  readonly cvcExpiresAt?: Date;
}

export type BatchItemResult =
  | {
      readonly ok: true;
      readonly token: TokenView;
      readonly duplicate: boolean;
      readonly cvcExpiresAt?: Date;
    }
  | { readonly ok: false; readonly code: string; readonly errors: readonly FieldIssue[] };

export interface RevealedCard {
  readonly id: string;
  readonly card: CardPayload & { readonly brand: string };
}

/** Attempts at a fresh card alias before giving up; collisions need ~10^6 tokens per BIN+last4. */
const MAX_ID_ATTEMPTS = 5;

interface PendingItem {
  readonly valid: ValidTokenizeRequest;
  readonly fingerprint: string;
  readonly dedupeKey: string | null;
  /** Retention end: the request's expiry, or the tenant's policy; null when persistent. */
  readonly expiresAt: Date | null;
  readonly epoch: string;
  readonly createdAt: Date;
}

interface TenantKeys {
  /** The PAN DEK of each expiry epoch the request needs (DESIGN.md: epoch-scoped DEKs). */
  readonly pan: ReadonlyMap<string, DataKey>;
  readonly fingerprint: DataKey;
}

const DAY_MS = 86_400_000;

/**
 * Tokenization: validate, fingerprint under the tenant's key, encrypt under the tenant's PAN DEK
 * (AAD binds tenant, token id, purpose and DEK id), store with its audit event atomically; and
 * the reads: masked view, reveal, delete, each audited in the same statement as the access.
 */
export class TokenService {
  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
    private readonly tenants: TenantService,
    private readonly cvcs: CvcStore,
  ) {}

  async tokenize(principal: Principal, request: TokenizeRequest): Promise<TokenizeResult> {
    const valid = validateTokenizeRequest(request, this.clock.now());
    if (!valid.ok) throw new VaultError("VALIDATION_FAILED", { errors: valid.issues });
    const result = await this.tokenizeValid(principal, valid.value);
    return this.holdCvc(principal, valid.value, result);
  }

  /**
   * A CVC sent with the card is held, sealed under the tenant's `sad` key, in the ephemeral store
   * until the forward proxy uses it for authorization or its TTL ends; it never reaches SQL
   * (PCI DSS 3.3.1.2, 3.3.2). After the token is written: if the store fails, the request fails
   * (503) and its retry finds the same token (dedupe) and holds the CVC then.
   */
  private async holdCvc<T extends TokenizeResult>(
    principal: Principal,
    valid: ValidTokenizeRequest,
    result: T,
  ): Promise<T> {
    if (valid.cvc === undefined) return result;
    const scope = { tenantId: principal.tenantId, environment: principal.environment };
    await this.cvcs.put(scope, result.token.id, valid.cvc, DEFAULT_CVC_TTL_MS);
    return { ...result, cvcExpiresAt: new Date(this.clock.now().getTime() + DEFAULT_CVC_TTL_MS) };
  }

  private async tokenizeValid(
    principal: Principal,
    valid: ValidTokenizeRequest,
  ): Promise<TokenizeResult> {
    const retentionDays = await this.tenants.retentionDays(principal.tenantId);
    const fingerprintKey = await this.fingerprintKey(principal);
    const item = this.pendingItem(valid, fingerprintKey, retentionDays);
    let keys = await this.tenantKeys(principal, fingerprintKey, [item]);
    for (let attempt = 0; attempt < MAX_ID_ATTEMPTS; attempt++) {
      const row = this.sealRow(principal, item, keys);
      const event = await this.audit.build(this.event(principal, "token.create", row.id));
      if (await this.guard(insertTokenAudited(this.db, row, event))) {
        return { token: toTokenView(row), duplicate: false };
      }
      if (row.dedupe_key !== null) {
        const existing = await findTokenByDedupeKey(this.db, principal.tenantId, row.dedupe_key);
        if (existing !== undefined && !this.expired(existing)) {
          const { token } = await this.duplicateOf(principal, existing, item, keys);
          return { token, duplicate: true };
        }
        // Past retention but not purged yet: it goes now, and the card gets a new token.
        if (existing !== undefined) await this.purgeOne(existing);
      }
      // Otherwise the id collided (a card alias), or the DEK was destroyed elsewhere: draw
      // another id, under a live key.
      keys = await this.withLiveKeys(principal, keys, [item]);
    }
    throw new VaultError("INTERNAL_ERROR");
  }

  /** `fieldPrefixOf(i)` names item i in field errors (the HTTP layer passes the item's position in the request). */
  async tokenizeBatch(
    principal: Principal,
    requests: readonly TokenizeRequest[],
    fieldPrefixOf: (index: number) => string = (index) => `cards.${index}.`,
  ): Promise<BatchItemResult[]> {
    const now = this.clock.now();
    const results: (BatchItemResult | undefined)[] = new Array(requests.length);
    const valids = new Map<number, ValidTokenizeRequest>();
    requests.forEach((request, index) => {
      const valid = validateTokenizeRequest(request, now, fieldPrefixOf(index));
      if (valid.ok) valids.set(index, valid.value);
      else results[index] = { ok: false, code: "VALIDATION_FAILED", errors: valid.issues };
    });
    const pending = new Map<number, PendingItem>();
    let keys: TenantKeys | undefined;
    if (valids.size > 0) {
      const retentionDays = await this.tenants.retentionDays(principal.tenantId);
      const fingerprintKey = await this.fingerprintKey(principal);
      for (const [index, valid] of valids) {
        pending.set(index, this.pendingItem(valid, fingerprintKey, retentionDays));
      }
      keys = await this.tenantKeys(principal, fingerprintKey, [...pending.values()]);
    }
    for (
      let attempt = 0;
      keys !== undefined && pending.size > 0 && attempt < MAX_ID_ATTEMPTS;
      attempt++
    ) {
      await this.batchRound(principal, keys, pending, results);
      if (pending.size > 0) keys = await this.withLiveKeys(principal, keys, [...pending.values()]);
    }
    return Promise.all(
      results.map((r, index) => {
        const valid = valids.get(index);
        if (r === undefined) return { ok: false as const, code: "INTERNAL_ERROR", errors: [] };
        return r.ok && valid !== undefined ? this.holdCvc(principal, valid, r) : r;
      }),
    );
  }

  async get(principal: Principal, id: string): Promise<TokenView> {
    const event = await this.audit.build(this.event(principal, "token.read", id));
    const row = await this.guard(findTokenAudited(this.db, this.scope(principal), id, event));
    if (row === undefined) throw new VaultError("TOKEN_NOT_FOUND");
    return toTokenView(row);
  }

  /** The full card, for holders of `tokens:reveal`; the stated purpose is in the audit event (PCI DSS 10.2.1.1). */
  async reveal(principal: Principal, id: string, purpose: string): Promise<RevealedCard> {
    const issues = purposeIssues(purpose);
    if (issues.length > 0) throw new VaultError("VALIDATION_FAILED", { errors: issues });
    const event = await this.audit.build({
      ...this.event(principal, "token.reveal", id),
      details: { purpose },
    });
    const row = await this.guard(findTokenAudited(this.db, this.scope(principal), id, event));
    if (row === undefined) throw new VaultError("TOKEN_NOT_FOUND");
    try {
      const key = await this.keys.keyById(row.dek_id, principal.tenantId, "pan");
      const context = { tenantId: principal.tenantId, objectId: row.id, purpose: "pan" } as const;
      const plaintext = openEnvelope(row.ciphertext, key.material, context);
      return { id: row.id, card: { ...decodeCardPayload(plaintext), brand: row.brand } };
    } catch (err) {
      if (err instanceof KeyServiceUnavailableError) {
        // The read was recorded as it happened; the failure to return the card is recorded too.
        await this.audit
          .record(this.db, {
            ...this.event(principal, "token.reveal", id),
            outcome: "failure",
            details: { reason: "key_service_unavailable" },
          })
          .catch(() => undefined);
        throw err;
      }
      if (err instanceof KeyDestroyedError) {
        // Crypto-shredded or destroyed by a key ceremony: the card data is gone for good.
        await this.audit.record(this.db, {
          ...this.event(principal, "token.reveal", id),
          outcome: "failure",
          details: { reason: "key_destroyed", dek_id: err.keyId },
        });
        throw new VaultError("KEY_DESTROYED");
      }
      if (!(err instanceof DecryptionError)) throw err;
      // One error for every integrity failure (tampered row, moved ciphertext, missing DEK).
      await this.audit.record(this.db, {
        ...this.event(principal, "token.reveal", id),
        outcome: "failure",
        details: { reason: "decryption_failed" },
      });
      throw new VaultError("DECRYPTION_FAILED");
    }
  }

  async remove(principal: Principal, id: string): Promise<void> {
    const event = await this.audit.build(this.event(principal, "token.delete", id));
    if (!(await this.guard(deleteTokenAudited(this.db, this.scope(principal), id, event)))) {
      throw new VaultError("TOKEN_NOT_FOUND");
    }
  }

  private async batchRound(
    principal: Principal,
    keys: TenantKeys,
    pending: Map<number, PendingItem>,
    results: (BatchItemResult | undefined)[],
  ): Promise<void> {
    // One new row per distinct dedupe key; later identical cards in the batch are its duplicates
    // and are never encrypted.
    const firstByDedupe = new Set<string>();
    const rows = new Map<number, TokenRow>();
    for (const [index, item] of pending) {
      if (item.dedupeKey !== null) {
        if (firstByDedupe.has(item.dedupeKey)) continue;
        firstByDedupe.add(item.dedupeKey);
      }
      rows.set(index, this.sealRow(principal, item, keys));
    }
    const events: AuditEventRow[] = [];
    for (const row of rows.values())
      events.push(await this.audit.build(this.event(principal, "token.create", row.id)));
    const inserted = await this.guard(insertTokensAudited(this.db, [...rows.values()], events));
    for (const [index, row] of rows) {
      // Not inserted: a duplicate (resolved below) or a card-alias collision (next round).
      if (!inserted.has(row.id)) continue;
      results[index] = { ok: true, token: toTokenView(row), duplicate: false };
      pending.delete(index);
    }
    await this.resolveDuplicates(principal, keys, pending, results);
  }

  /** Items whose card already has a token (in the store or earlier in the batch) get that token. */
  private async resolveDuplicates(
    principal: Principal,
    keys: TenantKeys,
    pending: Map<number, PendingItem>,
    results: (BatchItemResult | undefined)[],
  ): Promise<void> {
    const byIndex = new Map<number, string>();
    for (const [index, item] of pending) {
      if (item.dedupeKey !== null) byIndex.set(index, item.dedupeKey);
    }
    if (byIndex.size === 0) return;
    const existing = await this.guard(
      findTokensByDedupeKeys(this.db, principal.tenantId, [...new Set(byIndex.values())]),
    );
    const byKey = new Map(existing.map((row) => [row.dedupe_key, row]));
    for (const [index, dedupeKey] of byIndex) {
      const row = byKey.get(dedupeKey);
      if (row === undefined) continue;
      if (this.expired(row)) {
        // Past retention but not purged yet: it goes now; the item is inserted next round.
        byKey.delete(dedupeKey);
        await this.purgeOne(row);
        continue;
      }
      const result = await this.duplicateOf(
        principal,
        row,
        pending.get(index) as PendingItem,
        keys,
      );
      // A later item of the same card sees the retention this one may have extended.
      byKey.set(dedupeKey, result.row);
      results[index] = { ok: true, token: result.token, duplicate: true };
      pending.delete(index);
    }
  }

  /**
   * The existing token of the same card. If the request explicitly asks to keep the card longer
   * (a later `expires_at`, or `persistent`), the token's retention is extended and its card re-encrypted under
   * the key of its new expiry epoch, so a stored credential is never purged because an earlier
   * short-lived token of the same card existed. A shorter retention never shortens a token.
   */
  private async duplicateOf(
    principal: Principal,
    row: TokenRow,
    item: PendingItem,
    keys: TenantKeys,
  ): Promise<{ ok: true; token: TokenView; duplicate: true; row: TokenRow }> {
    // Only an explicit ask extends: under the default policy the same card again returns its
    // token as it is (no sliding retention, no write).
    const explicit = item.valid.persistent || item.valid.expiresAt !== null;
    const longer =
      explicit &&
      !row.persistent &&
      (item.expiresAt === null ||
        (row.expires_at !== null && item.expiresAt.getTime() > row.expires_at.getTime()));
    if (longer) {
      const pan = keys.pan.get(item.epoch) as DataKey;
      const event = await this.audit.build({
        ...this.event(principal, "token.deduplicate", row.id),
        details: {
          retention_extended: true,
          expires_at: item.expiresAt?.toISOString() ?? "persistent",
        },
      });
      const ciphertext = sealEnvelope({
        dekId: pan.id,
        key: pan.material,
        plaintext: encodeCardPayload(item.valid.card),
        context: { tenantId: principal.tenantId, objectId: row.id, purpose: "pan" },
      });
      const extended = await this.guard(
        extendTokenRetention(
          this.db,
          {
            tenantId: principal.tenantId,
            id: row.id,
            oldDekId: row.dek_id,
            expiresAt: item.expiresAt,
            dekId: pan.id,
            ciphertext,
          },
          event,
        ),
      );
      if (extended !== undefined) {
        return { ok: true, token: toTokenView(extended), duplicate: true, row: extended };
      }
    }
    await this.audit.record(this.db, this.event(principal, "token.deduplicate", row.id));
    return { ok: true, token: toTokenView(row), duplicate: true, row };
  }

  /**
   * A validated card with its keyed fingerprint, dedupe key and retention end, computed once per
   * request item. Without an expiry or `persistent`, the tenant's retention policy applies (PCI
   * DSS 3.2.1; the source documents ask for 30 days).
   */
  private pendingItem(
    valid: ValidTokenizeRequest,
    fingerprintKey: DataKey,
    retentionDays: number,
  ): PendingItem {
    const { card } = valid;
    const createdAt = this.clock.now();
    const expiresAt = valid.persistent
      ? null
      : (valid.expiresAt ?? new Date(createdAt.getTime() + retentionDays * DAY_MS));
    return {
      valid,
      fingerprint: panFingerprint(fingerprintKey.material, card.pan.revealDigits()),
      dedupeKey: valid.dedupe
        ? dedupeKeyOf(
            fingerprintKey.material,
            {
              number: card.pan.revealDigits(),
              expMonth: card.expMonth,
              expYear: card.expYear,
              name: card.name,
            },
            valid.format,
          )
        : null,
      expiresAt,
      epoch: epochOf(expiresAt),
      createdAt,
    };
  }

  /** A new token row for the item: fresh id, card encrypted under the tenant's PAN DEK. */
  private sealRow(principal: Principal, item: PendingItem, keys: TenantKeys): TokenRow {
    const { valid } = item;
    const { card } = valid;
    const id =
      valid.format === "card_alias"
        ? newCardAlias(card.pan, randomBytes)
        : newRandomToken(randomBytes);
    const pan = keys.pan.get(item.epoch) as DataKey;
    const ciphertext = sealEnvelope({
      dekId: pan.id,
      key: pan.material,
      plaintext: encodeCardPayload(card),
      context: { tenantId: principal.tenantId, objectId: id, purpose: "pan" },
    });
    return {
      tenant_id: principal.tenantId,
      environment: principal.environment,
      id,
      format: valid.format,
      brand: card.pan.brand,
      bin: card.pan.bin,
      last4: card.pan.last4,
      exp_month: card.expMonth,
      exp_year: card.expYear,
      fingerprint: item.fingerprint,
      fingerprint_key_id: keys.fingerprint.id,
      dedupe_key: item.dedupeKey,
      dek_id: pan.id,
      ciphertext,
      metadata: valid.metadata,
      created_at: item.createdAt,
      expires_at: item.expiresAt,
      persistent: item.expiresAt === null,
    };
  }

  private fingerprintKey(principal: Principal): Promise<DataKey> {
    return this.keys.activeKey({
      owner: principal.tenantId,
      purpose: "fingerprint",
      environment: principal.environment,
    });
  }

  /**
   * The PAN DEK of each epoch the items fall in, with one use reserved per item: each item may
   * be encrypted once (a card-alias collision re-encrypts, well within the margin kept below
   * the GCM limit).
   */
  private async tenantKeys(
    principal: Principal,
    fingerprint: DataKey,
    items: readonly PendingItem[],
  ): Promise<TenantKeys> {
    const uses = new Map<string, number>();
    for (const item of items) uses.set(item.epoch, (uses.get(item.epoch) ?? 0) + 1);
    const pan = new Map<string, DataKey>();
    for (const [epoch, count] of uses) {
      const slot = {
        owner: principal.tenantId,
        purpose: "pan",
        environment: principal.environment,
        epoch,
      } as const;
      pan.set(epoch, await this.keys.activeKey(slot, undefined, count));
    }
    return { pan, fingerprint };
  }

  /**
   * The same keys, unless a PAN DEK among them was destroyed by another node or the CLI while
   * this node cached it (the insert refused it): then that key is dropped and the slot's next
   * version is used.
   */
  private async withLiveKeys(
    principal: Principal,
    keys: TenantKeys,
    items: readonly PendingItem[],
  ): Promise<TenantKeys> {
    let stale = false;
    for (const key of keys.pan.values()) {
      const row = await this.guard(findDataKey(this.db, key.id));
      if (row === undefined || row.destroyed_at !== null) {
        this.keys.forget(key.id);
        stale = true;
      }
    }
    return stale ? this.tenantKeys(principal, keys.fingerprint, items) : keys;
  }

  private scope(principal: Principal): TokenScope {
    return {
      tenantId: principal.tenantId,
      environment: principal.environment,
      now: this.clock.now(),
    };
  }

  private expired(row: TokenRow): boolean {
    return row.expires_at !== null && row.expires_at.getTime() <= this.clock.now().getTime();
  }

  /** Deletes one token found past its retention, with its `token.purge` event. */
  private async purgeOne(row: TokenRow): Promise<void> {
    const event = await this.audit.build({
      tenantId: row.tenant_id,
      actor: "system",
      action: "token.purge",
      objectId: row.id,
      outcome: "success",
      details: { reason: "retention", count: 1 },
    });
    await this.guard(deleteExpiredToken(this.db, row.tenant_id, row.id, this.clock.now(), event));
  }

  private event(
    principal: Principal,
    action: AuditEventInput["action"],
    objectId: string,
  ): AuditEventInput {
    return {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action,
      objectId,
      outcome: "success",
      details: {},
    };
  }

  /** A store failure becomes a 503 whose text says nothing of the cause. */
  private async guard<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (err) {
      if (err instanceof VaultError) throw err;
      throw new VaultError("STORE_UNAVAILABLE", { cause: err });
    }
  }
}
