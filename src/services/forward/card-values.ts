import { DecryptionError } from "../../crypto/decryption-error.js";
import { openEnvelope } from "../../crypto/envelope.js";
import { zeroize } from "../../crypto/secret.js";
import type { CvcStore } from "../../ephemeral/cvc-store.js";
import { VaultError } from "../../errors/registry.js";
import { KeyServiceUnavailableError } from "../../keys/key-manager.js";
import type { KeyRing } from "../../keys/key-ring.js";
import { KeyDestroyedError } from "../../keys/key-ring.js";
import type { Database } from "../../store/database.js";
import { type ForwardTokenRow, findTokensForForwardAudited } from "../../store/forward-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";
import { decodeCardPayload } from "../tokens/card-payload.js";
import { guard } from "./forward-destinations.js";
import type { ForwardTemplate } from "./forward-template.js";
import type { CardValues } from "./placeholders.js";

/** A token's card as the template fills it in; `cvc` is set only once taken. */
export interface OpenCard extends CardValues {
  cvc: string | undefined;
}

/** Where the card is going, for the audit event (never a body, header or query string). */
export interface ForwardTarget {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly method: string;
}

interface CardDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
}

/**
 * Reads every token the template names and writes the forward's one `token.forward` event in
 * the same statement (PCI DSS 10.2.1.1: each access to card data is recorded; the record and
 * the read cannot come apart), then decrypts them. Any token missing, expired or another
 * tenant's: 404 and nothing recorded or decrypted.
 */
export async function openCards(
  deps: CardDeps,
  principal: Principal,
  template: ForwardTemplate,
  target: ForwardTarget,
): Promise<Map<string, OpenCard>> {
  const ids = template.tokenIds;
  const event = await deps.audit.build({
    tenantId: principal.tenantId,
    actor: principal.keyId,
    action: "token.forward",
    objectId: ids[0],
    outcome: "success",
    details: {
      host: target.host,
      port: target.port,
      path: target.path,
      method: target.method,
      tokens: ids.join(","),
      fields: template.fields.join(","),
    },
  });
  const scope = {
    tenantId: principal.tenantId,
    environment: principal.environment,
    now: deps.clock.now(),
  };
  const rows = await guard(findTokensForForwardAudited(deps.db, scope, ids, event));
  if (rows.length !== ids.length) throw new VaultError("TOKEN_NOT_FOUND");
  const cards = new Map<string, OpenCard>();
  for (const row of rows) cards.set(row.id, await decryptCard(deps.keys, principal, row));
  return cards;
}

/**
 * One card, decrypted; its plaintext buffer is zeroed once parsed. Every integrity failure is
 * the one DECRYPTION_FAILED; a destroyed key is KEY_DESTROYED and an unreachable key service a
 * 503, as for a reveal.
 */
async function decryptCard(
  keys: KeyRing,
  principal: Principal,
  row: ForwardTokenRow,
): Promise<OpenCard> {
  let plaintext: Buffer | undefined;
  try {
    const key = await keys.keyById(row.dek_id, principal.tenantId, "pan");
    const context = { tenantId: principal.tenantId, objectId: row.id, purpose: "pan" } as const;
    plaintext = openEnvelope(row.ciphertext, key.material, context);
    const card = decodeCardPayload(plaintext);
    return {
      number: card.number,
      exp_month: card.exp_month,
      exp_year: card.exp_year,
      name: card.name,
      cvc: undefined,
    };
  } catch (err) {
    if (err instanceof KeyServiceUnavailableError || err instanceof VaultError) throw err;
    if (err instanceof KeyDestroyedError) throw new VaultError("KEY_DESTROYED");
    if (!(err instanceof DecryptionError)) {
      throw new VaultError("DECRYPTION_FAILED", { cause: err });
    }
    throw new VaultError("DECRYPTION_FAILED");
  } finally {
    if (plaintext !== undefined) zeroize(plaintext);
  }
}

/**
 * Takes (reads and deletes) the CVC of every token whose `.cvc` the template uses (PCI DSS
 * 3.3.1.2). All are taken before any is checked, so a request naming two CVCs where one is
 * missing still consumes the other: the caller must capture both again either way.
 */
export async function takeCvcs(
  cvcs: CvcStore,
  principal: Principal,
  template: ForwardTemplate,
  cards: ReadonlyMap<string, OpenCard>,
): Promise<void> {
  const scope = { tenantId: principal.tenantId, environment: principal.environment };
  const taken = await Promise.all(
    template.cvcTokenIds.map(async (id) => {
      try {
        return [id, await cvcs.take(scope, id)] as const;
      } catch (err) {
        if (err instanceof DecryptionError) throw new VaultError("DECRYPTION_FAILED");
        throw err;
      }
    }),
  );
  for (const [id, cvc] of taken) {
    const card = cards.get(id);
    if (cvc === undefined || card === undefined) throw new VaultError("CVC_NOT_AVAILABLE");
    card.cvc = cvc.revealDigits();
  }
}

/** Drops the references to the decrypted cards (strings cannot be zeroed; the buffers were). */
export function forgetCards(cards: Map<string, OpenCard>): void {
  for (const card of cards.values()) card.cvc = undefined;
  cards.clear();
}
