/**
 * Expiry epochs (DESIGN.md, "Key hierarchy"): a `pan` DEK serves only tokens whose retention ends
 * in the same calendar month (UTC). Once that month is over, every token under the key is past
 * retention; after the purge deletes them, the key is destroyed, and whatever copies of their
 * ciphertext remain (dead tuples, WAL, backups) can no longer be decrypted: crypto-shredding
 * (PCI DSS 3.2.1, 3.7.5). Stored credentials (`persistent` tokens) share the `persistent` epoch,
 * which is never shredded by retention.
 */
export const PERSISTENT_EPOCH = "persistent";

const MONTH_EPOCH = /^(\d{4})-(\d{2})$/;

/** The epoch of a token whose retention ends at `expiresAt` (null: persistent). */
export function epochOf(expiresAt: Date | null): string {
  if (expiresAt === null) return PERSISTENT_EPOCH;
  const month = String(expiresAt.getUTCMonth() + 1).padStart(2, "0");
  return `${expiresAt.getUTCFullYear()}-${month}`;
}

/** The first instant after the epoch, or null for epochs retention never ends. */
export function epochEnd(epoch: string): Date | null {
  const match = MONTH_EPOCH.exec(epoch);
  if (match === null) return null;
  return new Date(Date.UTC(Number(match[1]), Number(match[2]), 1));
}
