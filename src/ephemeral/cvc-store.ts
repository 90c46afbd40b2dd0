import { DecryptionError } from "../crypto/decryption-error.js";
import type { EnvelopeContext } from "../crypto/envelope.js";
import { envelopeDekId, openEnvelope, sealEnvelope } from "../crypto/envelope.js";
import { zeroize } from "../crypto/secret.js";
import { Cvc } from "../domain/cvc.js";
import type { Environment } from "../keys/key-manager.js";
import { isEnvironment } from "../keys/key-manager.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { EphemeralStore } from "./ephemeral-store.js";

/** Whose CVC: the tenant and the environment (`pv_live_` or `pv_test_` caller) it was sent in. */
export interface CvcScope {
  readonly tenantId: string;
  readonly environment: Environment;
}

/** What the CVC store needs of the key ring: the tenant's `sad` DEK, and a DEK by its id. */
export type SadKeys = Pick<KeyRing, "activeKey" | "keyById">;

export const DEFAULT_CVC_TTL_MS = 15 * 60_000;
/** PCI DSS 3.3.1.2: SAD is held only until authorization; an hour is the longest we wait. */
export const MAX_CVC_TTL_MS = 60 * 60_000;

/** A CVC or TTL the caller must fix (a 400). Its message never holds the value. */
export class CvcStoreInputError extends RangeError {
  override readonly name = "CvcStoreInputError";
  constructor(
    readonly code: "CVC_INVALID" | "CVC_TTL_INVALID",
    message: string,
  ) {
    super(message);
  }
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The card verification code between capture and authorization (PCI DSS v4.0.1 3.3.1.2, 3.3.2:
 * SAD is never retained after authorization, and encrypted until then). It is sealed under the
 * tenant's `sad` DEK (apart from its PAN keys, DESIGN.md) before it reaches the ephemeral store,
 * with tenant, environment and token id in the AAD, so a value copied to another token, tenant or
 * environment does not decrypt. The store key is made of those ids alone, never of the CVC. It
 * never touches SQL, logs or disk; `take` hands it out once (get-and-delete), and the TTL
 * removes it if nobody does.
 */
export class CvcStore {
  constructor(
    private readonly store: EphemeralStore,
    private readonly keys: SadKeys,
  ) {}

  /**
   * Holds the CVC for `tokenId` for `ttlMs` (default 15 min, at most 1 h), replacing one held
   * before (the same card captured again for a new payment). A string must be 3 or 4 digits;
   * pass a `Cvc` parsed for the card's brand to check the brand's length.
   */
  async put(
    scope: CvcScope,
    tokenId: string,
    cvc: Cvc | string,
    ttlMs: number = DEFAULT_CVC_TTL_MS,
  ): Promise<void> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_CVC_TTL_MS) {
      throw new CvcStoreInputError(
        "CVC_TTL_INVALID",
        `the CVC's time to live must be 1 ms to ${MAX_CVC_TTL_MS / 60_000} minutes`,
      );
    }
    const parsed = cvc instanceof Cvc ? cvc : parseDigits(cvc);
    if (parsed === undefined) {
      throw new CvcStoreInputError("CVC_INVALID", "the security code must be 3 or 4 digits");
    }
    const key = storeKey(scope, tokenId);
    if (key === undefined) throw new TypeError("tenant and token ids must be vault ids");
    const dek = await this.keys.activeKey(
      { owner: scope.tenantId, environment: scope.environment, purpose: "sad" },
      undefined,
      1,
    );
    const plaintext = Buffer.from(parsed.revealDigits(), "latin1");
    let envelope: Buffer;
    try {
      envelope = sealEnvelope({
        dekId: dek.id,
        key: dek.material,
        plaintext,
        context: contextOf(scope, tokenId),
      });
    } finally {
      zeroize(plaintext);
    }
    try {
      await this.store.put(key, envelope, ttlMs);
    } finally {
      zeroize(envelope);
    }
  }

  /**
   * The CVC, removed from the store in the same step: call it at authorization (the forward
   * proxy). Undefined when none is held (never put, already taken, expired, deleted, or another
   * tenant's). A value that does not decrypt for this tenant and token throws DecryptionError.
   */
  async take(scope: CvcScope, tokenId: string): Promise<Cvc | undefined> {
    const key = storeKey(scope, tokenId);
    if (key === undefined) return undefined;
    const envelope = await this.store.take(key);
    if (envelope === undefined) return undefined;
    let plaintext: Buffer | undefined;
    try {
      const dek = await this.keys.keyById(envelopeDekId(envelope), scope.tenantId, "sad");
      plaintext = openEnvelope(envelope, dek.material, contextOf(scope, tokenId));
      const cvc = parseDigits(plaintext.toString("latin1"));
      if (cvc === undefined) throw new DecryptionError();
      return cvc;
    } finally {
      if (plaintext !== undefined) zeroize(plaintext);
      zeroize(envelope);
    }
  }

  /** Forgets the CVC without using it (the payment was abandoned). */
  async delete(scope: CvcScope, tokenId: string): Promise<void> {
    const key = storeKey(scope, tokenId);
    if (key !== undefined) await this.store.delete(key);
  }
}

function parseDigits(digits: string): Cvc | undefined {
  const parsed = Cvc.parse(digits, "unknown");
  return parsed.ok ? parsed.value : undefined;
}

/** Ids only: nothing in a key name is the CVC or derived from it. */
function storeKey(scope: CvcScope, tokenId: string): string | undefined {
  if (!ID_PATTERN.test(scope.tenantId) || !ID_PATTERN.test(tokenId)) return undefined;
  if (!isEnvironment(scope.environment)) return undefined;
  return `cvc:${scope.tenantId}:${scope.environment}:${tokenId}`;
}

/** Tenant, environment and token id in the AAD (the purpose `sad` is in it too). */
function contextOf(scope: CvcScope, tokenId: string): EnvelopeContext {
  return {
    tenantId: scope.tenantId,
    objectId: `cvc:${scope.environment}:${tokenId}`,
    purpose: "sad",
  };
}
