import type { EnvelopeContext } from "../../../crypto/envelope.js";
import { envelopeDekId, openEnvelope, sealEnvelope } from "../../../crypto/envelope.js";
import { zeroize } from "../../../crypto/secret.js";
import type { KeyRing } from "../../../keys/key-ring.js";
import { decodeSecrets, encodeSecrets, type SigningSecret } from "./destination-secrets.js";

/** What sealing needs of the key ring: the tenant's `webhook` DEK, and a DEK by its id. */
export type WebhookKeys = Pick<KeyRing, "activeKey" | "keyById">;

/** AAD binds tenant and destination (PCI DSS 3.5.1): a sealed list copied to another row fails. */
function contextOf(tenantId: string, destinationId: string): EnvelopeContext {
  return { tenantId, objectId: destinationId, purpose: "webhook" };
}

/**
 * Seals a destination's secrets under the tenant's `webhook` DEK (the data-key purpose for
 * webhook secrets, apart from card-data keys: NIST SP 800-57 Part 1 §5.2, one key one purpose).
 */
export async function sealSecrets(
  keys: WebhookKeys,
  tenantId: string,
  destinationId: string,
  secrets: readonly SigningSecret[],
): Promise<{ secrets: Buffer; dekId: string }> {
  const dek = await keys.activeKey({ owner: tenantId, environment: "live", purpose: "webhook" });
  const plaintext = encodeSecrets(secrets);
  try {
    const sealed = sealEnvelope({
      dekId: dek.id,
      key: dek.material,
      plaintext,
      context: contextOf(tenantId, destinationId),
    });
    return { secrets: sealed, dekId: dek.id };
  } finally {
    zeroize(plaintext);
  }
}

/** Opens a destination's secrets; every failure is the one DecryptionError. */
export async function openSecrets(
  keys: WebhookKeys,
  row: { readonly tenant_id: string; readonly id: string; readonly secrets: Buffer },
): Promise<SigningSecret[]> {
  const dek = await keys.keyById(envelopeDekId(row.secrets), row.tenant_id, "webhook");
  const plaintext = openEnvelope(row.secrets, dek.material, contextOf(row.tenant_id, row.id));
  try {
    return decodeSecrets(plaintext);
  } finally {
    zeroize(plaintext);
  }
}
