import type { AuditEventInput, AuditEventRow } from "../../audit/audit-event.js";
import { DecryptionError } from "../../crypto/decryption-error.js";
import { openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { fingerprintOf } from "../../crypto/hmac.js";
import { randomBytes } from "../../crypto/random.js";
import type { FieldIssue } from "../../domain/field-issue.js";
import { newCardAlias, newRandomToken } from "../../domain/token-format.js";
import { VaultError } from "../../errors/registry.js";
import type { DataKey, KeyRing } from "../../keys/key-ring.js";
import type { Database } from "../../store/database.js";
import type { TokenRow } from "../../store/tokens-repo.js";
import {
  deleteTokenAudited,
  findTokenAudited,
  findTokenByDedupeKey,
  findTokensByDedupeKeys,
  insertTokenAudited,
  insertTokensAudited,
} from "../../store/tokens-repo.js";
import type { Principal } from "../api-keys.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { CardPayload } from "./card-payload.js";
import { decodeCardPayload, encodeCardPayload } from "./card-payload.js";
import type { TokenView } from "./token-view.js";
import { toTokenView } from "./token-view.js";
import type { TokenizeRequest, ValidTokenizeRequest } from "./tokenize-input.js";
import { purposeIssues, validateTokenizeRequest } from "./tokenize-input.js";

export interface TokenizeResult {
  readonly token: TokenView;
  readonly duplicate: boolean;
}

export type BatchItemResult =
  | { readonly ok: true; readonly token: TokenView; readonly duplicate: boolean }
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
}

interface TenantKeys {
  readonly pan: DataKey;
  readonly fingerprint: DataKey;
}

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
  ) {}

  async tokenize(principal: Principal, request: TokenizeRequest): Promise<TokenizeResult> {
    const valid = validateTokenizeRequest(request, this.clock.now());
    if (!valid.ok) throw new VaultError("VALIDATION_FAILED", { errors: valid.issues });
    const keys = await this.tenantKeys(principal.tenantId);
    const item = this.pendingItem(valid.value, keys);
    for (let attempt = 0; attempt < MAX_ID_ATTEMPTS; attempt++) {
      const row = this.sealRow(principal, item, keys);
      const event = await this.audit.build(this.event(principal, "token.create", row.id));
      if (await this.guard(insertTokenAudited(this.db, row, event))) {
        return { token: toTokenView(row), duplicate: false };
      }
      if (row.dedupe_key !== null) {
        const existing = await findTokenByDedupeKey(this.db, principal.tenantId, row.dedupe_key);
        if (existing !== undefined) return this.duplicateOf(principal, existing);
      }
      // Otherwise the id collided (a card alias): draw another.
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
    const keys = valids.size > 0 ? await this.tenantKeys(principal.tenantId) : undefined;
    const pending = new Map<number, PendingItem>();
    if (keys !== undefined) {
      for (const [index, valid] of valids) pending.set(index, this.pendingItem(valid, keys));
    }
    for (
      let attempt = 0;
      keys !== undefined && pending.size > 0 && attempt < MAX_ID_ATTEMPTS;
      attempt++
    ) {
      await this.batchRound(principal, keys, pending, results);
    }
    return results.map((r) => r ?? { ok: false, code: "INTERNAL_ERROR", errors: [] });
  }

  async get(principal: Principal, id: string): Promise<TokenView> {
    const event = await this.audit.build(this.event(principal, "token.read", id));
    const row = await this.guard(findTokenAudited(this.db, principal.tenantId, id, event));
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
    const row = await this.guard(findTokenAudited(this.db, principal.tenantId, id, event));
    if (row === undefined) throw new VaultError("TOKEN_NOT_FOUND");
    try {
      const key = await this.keys.keyById(row.dek_id, principal.tenantId, "pan");
      const context = { tenantId: principal.tenantId, objectId: row.id, purpose: "pan" } as const;
      const plaintext = openEnvelope(row.ciphertext, key.material, context);
      return { id: row.id, card: { ...decodeCardPayload(plaintext), brand: row.brand } };
    } catch (err) {
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
    if (!(await this.guard(deleteTokenAudited(this.db, principal.tenantId, id, event)))) {
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
    await this.resolveDuplicates(principal, pending, results);
  }

  /** Items whose card already has a token (in the store or earlier in the batch) get that token. */
  private async resolveDuplicates(
    principal: Principal,
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
      results[index] = await this.duplicateOf(principal, row);
      pending.delete(index);
    }
  }

  private async duplicateOf(
    principal: Principal,
    row: TokenRow,
  ): Promise<{ ok: true; token: TokenView; duplicate: true }> {
    await this.audit.record(this.db, this.event(principal, "token.deduplicate", row.id));
    return { ok: true, token: toTokenView(row), duplicate: true };
  }

  /** A validated card with its keyed fingerprint and dedupe key, computed once per request item. */
  private pendingItem(valid: ValidTokenizeRequest, keys: TenantKeys): PendingItem {
    return {
      valid,
      fingerprint: fingerprintOf(keys.fingerprint.material, "pan", valid.card.pan.revealDigits()),
      dedupeKey: valid.dedupe ? this.dedupeKeyOf(valid, keys) : null,
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
    const ciphertext = sealEnvelope({
      dekId: keys.pan.id,
      key: keys.pan.material,
      plaintext: encodeCardPayload(card),
      context: { tenantId: principal.tenantId, objectId: id, purpose: "pan" },
    });
    return {
      tenant_id: principal.tenantId,
      id,
      format: valid.format,
      brand: card.pan.brand,
      bin: card.pan.bin,
      last4: card.pan.last4,
      exp_month: card.expMonth,
      exp_year: card.expYear,
      fingerprint: item.fingerprint,
      dedupe_key: item.dedupeKey,
      dek_id: keys.pan.id,
      ciphertext,
      metadata: valid.metadata,
      created_at: this.clock.now(),
      expires_at: valid.expiresAt,
    };
  }

  /** The same card (number, expiry, name) in the same format is the same token when dedupe is on. */
  private dedupeKeyOf(valid: ValidTokenizeRequest, keys: TenantKeys): string {
    const { card } = valid;
    const identity = [
      card.pan.revealDigits(),
      card.expMonth,
      card.expYear,
      card.name ?? "",
      valid.format,
    ].join("\u0000");
    return fingerprintOf(keys.fingerprint.material, "dedupe", identity);
  }

  private async tenantKeys(tenantId: string): Promise<TenantKeys> {
    const [pan, fingerprint] = await Promise.all([
      this.keys.activeKey(tenantId, "pan"),
      this.keys.activeKey(tenantId, "fingerprint"),
    ]);
    return { pan, fingerprint };
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
